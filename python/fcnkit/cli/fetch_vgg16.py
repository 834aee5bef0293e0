"""`fcnkit fetch-vgg16` (= `python weights/fetch_vgg16.py`): VGG-16 ImageNet weights for FCN-32s."""

from __future__ import annotations

from pathlib import Path

from fcnkit.cli import Parser
from fcnkit.errors import cli_entry
from fcnkit.models.fcn.vgg16 import DEPLOY_URL, MODEL_URL, VGG_DIR, fetch_vgg16


@cli_entry("fetch-vgg16")
def main(argv=None) -> int:
    p = Parser(prog="fetch-vgg16", description="Fetch VGG-16 ImageNet weights for FCN-32s.")
    p.add_argument("--dest", type=Path, default=VGG_DIR)
    p.add_argument("--model-url", default=MODEL_URL)
    p.add_argument("--deploy-url", default=DEPLOY_URL)
    p.add_argument("--sha256", help="expected SHA-256 of the caffemodel (the Model Zoo publishes none)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    r = fetch_vgg16(a.dest, model_url=a.model_url, deploy_url=a.deploy_url, sha256=a.sha256, quiet=a.quiet)
    print(f"VGG-16: {r['model']} sha256 {r['sha256']} ({'verified' if r['pinned'] else 'recorded in SHA256SUMS'});"
          f" layers and shapes checked")
    return 0
