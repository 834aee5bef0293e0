"""VGG-16 ImageNet weights (Caffe Model Zoo), fetched and checked before FCN-32s starts from them.

The Model Zoo publishes no checksum for these files, so integrity is checked two ways: a SHA-256 the
user pins (`--sha256`, or the one recorded in weights/vgg16/SHA256SUMS by the first verified download),
and structurally: the caffemodel must parse and hold VGG-16's layers with VGG-16's blob shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

from fcnkit.caffe.nets import VGG_BLOCKS
from fcnkit.config.paths import VGG16_DIR
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import read_caffemodel
from fcnkit.io.download import download, file_digest

VGG_DIR = Path(VGG16_DIR)  # relative: solvers, and so `solve`, run from the project root
MODEL_URL = "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel"
DEPLOY_URL = ("https://gist.githubusercontent.com/ksimonyan/211839e770f7b538e2d8/raw/"
              "0067c9b32f60362c74f4c445a080beed06b07eb3/VGG_ILSVRC_16_layers_deploy.prototxt")
MODEL_FILE = "VGG_ILSVRC_16_layers.caffemodel"
DEPLOY_FILE = "VGG_ILSVRC_16_layers_deploy.prototxt"
VGG_MODEL = VGG_DIR / MODEL_FILE
VGG_DEPLOY = VGG_DIR / DEPLOY_FILE


def vgg16_shapes() -> dict[str, tuple[int, ...]]:
    """VGG-16 (configuration D): every layer's weight shape, with size-1 axes dropped."""
    shapes, c_in = {}, 3
    for block, reps, ch in VGG_BLOCKS:
        for i in range(1, reps + 1):
            shapes[f"conv{block}_{i}"] = (ch, c_in, 3, 3)
            c_in = ch
    shapes.update(fc6=(4096, 512 * 7 * 7), fc7=(4096, 4096), fc8=(1000, 4096))
    return shapes


def caffemodel_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{layer: first blob's shape, size-1 axes dropped} of a caffemodel (V0/V1 or current; no pycaffe)."""
    try:
        model = read_caffemodel(path)
    except UserError as exc:
        raise UserError(f"{path}: not a readable caffemodel ({exc}); delete it and fetch again") from None
    return {name: tuple(d for d in layer.blobs[0].declared if d != 1)
            for name, layer in model.layers.items() if layer.blobs}


def check_vgg16(path: Path) -> None:
    shapes = caffemodel_shapes(path)
    for name, want in vgg16_shapes().items():
        if name not in shapes:
            raise UserError(f"{path}: layer {name} missing; this is not the VGG-16 Model Zoo caffemodel")
        if shapes[name] != want:
            raise UserError(f"{path}: layer {name} has shape {shapes[name]}, VGG-16 has {want}")


def fetch_vgg16(dest: Path = VGG_DIR, *, model_url: str = MODEL_URL, deploy_url: str = DEPLOY_URL,
                sha256: str | None = None, quiet: bool = False) -> dict:
    dest = Path(dest)
    sums = dest / "SHA256SUMS"
    pinned = {}
    if sums.is_file():
        pinned = {name: digest for digest, name in (line.split() for line in sums.read_text().splitlines() if line)}
    want = sha256 or pinned.get(MODEL_FILE)
    model, deploy = dest / MODEL_FILE, dest / DEPLOY_FILE
    if not deploy.is_file():
        download(deploy_url, deploy, algo="sha256", digest=None, quiet=quiet)
    if not model.is_file():
        download(model_url, model, algo="sha256", digest=want, quiet=quiet)
    digest = file_digest(model, "sha256")
    if want and digest != want.lower():
        raise UserError(f"{model}: sha256 {digest} does not match {want}; delete it and fetch again")
    try:
        check_vgg16(model)
    except UserError:
        model.unlink()  # never leave a file that `solve` would trust
        raise
    if not want:
        tmp = sums.with_name(sums.name + ".tmp")
        tmp.write_text(f"{digest}  {MODEL_FILE}\n")
        os.replace(tmp, sums)
    return {"model": str(model), "deploy": str(deploy), "sha256": digest, "pinned": bool(want)}
