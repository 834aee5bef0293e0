"""ImageNet weights from the Caffe Model Zoo releases, fetched with checksums and loaded into the encoders.

Every release is a deploy prototxt + caffemodel pair in `weights/<name>/`. `fetch_release` downloads them
(`fcnkit.io.download`: resumable, verified before the final rename) and checks the caffemodel two ways:
against a digest (the published reference digest where one exists, else the SHA-256 pinned by the first
verified download in `SHA256SUMS` or given with --sha256) and structurally (it must parse and hold every
encoder layer with the encoder's exact shape); a file failing either is deleted. `load_pretrained`
converts the pair with the project's own Caffe -> PyTorch converter (`fcnkit.caffenet.graph.build_graph`:
the same per-layer code, blob checks and Caffe BatchNorm/Scale handling as `convert`) and copies the
tensors into an encoder by Caffe layer name.

Reference digests: SHA-1 of VGG-19 and ResNet-50/152 as pinned by MXNet's Caffe model-zoo converter
(tools/caffe_converter/convert_caffe_modelzoo.py); the VGG-16 release has none pinned here (recorded on
first download, as `fetch-vgg16` always did).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fcnkit.caffenet.graph import build_graph
from fcnkit.config.paths import in_project
from fcnkit.errors import UserError
from fcnkit.io import caffe_schema as schema
from fcnkit.io.atomic import write_text_atomic
from fcnkit.io.caffe_schema import read_caffemodel
from fcnkit.io.download import download, file_digest
from fcnkit.models.encoders.resnet import ResNetEncoder
from fcnkit.models.encoders.vgg import VGGEncoder

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class Release:
    name: str                 # what `fcnkit fetch-weights NAME` takes
    title: str
    folder: str               # project-relative
    model_file: str
    model_url: str
    deploy_file: str
    deploy_url: str
    encoder: tuple[str, int]  # ("vgg" | "resnet", depth): the encoder these weights fill
    digest_algo: str = "sha256"
    digest: str | None = None  # published reference digest of the caffemodel, if any

    @property
    def fetch_command(self) -> str:
        return f"fcnkit fetch-weights {self.name}"

    def paths(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """(deploy, caffemodel) under `folder` (default: the project's weights/<name>)."""
        root = Path(folder) if folder is not None else in_project(self.folder)
        return root / self.deploy_file, root / self.model_file


_KAIMING = "https://raw.githubusercontent.com/KaimingHe/deep-residual-networks/master/prototxt"
RELEASES = {r.name: r for r in (
    Release("vgg16", "VGG-16", "weights/vgg16", "VGG_ILSVRC_16_layers.caffemodel",
            "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel",
            "VGG_ILSVRC_16_layers_deploy.prototxt",
            "https://gist.githubusercontent.com/ksimonyan/211839e770f7b538e2d8/raw/"
            "0067c9b32f60362c74f4c445a080beed06b07eb3/VGG_ILSVRC_16_layers_deploy.prototxt", ("vgg", 16)),
    Release("vgg19", "VGG-19", "weights/vgg19", "VGG_ILSVRC_19_layers.caffemodel",
            "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_19_layers.caffemodel",
            "VGG_ILSVRC_19_layers_deploy.prototxt",
            "https://gist.githubusercontent.com/ksimonyan/3785162f95cd2d5fee77/raw/"
            "VGG_ILSVRC_19_layers_deploy.prototxt", ("vgg", 19),
            "sha1", "239785e7862442717d831f682bb824055e51e9ba"),
    Release("resnet50", "ResNet-50", "weights/resnet50", "ResNet-50-model.caffemodel",
            "https://deepdetect.com/models/resnet/ResNet-50-model.caffemodel",
            "ResNet-50-deploy.prototxt", f"{_KAIMING}/ResNet-50-deploy.prototxt", ("resnet", 50),
            "sha1", "b7c79ccc21ad0479cddc0dd78b1d20c4d722908d"),
    Release("resnet152", "ResNet-152", "weights/resnet152", "ResNet-152-model.caffemodel",
            "https://deepdetect.com/models/resnet/ResNet-152-model.caffemodel",
            "ResNet-152-deploy.prototxt", f"{_KAIMING}/ResNet-152-deploy.prototxt", ("resnet", 152),
            "sha1", "251edb93604ac8268c7fd2227a0f15144310e1aa"),
)}


def get_release(name: str) -> Release:
    if name not in RELEASES:
        raise UserError(f"unknown weights {name!r}; choose one of: {', '.join(RELEASES)}")
    return RELEASES[name]


def build_encoder(kind: str, depth: int, width: float = 1.0):
    if kind == "vgg":
        return VGGEncoder(depth, width)

    return ResNetEncoder(depth, width)


def caffemodel_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{layer: first blob's shape, size-1 axes dropped} of a caffemodel (V0/V1 or current; no pycaffe)."""
    try:
        model = read_caffemodel(path)
    except UserError as exc:
        raise UserError(f"{path}: not a readable caffemodel ({exc}); delete it and fetch again") from None
    return {name: tuple(d for d in layer.blobs[0].declared if d != 1)
            for name, layer in model.layers.items() if layer.blobs}


def expected_shapes(release: Release) -> dict[str, tuple[int, ...]]:
    """Every Caffe layer the encoder takes -> its first blob's shape (size-1 axes dropped)."""
    with torch.device("meta"):
        enc = build_encoder(*release.encoder)
    state = enc.state_dict()
    return {layer: tuple(d for d in state[next(iter(keys.values()))].shape if d != 1)
            for layer, keys in enc.caffe_layers().items()}


def check_deploy(release: Release, path: Path) -> None:
    """The deploy prototxt parses and names every encoder layer (a file cut short does not), else UserError.
    No checksum is published for the deploy files, so this is what proves one complete."""
    raw = schema.load_prototxt(path, "deploy prototxt")
    names = {layer.name for layer in raw.layer} | {layer.name for layer in raw.layers}
    missing = sorted(set(expected_shapes(release)) - names)
    if missing:
        raise UserError(f"{path}: has no layer {missing[0]} (of {len(missing)} missing); it is not the (whole) "
                        f"{release.title} deploy prototxt")


def check_release(release: Release, path: Path) -> None:
    """The caffemodel parses and holds every encoder layer with the encoder's shape (else UserError)."""
    have = caffemodel_shapes(path)
    for name, want in expected_shapes(release).items():
        if name not in have:
            raise UserError(f"{path}: layer {name} missing; this is not the {release.title} Model Zoo caffemodel")
        if have[name] != want:
            raise UserError(f"{path}: layer {name} has shape {have[name]}, {release.title} has {want}")


def fetch_release(release: Release, dest: str | Path | None = None, *, model_url: str | None = None,
                  deploy_url: str | None = None, digest: str | None = None, algo: str | None = None,
                  quiet: bool = False, check: Callable[[Path], None] | None = None) -> dict:
    """Download (unless present) and verify a release into `dest`; returns paths, digest and how it was checked.

    The caffemodel is verified against `digest` (hex, `algo`), else the release's published digest, else the
    SHA-256 pinned in DEST/SHA256SUMS; with none of them its SHA-256 is pinned there after the structural
    check passes."""
    dest = Path(dest) if dest is not None else in_project(release.folder)
    sums = dest / SUMS_FILE
    pinned = {}
    if sums.is_file():
        pinned = {n: d for d, n in (line.split() for line in sums.read_text().splitlines() if line.strip())}
    if digest:
        algo = algo or "sha256"
    elif release.digest:
        algo, digest = release.digest_algo, release.digest
    else:
        algo, digest = "sha256", pinned.get(release.model_file)
    deploy, model = dest / release.deploy_file, dest / release.model_file
    if deploy.is_file():
        try:
            check_deploy(release, deploy)
        except UserError:  # cut short by an earlier run (no checksum is published for it): fetch it again
            deploy.unlink()
    if not deploy.is_file():
        download(deploy_url or release.deploy_url, deploy, algo="sha256", digest=None, quiet=quiet,
                 validate=lambda p: check_deploy(release, p))
    if not model.is_file():
        download(model_url or release.model_url, model, algo=algo, digest=digest, quiet=quiet)
    got = file_digest(model, algo)
    if digest and got != digest.lower():
        raise UserError(f"{model}: {algo} {got} does not match {digest}; delete it and fetch again")
    try:
        (check or (lambda p: check_release(release, p)))(model)
    except UserError:
        model.unlink()  # never leave a file that training would trust
        raise
    if not digest:
        write_text_atomic(sums, f"{file_digest(model, 'sha256')}  {release.model_file}\n")
    sha256 = got if algo == "sha256" else file_digest(model, "sha256")
    return {"model": str(model), "deploy": str(deploy), "sha256": sha256, "algo": algo, "pinned": bool(digest)}


def converted_tensors(deploy: Path, model: Path, layers: set[str]) -> dict[str, dict]:
    """{Caffe layer: {state key: float32 array}} of the wanted layers, by the project's converter."""
    raw = schema.load_prototxt(deploy)
    net, _ = schema.upgrade_net(raw, str(deploy))
    net = schema.filter_net(net, "TEST")
    graph = build_graph(net, schema.read_caffemodel(model), str(deploy), str(model), name=raw.name)
    return {n.name: n.spec.params for n in graph.modules() if n.name in layers}


def load_pretrained(encoder, release: Release | str, folder: str | Path | None = None) -> dict:
    """Fill `encoder` (width 1) with a release's ImageNet weights, layer by Caffe layer name.

    A missing file names the fetch command; a missing layer or a shape mismatch names the layer."""
    release = get_release(release) if isinstance(release, str) else release
    deploy, model = release.paths(folder)
    for p in (model, deploy):
        if not p.is_file():
            raise UserError(f"{p}: {release.title} ImageNet weights not found; fetch them with "
                            f"`{release.fetch_command}`")
    wanted = encoder.caffe_layers()
    tensors = converted_tensors(deploy, model, set(wanted))
    own = encoder.state_dict()
    state = {}
    for layer, keys in wanted.items():
        if layer not in tensors:
            raise UserError(f"{model}: layer {layer} missing; this is not the {release.title} caffemodel "
                            f"(fetch it with `{release.fetch_command}`)")
        for src, dst in keys.items():
            arr = tensors[layer].get(src)
            if arr is None or tuple(arr.shape) != tuple(own[dst].shape):
                got = None if arr is None else tuple(arr.shape)
                raise UserError(f"{model}: layer {layer} {src} has shape {got}, the encoder needs "
                                f"{tuple(own[dst].shape)} (only width 1 takes the released weights)")
            state[dst] = torch.from_numpy(arr.copy())
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise RuntimeError(f"encoder keys without a Caffe source: {missing[:5]}")
    encoder.load_state_dict(state, strict=False)
    return {"release": release.name, "model": str(model), "layers": len(wanted)}
