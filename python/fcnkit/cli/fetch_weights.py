"""`fcnkit fetch-weights NAME...`: Caffe Model Zoo ImageNet weights for the encoders (see models.encoders.zoo).

NAME is vgg16, vgg19, resnet50 or resnet152 (or `all`). Each goes to weights/NAME/ (deploy prototxt +
caffemodel), verified against its reference SHA-1 (VGG-19, ResNet-50/152) or the SHA-256 pinned in
weights/NAME/SHA256SUMS by the first download, and structurally (every encoder layer, exact shapes).
"""

from __future__ import annotations

from fcnkit.cli import doc_parser
from fcnkit.errors import UserError, cli_entry
from fcnkit.models.encoders.releases import RELEASES, fetch_release, get_release


@cli_entry("fetch-weights")
def main(argv=None) -> int:
    p = doc_parser("fetch-weights", __doc__)
    p.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(RELEASES)} or all")
    p.add_argument("--dest", help="folder for the files (default weights/NAME; one NAME only)")
    p.add_argument("--model-url", help="a mirror of the caffemodel (one NAME only)")
    p.add_argument("--deploy-url", help="a mirror of the deploy prototxt (one NAME only)")
    p.add_argument("--sha256", help="expected SHA-256 of the caffemodel (overrides the reference digest)")
    p.add_argument("--sha1", help="expected SHA-1 of the caffemodel (overrides the reference digest)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    names = list(RELEASES) if a.names == ["all"] else a.names
    releases = [get_release(n) for n in names]
    if len(releases) > 1 and (a.dest or a.model_url or a.deploy_url or a.sha256 or a.sha1):
        raise UserError("--dest, --model-url, --deploy-url and --sha256/--sha1 apply to one NAME at a time")
    digest, algo = (a.sha256, "sha256") if a.sha256 else ((a.sha1, "sha1") if a.sha1 else (None, None))
    for rel in releases:
        r = fetch_release(rel, a.dest, model_url=a.model_url, deploy_url=a.deploy_url, digest=digest, algo=algo,
                          quiet=a.quiet)
        how = f"{r['algo']} verified" if r["pinned"] else "sha256 recorded in SHA256SUMS"
        print(f"{rel.title}: {r['model']} ({how}); encoder layers and shapes checked")
    return 0
