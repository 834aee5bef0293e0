"""VGG-16 ImageNet weights (Caffe Model Zoo), fetched and checked before FCN-32s starts from them.

The Model Zoo publishes no checksum for these files, so integrity is checked two ways: a SHA-256 the
user pins (`--sha256`, or the one recorded in weights/vgg16/SHA256SUMS by the first verified download),
and structurally: the caffemodel must parse and hold VGG-16's layers with VGG-16's blob shapes.
"""

from __future__ import annotations

from pathlib import Path

from fcnkit.config.paths import VGG16_DIR
from fcnkit.errors import UserError
from fcnkit.models.encoders.releases import RELEASES, caffemodel_shapes, fetch_release
from fcnkit.models.fcn.nets import VGG_BLOCKS

_RELEASE = RELEASES["vgg16"]
VGG_DIR = Path(VGG16_DIR)  # relative: solvers, and so `solve`, run from the project root
MODEL_URL, DEPLOY_URL = _RELEASE.model_url, _RELEASE.deploy_url
MODEL_FILE, DEPLOY_FILE = _RELEASE.model_file, _RELEASE.deploy_file
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


def check_vgg16(path: Path) -> None:
    shapes = caffemodel_shapes(path)
    for name, want in vgg16_shapes().items():
        if name not in shapes:
            raise UserError(f"{path}: layer {name} missing; this is not the VGG-16 Model Zoo caffemodel")
        if shapes[name] != want:
            raise UserError(f"{path}: layer {name} has shape {shapes[name]}, VGG-16 has {want}")


def fetch_vgg16(dest: Path = VGG_DIR, *, model_url: str = MODEL_URL, deploy_url: str = DEPLOY_URL,
                sha256: str | None = None, quiet: bool = False) -> dict:
    """The Model Zoo release `vgg16` (fcnkit.models.encoders.releases), checked with VGG-16's full layer list."""
    return fetch_release(_RELEASE, dest, model_url=model_url, deploy_url=deploy_url, digest=sha256,
                         algo="sha256", quiet=quiet, check=check_vgg16)
