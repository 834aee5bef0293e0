"""Shared fixtures. Everything here is real: real Caffe, real LMDB, real files."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# Fixtures that need the pycaffe build / a 127.0.0.1 server: tests using them get the marker automatically.
CAFFE_FIXTURES = {"caffe", "threshold_model", "vgg16_standin"}
NETWORK_FIXTURES = {"http_dir"}


def pytest_collection_modifyitems(items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & CAFFE_FIXTURES:
            item.add_marker(pytest.mark.caffe)
        if names & NETWORK_FIXTURES:
            item.add_marker(pytest.mark.network)


@pytest.fixture(scope="session")
def caffe():
    from fcnkit.caffenet.pycaffe import load_caffe

    return load_caffe()


def make_blob_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n BGR uint8 images (N, 3, S, S) of a bright ellipse on a noisy dark field, and its (N, 1, S, S) mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.integers(0, 60, (n, 3, size, size), dtype=np.uint8)
    labels = np.zeros((n, 1, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.15, 0.3, 2) * size
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        labels[i, 0][inside] = 1
        images[i][:, inside] = rng.integers(150, 255, (3, 1), dtype=np.uint8)
    return images, labels


def tiny_seg_net(caffe, image_lmdb, label_lmdb, batch=4):
    """conv-pool-score -> bilinear Deconvolution x2 -> Crop to the input -> loss + Python accuracy."""
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Data(source=str(image_lmdb), backend=P.Data.LMDB, batch_size=batch,
                    transform_param=dict(scale=1 / 255.0))
    n.label = L.Data(source=str(label_lmdb), backend=P.Data.LMDB, batch_size=batch)
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=3, pad=1, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.score = L.Convolution(n.pool1, num_output=2, kernel_size=1, weight_filler=dict(type="xavier"))
    n.up = L.Deconvolution(n.score, convolution_param=dict(num_output=2, kernel_size=4, stride=2, group=2,
                                                           bias_term=False, weight_filler=dict(type="bilinear")),
                           param=[dict(lr_mult=0)])
    n.upc = L.Crop(n.up, n.data, axis=2, offset=1)
    n.loss = L.SoftmaxWithLoss(n.upc, n.label, loss_param=dict(normalize=False, ignore_label=255))
    n.acc = L.Python(n.upc, n.label, module="fcnkit.caffe.pylayers", layer="PixelAccuracy", param_str="255")
    return n.to_proto()


def write_lmdb_pair(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "") -> tuple[Path, Path]:
    """An image LMDB and a label LMDB with identical keys, as `prep lmdb` writes them."""
    from fcnkit.io.lmdb_io import LMDBWriter, encode_datum

    paths = []
    for name, arrays in (("image", images), ("label", labels)):
        path = root / f"{prefix}{name}_lmdb"
        with LMDBWriter(path) as w:
            for i, a in enumerate(arrays):
                w.put(f"{i:08d}", encode_datum(a))
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def blob_lmdbs(tmp_path_factory):
    """A paired image/label LMDB of 8 synthetic 24x24 images, plus the arrays written."""
    root = tmp_path_factory.mktemp("lmdb")
    images, labels = make_blob_images(8, 24)
    image_lmdb, label_lmdb = write_lmdb_pair(root, images, labels)
    return image_lmdb, label_lmdb, images, labels


@pytest.fixture(scope="session")
def vgg16_standin(tmp_path_factory, caffe):
    """(deploy, caffemodel): VGG-16's Model Zoo layer names and shapes, random weights (the real file
    cannot be downloaded here). 553 MB, like the real one: larger than Caffe's stock 512 MiB proto cap."""
    root = tmp_path_factory.mktemp("vgg16")
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 224, 224]))
    top = n.data
    filler = dict(weight_filler=dict(type="gaussian", std=0.01), bias_filler=dict(type="uniform", min=-1, max=1))
    for block, reps, ch in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
        for i in range(1, reps + 1):
            top = L.Convolution(top, num_output=ch, kernel_size=3, pad=1, **filler)
            setattr(n, f"conv{block}_{i}", top)
            top = L.ReLU(top, in_place=True)
            setattr(n, f"relu{block}_{i}", top)
        top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        setattr(n, f"pool{block}", top)
    n.fc6 = L.InnerProduct(top, num_output=4096, **filler)
    n.fc7 = L.InnerProduct(n.fc6, num_output=4096, **filler)
    n.fc8 = L.InnerProduct(n.fc7, num_output=1000, **filler)
    deploy, model = root / "VGG_ILSVRC_16_layers_deploy.prototxt", root / "VGG_ILSVRC_16_layers.caffemodel"
    deploy.write_text(str(n.to_proto()))
    caffe.Net(str(deploy), caffe.TEST).save(str(model))
    return deploy, model


