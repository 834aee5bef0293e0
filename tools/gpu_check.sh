#!/usr/bin/env bash
# `make gpu-check [IMAGE=caffe-gpu]`: the CUDA container on a real GPU, in well under 10 minutes once the image
# is there. Needs an NVIDIA GPU with its driver, docker and the NVIDIA container toolkit (`docker run --gpus`).
#
# The image: IMAGE if docker has it; else IMAGE_TAR=FILE (a `docker save` of it) is loaded; else it is built
# with `make image` for this GPU's architecture only (minutes on a many-core machine, about an hour on 2 cores).
# Then, inside it:
#   1. `caffe device_query -gpu 0`;
#   2. `prep sample`, then the tiny FCN-32s solver for ITERS iterations (display every iteration) four ways:
#      real Caffe --cpu and --gpu 0, the torch engine on cpu and on cuda;
#   3. the first iteration's loss (the seeded initial weights on the same first batch) must agree between CPU
#      and GPU to 1e-4 relative, for both engines; the later iterations' differences are printed, not asserted
#      (Adam's first step is lr * sign(gradient), so rounding-level differences in tiny gradients grow).
# Prints the GPU, the timings and the table; exit 0 when all agree, 1 when not, 2 when it cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-caffe-gpu}
iters=${ITERS:-5}
prog=gpu_check
die() { echo "$prog: error: $*" >&2; exit 2; }
say() { echo "[gpu-check] $*"; }

command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this machine has no NVIDIA driver; run on a GPU machine"
command -v docker >/dev/null || die "docker not found; install Docker and the NVIDIA container toolkit"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer; start it (systemctl start docker)"
gpu=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | head -1)
say "GPU 0: $gpu"
start=$(date +%s)
if ! docker image inspect "$image" >/dev/null 2>&1; then
    if [ -n "${IMAGE_TAR:-}" ]; then
        say "loading $image from $IMAGE_TAR"
        docker load -i "$IMAGE_TAR"
    else
        cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
        say "$image not found: building it for this GPU's architecture only (sm_$cap)"
        make image IMAGE="$image" IMAGE_CUDA_ARCHS="$cap"
    fi
fi
say "image ready after $(( $(date +%s) - start )) s"
docker run --rm --gpus all --entrypoint caffe "$image" --version >/dev/null 2>&1 \
    || die "docker run --gpus all $image failed; is the NVIDIA container toolkit installed (nvidia-ctk)?"

t=$(date +%s)
docker run --rm --gpus all -e ITERS="$iters" --entrypoint /bin/bash "$image" -c '
set -euo pipefail
echo "--- caffe device_query -gpu 0"
caffe device_query -gpu 0 2>&1 | sed -n "s/^.*\] //p" | grep -E "Device id|Major|Minor|Name|Total global memory|Multiprocessor"
fcnkit prep sample --out data/tiny --n-white 30 --n-composite 0 --size 112 --quiet
sed "s/^display: .*/display: 1/; s/^average_loss: .*/average_loss: 1/" solvers/tiny/fcn32s.prototxt > /tmp/s.prototxt
run() {  # name, solve arguments...
    local name=$1; shift
    local t0=$SECONDS
    fcnkit solve /tmp/s.prototxt --max-iter "$ITERS" --val-iter 1 "$@" > "/tmp/$name.log" 2>&1 \
        || { echo "--- $name FAILED:"; tail -20 "/tmp/$name.log"; exit 1; }
    printf "%-12s %4d s  %s\n" "$name" "$(( SECONDS - t0 ))" "$(tail -1 "/tmp/$name.log")"
}
echo "--- tiny FCN-32s, $ITERS iterations, four ways"
run caffe-cpu --cpu
run caffe-gpu --gpu 0
run torch-cpu --engine torch --device cpu
run torch-cuda --engine torch --device cuda
python - <<"EOF"
import re
loss = {n: [float(x) for x in re.findall(r"^iter \d+ loss (\S+)", open(f"/tmp/{n}.log").read(), re.M)]
        for n in ("caffe-cpu", "caffe-gpu", "torch-cpu", "torch-cuda")}
print("--- loss per iteration (relative difference GPU vs CPU)")
print("iter " + "".join(f"{n:>14}" for n in loss) + "   caffe rel    torch rel")
bad = []
for i in range(max(map(len, loss.values()))):
    v = {n: (l[i] if i < len(l) else float("nan")) for n, l in loss.items()}
    rc = abs(v["caffe-gpu"] - v["caffe-cpu"]) / abs(v["caffe-cpu"])
    rt = abs(v["torch-cuda"] - v["torch-cpu"]) / abs(v["torch-cpu"])
    print(f"{i + 1:4d} " + "".join(f"{x:14.6g}" for x in v.values()) + f"   {rc:9.2e}    {rt:9.2e}")
    if i == 0 and not (rc <= 1e-4 and rt <= 1e-4):
        bad.append(f"iteration 1: caffe GPU vs CPU {rc:.2e}, torch cuda vs cpu {rt:.2e} (tolerance 1e-4)")
if bad:
    raise SystemExit("gpu_check: error: " + "; ".join(bad))
print("first iteration: GPU agrees with CPU in both engines (1e-4)")
EOF
' || { rc=$?; say "FAILED after $(( $(date +%s) - t )) s"; exit $(( rc == 2 ? 2 : 1 )); }
say "passed: checks took $(( $(date +%s) - t )) s, $(( $(date +%s) - start )) s in all"
