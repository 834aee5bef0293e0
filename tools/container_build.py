#!/usr/bin/env python3
"""`make image` and `make image-test`: build the CUDA container (Dockerfile.caffe), and check it from inside.

    python3 tools/container_build.py image [--tag caffe-gpu] [--cuda-archs all] [--jobs N] [--local-base]
    python3 tools/container_build.py test  [--cuda-archs ci] [--jobs N]

`image` builds with `docker` where its daemon answers, else with buildah (as root, chroot isolation). The base
is Dockerfile.caffe's `debian:bookworm-slim`, pulled from Docker Hub, or with --local-base one bootstrapped
here with debootstrap (no registry needed).

`test` builds the image here the way users build it, from a locally bootstrapped Debian 12 base
(`debootstrap --variant=minbase bookworm` + `podman import`, cached as localhost/fcnkit-base:bookworm), with
`buildah bud --layers` (each step cached, so a warm re-run only repeats what changed), then runs inside the
image (`buildah run --isolation chroot`, no GPU): the entrypoint's --help, `caffe --version`, pycaffe (a GPU
build), `prep sample` + a CPU-mode `solve` of the tiny FCN-32s for a few iterations, `convert --verify` of
its snapshot, `remove-bg` on a photo, and `solve --gpu 0` refusing in one line (no GPU here).

Either way the image is built untagged (--iidfile) and tagged only when the build succeeded, so an
interrupted or failed build leaves no half-built image under the tag; buildah's working containers of the
interrupted build are removed. Standard library only (no venv needed).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import build_caffe as bc  # noqa: E402  (sibling scripts, not a package)
import check_gpu_build as cg  # noqa: E402

PROG = "container_build"
DOCKERFILE = ROOT / "Dockerfile.caffe"
LOCAL_BASE = "localhost/fcnkit-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
TEST_TAG = "localhost/fcnkit-caffe-gpu:test"
# One build at a time on a machine: after an interrupt, the working containers that appeared during the build
# are removed, which is only safe when no other build of ours runs beside it.
LOCK = Path(tempfile.gettempdir()) / "fcnkit-image-build.lock"


class ImageError(RuntimeError):
    """One line for the user: what is missing or wrong, and the fix."""


def say(msg: str) -> None:
    print(f"[image] {msg}", flush=True)


def fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s" if m else f"{s} s"


# ------------------------------------------------------------------------------------------- engines
def _docker_works() -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "no docker command"
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        return False, "docker info timed out"
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"docker is installed but its daemon does not answer ({tail})"
    return True, ""


def require_buildah(tools=("buildah",)) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ImageError(f"{' and '.join(missing)} not found; install with `apt-get install -y "
                         f"{' '.join(missing)}` (as root; `make setup` does it)")
    if os.geteuid() != 0:
        raise ImageError("buildah builds here with chroot isolation, which needs root; run as root (sudo make ...) "
                         "or use a machine with Docker")


def pick_engine(want: str) -> str:
    """docker where its daemon answers, else buildah; or the engine asked for."""
    if want in ("auto", "docker"):
        ok, why = _docker_works()
        if ok:
            return "docker"
        if want == "docker":
            raise ImageError(f"--engine docker: {why}; start the Docker daemon, or use --engine buildah")
        if shutil.which("buildah") is None:
            raise ImageError(f"neither Docker ({why}) nor buildah is available; install Docker, or buildah "
                             "(`apt-get install -y buildah`, as root)")
    require_buildah()
    return "buildah"


def image_exists(engine: str, ref: str) -> bool:
    cmd = (["docker", "image", "inspect", ref] if engine == "docker"
           else ["buildah", "inspect", "--type", "image", ref])
    return subprocess.run(cmd, capture_output=True).returncode == 0


def ensure_pulled(engine: str, ref: str) -> None:
    if image_exists(engine, ref):
        return
    say(f"pulling the base image {ref}")
    r = subprocess.run([engine, "pull", ref], capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"cannot pull the base image {ref} ({tail}); check access to Docker Hub, or build from a "
                         "locally bootstrapped Debian base with --local-base (make image IMAGE_FLAGS=--local-base)")


def ensure_local_base(engine: str) -> str:
    """localhost/fcnkit-base:bookworm: Debian 12 bootstrapped from Debian's archive (once; then cached)."""
    if image_exists(engine, LOCAL_BASE):
        return LOCAL_BASE
    need = ["debootstrap"] + (["podman"] if engine == "buildah" else [])
    missing = [t for t in need if shutil.which(t) is None]
    if missing:
        raise ImageError(f"{' and '.join(missing)} not found (needed to bootstrap the local Debian base); install "
                         f"with `apt-get install -y {' '.join(missing)}` (as root; `make setup` does it)")
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to bootstrap the local Debian base; run as root")
    t0 = time.time()
    say(f"bootstrapping a Debian {DEBIAN_SUITE} base (debootstrap --variant=minbase, {DEBIAN_MIRROR})")
    with tempfile.TemporaryDirectory(prefix="fcnkit-base-") as td:
        root = Path(td) / "root"
        r = subprocess.run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), DEBIAN_MIRROR],
                           capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stdout.strip().splitlines() + r.stderr.strip().splitlines() or ["no output"])[-1]
            raise ImageError(f"debootstrap failed ({tail}); check access to {DEBIAN_MIRROR}")
        subprocess.run(["rm", "-rf", str(root / "var/cache/apt/archives"), str(root / "var/lib/apt/lists")],
                       check=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        importer = "docker" if engine == "docker" else "podman"
        imp = subprocess.run([importer, "import", "--change", 'CMD ["/bin/bash"]', "-", LOCAL_BASE],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            tail = (imp.stderr.strip().splitlines() or ["no output"])[-1]
            raise ImageError(f"{importer} import of the bootstrapped base failed ({tail})")
    say(f"base {LOCAL_BASE} ready in {fmt_s(time.time() - t0)}")
    return LOCAL_BASE


# --------------------------------------------------------------------------------------------- build
def build_args(cuda_version: str | None, cuda_archs: str, jobs: int | None) -> dict[str, str]:
    """Dockerfile.caffe's build args, checked here so that a bad value fails in one line, not an hour in."""
    version = cuda_version or cg.container_cuda_version(DOCKERFILE)
    release = cg.release_for(version)
    args = {"CUDA_VERSION": version}
    if cuda_archs != "all":  # empty = every architecture that release targets (the Dockerfile's default)
        args["CUDA_ARCHS"] = ",".join(cg.resolve_archs(cuda_archs, cg.container_archs(release)))
    if jobs:
        if jobs < 1:
            raise ImageError(f"--jobs {jobs}: give a positive number of compile jobs")
        args["JOBS"] = str(jobs)
    return args


CA_MOUNT = "/run/fcnkit-host-ca.pem"  # where the build sees --ca-bundle (mounted read-only, never in a layer)


def host_ca_bundle(explicit: str | None) -> Path | None:
    """The CA bundle pip inside the build should trust: --ca-bundle, else the one this machine's pip is
    configured with (PIP_CERT or `pip config` global.cert: set where a proxy re-signs TLS), else none."""
    if explicit == "none":
        return None
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ImageError(f"--ca-bundle {explicit}: no such file; give a PEM bundle, or --ca-bundle none")
        return path
    cert = os.environ.get("PIP_CERT", "")
    if not cert:
        r = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.cert"], capture_output=True,
                           text=True)
        cert = r.stdout.strip() if r.returncode == 0 else ""
    return Path(cert) if cert and Path(cert).is_file() else None


def _working_containers() -> set[str]:
    r = subprocess.run(["buildah", "containers", "-q", "--notruncate"], capture_output=True, text=True)
    return set(r.stdout.split())


def _stop(proc: subprocess.Popen) -> None:
    """Stop the build and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def build_image(engine: str, tag: str, args: dict[str, str], log: Path | None = None,
                ca: Path | None = None) -> float:
    """Build Dockerfile.caffe untagged, then tag it: seconds taken. On failure or interrupt nothing is tagged
    and (buildah) the working containers the build left are removed."""
    lock = open(LOCK, "a")  # noqa: SIM115  (held until the build ends; closed below)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ImageError(f"another image build is running on this machine (lock {LOCK}); wait for it") from None
    try:
        return _build_locked(engine, tag, args, log, ca)
    finally:
        lock.close()


def _build_locked(engine: str, tag: str, args: dict[str, str], log: Path | None, ca: Path | None) -> float:
    with tempfile.TemporaryDirectory(prefix="fcnkit-image-") as td:
        iidfile = Path(td) / "iid"
        cmd = [engine, "build"] if engine == "docker" else [
            "buildah", "bud", "--layers", "--force-rm", "--format", "docker", "--isolation", "chroot"]
        if engine == "buildah" and "BASE_IMAGE" in args:
            cmd.append("--pull=never")  # the local base: never look for it in a registry
        if ca and engine == "buildah":
            cmd += ["--volume", f"{ca.resolve()}:{CA_MOUNT}:ro"]
            args = {**args, "PIP_CERT": CA_MOUNT}
            say(f"pip inside the build trusts {ca} (this machine's pip CA bundle; mounted, not copied)")
        elif ca:
            say(f"note: docker build cannot mount {ca}; pip inside the build uses its own CA roots "
                "(use --engine buildah where the network re-signs TLS)")
        cmd += ["-f", str(DOCKERFILE), "--iidfile", str(iidfile)]
        for k, v in args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        cmd.append(str(ROOT))
        say(f"building ({' '.join(f'{k}={v}' for k, v in args.items())}): {' '.join(cmd[:2])} ... "
            + (f"(log: {log})" if log else ""))
        before = _working_containers() if engine == "buildah" else set()
        t0 = time.time()
        out = open(log, "w") if log else None  # noqa: SIM115  (closed in finally)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True)
        ok = False
        try:
            rc = proc.wait()
            ok = rc == 0 and iidfile.is_file()
        finally:
            _stop(proc)
            if out:
                out.close()
            if not ok and engine == "buildah":
                for ctr in sorted(_working_containers() - before):
                    subprocess.run(["buildah", "rm", ctr], capture_output=True)
        if not ok:
            where = ""
            if log:
                lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] or ["(empty)"]
                where = f" ({lines[-1].strip()[:200]}); see {log}"
            raise ImageError(f"{engine} could not build {DOCKERFILE.name} (exit status {rc}){where}; "
                             f"nothing was tagged {tag}")
        iid = iidfile.read_text().strip()
        r = subprocess.run([engine, "tag", iid, tag], capture_output=True, text=True)
        if r.returncode != 0:
            raise ImageError(f"{engine} tag {iid} {tag} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        return time.time() - t0


# ------------------------------------------------------------------------------------- warm cache
# What Dockerfile.caffe's build stage reads before and at its Caffe step (the hour-long one): while none of
# these nor the build args change, the layer cache holds that step and a re-run takes minutes.
CACHE_INPUTS = ("Dockerfile.caffe", "tools/build_caffe.py", "tools/check_gpu_build.py", "tools/caffe_build",
                "pyproject.toml", "Makefile", "python/fcnkit/__init__.py", "python/fcnkit/convert/caffe_forks.proto")


def cache_key(args: dict[str, str]) -> str:
    h = hashlib.sha256(json.dumps(sorted(args.items())).encode())
    for rel in CACHE_INPUTS:
        path = ROOT / rel
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def stamp_path(tag: str) -> Path:
    return bc.default_cache() / f"image-test-{tag.replace('/', '_').replace(':', '_')}.json"


def is_warm(tag: str, args: dict[str, str]) -> tuple[bool, str]:
    """Whether the last successful build of `tag` here had these inputs and its image is still there."""
    try:
        stamp = json.loads(stamp_path(tag).read_text())
    except (OSError, ValueError):
        return False, "no successful image build on this machine yet"
    if stamp.get("key") != cache_key(args):
        return False, ("the recipe, dependencies or build args changed since the last build here "
                       f"({', '.join(CACHE_INPUTS[:4])}, ...)")
    if subprocess.run(["buildah", "inspect", "--type", "image", tag], capture_output=True).returncode != 0:
        return False, f"the image {tag} (and so maybe its layers) was removed"
    return True, f"built here {stamp.get('date', '?')} in {fmt_s(stamp.get('build_seconds', 0))}"


def write_stamp(tag: str, key: str, seconds: float) -> None:
    """key: cache_key() as the build started (the files it read then, whatever changed during it)."""
    path = stamp_path(tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "build_seconds": round(seconds),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------------- checks inside
@dataclass
class Check:
    name: str
    script: str  # run by /bin/bash -c in /work inside the image
    expect_rc: int = 0
    expect: str = ""  # a substring of the output
    one_line_error: str = ""  # the output must be exactly one line starting with this


CHECKS = (
    Check("entrypoint --help", "fcnkit --help", expect="solve"),
    Check("caffe --version", "caffe --version", expect="caffe version 1.0.0"),
    Check("pycaffe is the GPU build",
          "python -c 'import caffe; from fcnkit.caffenet.pycaffe import build_info; i = build_info(); "
          "assert i and i[\"gpu\"], i; "
          "print(\"GPU build\", i[\"key\"], \"sm_\" + \",sm_\".join(i[\"cuda\"][\"archs\"]))'",
          expect="GPU build"),
    Check("prep sample", "fcnkit prep sample --out data/tiny --n-white 30 --n-composite 10 --size 112 --quiet",
          expect="white 27+3"),
    Check("solve --cpu (real Caffe, tiny FCN-32s, 4 iterations)",
          "fcnkit solve solvers/tiny/fcn32s.prototxt --cpu --max-iter 4 --val-iter 1",
          expect="done: 4 iterations"),
    Check("convert --verify", "fcnkit convert prototxt/tiny/fcn32s/deploy.prototxt "
          "weights/snapshots/tiny/fcn32s_iter_4.caffemodel -o /tmp/fcn32s --verify -q", expect="verify: PASS"),
    Check("remove-bg (Caffe backend)",
          "python -c 'import cv2, skimage.data; cv2.imwrite(\"/tmp/photo.jpg\", skimage.data.coffee()[..., ::-1])' "
          "&& fcnkit remove-bg /tmp/photo.jpg --model /tmp/fcn32s --backend caffe -o /tmp/cut "
          "&& test -s /tmp/cut/photo_mask.png && test -s /tmp/cut/photo_cutout.png", expect="1 image(s)"),
    Check("solve --gpu 0 without a GPU: one line, exit 2", "fcnkit solve solvers/tiny/fcn32s.prototxt --gpu 0",
          expect_rc=2, one_line_error="solve: error: --gpu 0: no NVIDIA driver is visible"),
)


RC_MARK = "@@fcnkit-check-exit-status="


def run_checks(tag: str, checks=CHECKS, timeout: int = 900) -> list[str]:
    """Run each check in one working container of the image; return the failures (empty: all passed)."""
    r = subprocess.run(["buildah", "from", "--pull=never", tag], capture_output=True, text=True)
    if r.returncode != 0:
        raise ImageError(f"buildah from {tag} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    ctr = r.stdout.strip().splitlines()[-1]
    failures = []
    try:
        for c in checks:
            t0 = time.time()
            # The check's own output and exit status, apart from what buildah adds on a non-zero exit.
            wrapped = f"( {c.script} ) > /tmp/.check.out 2>&1; rc=$?; cat /tmp/.check.out; echo \"{RC_MARK}$rc\""
            cmd = ["buildah", "run", "--isolation", "chroot", "--workingdir", "/work", ctr, "--",
                   "/bin/bash", "-c", wrapped]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                output, _, rc_text = p.stdout.rstrip().rpartition(RC_MARK)
                rc = int(rc_text) if rc_text.strip().isdigit() else p.returncode
                output = output.strip() or p.stderr.strip()
            except subprocess.TimeoutExpired:
                rc, output = None, f"timed out after {timeout} s"
            lines = [ln for ln in output.splitlines() if ln.strip()]
            why = ""
            if rc != c.expect_rc:
                why = f"exit status {rc}, expected {c.expect_rc}"
            elif c.expect and c.expect not in output:
                why = f"output lacks {c.expect!r}"
            elif c.one_line_error and (len(lines) != 1 or not lines[0].startswith(c.one_line_error)):
                why = f"expected one line starting {c.one_line_error!r}, got {len(lines)}"
            status = "FAIL" if why else "ok"
            say(f"  {status:4} {c.name} ({time.time() - t0:.0f} s): "
                + (lines[-1][:160] if lines else "(no output)") + (f"  <- {why}" if why else ""))
            if why:
                failures.append(f"{c.name}: {why}\n    " + "\n    ".join(lines[-15:]))
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
    return failures


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    for name, default_archs, helptext in (("image", "all", "build the image (docker, else buildah)"),
                                          ("test", "ci", "build it here from a local base and check it inside")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--cuda-archs", default=default_archs,
                       help="all, ci (sm_75 only) or a comma list of the container's targets "
                       f"(default {default_archs})")
        s.add_argument("--cuda-version", default=None, help="a CUDA release tools/check_gpu_build.py knows "
                       "(default: Dockerfile.caffe's ARG CUDA_VERSION)")
        s.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
        s.add_argument("--log", type=Path, default=None, help="write the build's output here instead of the terminal")
        s.add_argument("--ca-bundle", default=None, metavar="PEM|none",
                       help="CA bundle for pip inside the build (default: this machine's pip `cert`, if set)")
        if name == "image":
            s.add_argument("--tag", default="caffe-gpu")
            s.add_argument("--engine", choices=("auto", "docker", "buildah"), default="auto")
            s.add_argument("--local-base", action="store_true",
                           help="bootstrap the Debian 12 base here (debootstrap) instead of pulling it")
        else:
            s.add_argument("--tag", default=TEST_TAG)
            s.add_argument("--if-warm", action="store_true",
                           help="only when the layer cache holds this recipe's Caffe build (CI); else say so, exit 0")
    return p.parse_args(argv)


def main_image(a: argparse.Namespace) -> int:
    args = build_args(a.cuda_version, a.cuda_archs, a.jobs)
    engine = pick_engine(a.engine)
    if a.local_base:
        args["BASE_IMAGE"] = ensure_local_base(engine)
    else:
        ensure_pulled(engine, "debian:bookworm-slim")
    seconds = build_image(engine, a.tag, args, a.log, host_ca_bundle(a.ca_bundle))
    say(f"built {a.tag} with {engine} in {fmt_s(seconds)}; run: docker run --gpus all {a.tag} --help")
    return 0


def main_test(a: argparse.Namespace) -> int:
    args = build_args(a.cuda_version, a.cuda_archs, a.jobs)
    try:
        require_buildah(("buildah", "podman", "debootstrap"))
    except ImageError as exc:
        if not a.if_warm:
            raise
        say(f"image-test SKIPPED: {exc}")
        return 0
    args["BASE_IMAGE"] = LOCAL_BASE
    if a.if_warm:
        warm, why = is_warm(a.tag, args)
        if not warm:
            say(f"image-test SKIPPED: its build cache is cold ({why}); a cold build takes about an hour on 2 "
                "cores (README, container section), so it runs only warm here; run `make image-test` once to warm it")
            return 0
        say(f"image-test: cache warm ({why})")
    t0 = time.time()
    ensure_local_base("buildah")
    key = cache_key(args)
    seconds = build_image("buildah", a.tag, args, a.log, host_ca_bundle(a.ca_bundle))
    write_stamp(a.tag, key, seconds)
    say(f"built {a.tag} in {fmt_s(seconds)}; checks inside the image (no GPU):")
    failures = run_checks(a.tag)
    say(f"image-test: {len(CHECKS) - len(failures)}/{len(CHECKS)} checks passed; build {fmt_s(seconds)}, "
        f"total {fmt_s(time.time() - t0)}")
    if failures:
        print(f"{PROG}: error: {len(failures)} check(s) failed inside {a.tag}:\n  " + "\n  ".join(failures),
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)

    def run() -> int:
        try:
            return main_image(a) if a.action == "image" else main_test(a)
        except (ImageError, bc.BuildError) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2

    return bc.interruptible(run, PROG)


if __name__ == "__main__":
    sys.exit(main())