def make_threshold_fcn(caffe, root):
    """A deploy net (conv3x3 -> ReLU -> conv1x1 `score`) whose hand-set weights call bright pixels class 1,
    saved as a caffemodel and converted to PyTorch with the project's converter."""
    from fcnkit.convert.convert import convert

    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 24, 24]))
    n.conv1 = L.Convolution(n.data, num_output=2, kernel_size=3, pad=1)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.score = L.Convolution(n.relu1, num_output=2, kernel_size=1)
    deploy, model = root / "deploy.prototxt", root / "net.caffemodel"
    deploy.write_text(str(n.to_proto()))
    net = caffe.Net(str(deploy), caffe.TEST)
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, :, 1, 1] = -1 / 3  # channel 0: darkness, channel 1: brightness (3x3 centre tap only)
    w[1, :, 1, 1] = 1 / 3
    net.params["conv1"][0].data[...] = w
    net.params["conv1"][1].data[...] = [0, 0]
    net.params["score"][0].data[...] = np.array([[1, 0], [0, 1]], np.float32).reshape(2, 2, 1, 1)
    net.params["score"][1].data[...] = [0, 0]
    net.save(str(model))
    convert(deploy, model, root / "torch", mean=[104.00699, 116.66877, 122.67892], check_export=False)
    return root / "torch"


@pytest.fixture(scope="session")
def threshold_model(caffe, tmp_path_factory):
    """A converted model folder (and its Caffe source) that segments bright pixels: see make_threshold_fcn."""
    return make_threshold_fcn(caffe, tmp_path_factory.mktemp("fcn"))


@pytest.fixture
def http_dir(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (the only network tests may use); yields (dir, base_url)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


# ------------------------------------------------------------------------------ faults: real filesystems
def _mount(args: list[str]) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'mount failed'}); the test needs root")


@pytest.fixture
def tmpfs(tmp_path):
    """Factory for real filesystems that fail the way disks do: `tmpfs(size="64k")` is a small tmpfs that
    fills up (ENOSPC); `tmpfs(readonly=True, populate=fn)` is one remounted read-only (EROFS) after `fn(dir)`
    put files in it. Unmounted after the test."""
    mounts = []

    def make(size: str = "1m", readonly: bool = False, populate=None) -> Path:
        d = tmp_path / f"fs{len(mounts)}"
        d.mkdir()
        _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)])
        mounts.append(d)
        if populate is not None:
            populate(d)
        if readonly:
            _mount(["-o", "remount,ro", str(d)])
        return d

    yield make
    for d in reversed(mounts):
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def sigint_default() -> None:
    """Popen(preexec_fn=...) for tests that press Ctrl-C: the child gets the default SIGINT disposition even
    when the test run itself was started with SIGINT ignored (`nohup`, a script's `make test &`), where a
    child would inherit the ignore and, as Unix programs do, keep it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one_error_line(r: subprocess.CompletedProcess, prog: str, code: int = 2) -> str:
    """The promise for bad input: exit status `code`, exactly one line on stderr, `prog: error: ...`,
    no traceback. Returns the line."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run an installed console script (VENV_BIN/NAME ...) as a real process."""
    return subprocess.run([str(VENV_BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def write_lmdb_dataset(root: Path, n_train: int = 16, n_val: int = 8, size: int = 32, seed: int = 0) -> Path:
    """ROOT/{train,val}_{image,label}_lmdb of bright ellipses on dark noise (the layout `prep lmdb` writes)."""
    images, labels = make_blob_images(n_train + n_val, size, seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, sl in (("train", slice(0, n_train)), ("val", slice(n_train, None))):
        write_lmdb_pair(root, images[sl], labels[sl], prefix=f"{split}_")
    return root


@pytest.fixture(scope="session")
def blob_dataset(tmp_path_factory):
    """A compare-style data root: ROOT/white/{train,val}_{image,label}_lmdb, 16 + 8 images of 32x32."""
    root = tmp_path_factory.mktemp("blobdata")
    write_lmdb_dataset(root / "white")
    return root


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference of `a` from `b`, relative to the largest magnitude of `b`."""
    scale = float(np.abs(b).max()) if b.size else 0.0
    err = float(np.abs(a - b).max()) if b.size else 0.0
    return err / scale if scale else err


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(world: int, *args, cwd, timeout_s: int = 60) -> list[subprocess.Popen]:
    """`world` real processes of an installed command, each with the environment torchrun gives a rank
    (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT on 127.0.0.1; gloo on the CPU), one thread each."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "FCNKIT_DIST_TIMEOUT": str(timeout_s)}
        procs.append(subprocess.Popen([str(VENV_BIN / args[0]), *map(str, args[1:])], cwd=cwd, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def torchrun(nproc: int, *args, cwd, timeout=300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N -m fcnkit ARGS` from the venv, as users launch it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FCNKIT_DIST_TIMEOUT": "60"}
    return subprocess.run([str(VENV_BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}", "-m", "fcnkit",
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def fixed_output(out):
    """A module whose forward returns `out` whatever it is fed: loss tests hand a loss chosen logits."""
    import torch  # noqa: PLC0415  (collection stays torch-free)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return out

    return Fixed()
