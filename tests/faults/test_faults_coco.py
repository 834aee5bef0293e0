"""`prep coco` on malformed annotation files: what breaks the index is one line naming the entry (exit 2,
nothing written); what is wrong inside one image's annotations (sizes, polygons, RLE) skips that image with
its reason in the manifest, and the good image is still kept. Real pycocotools, real files, the real CLI.
(Before: tracebacks, and a segfault on an image declaring 200000 x 200000.)"""

from __future__ import annotations

import copy
import json
import sys

import cv2
import numpy as np
import pytest
from conftest import one_error_line, run_cli


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def base():
    """Image 1 (the good one, kept) and image 2 (the one each case breaks), 100 x 100, a person each."""
    images = [{"id": i, "file_name": f"im{i}.jpg", "height": 100, "width": 100} for i in (1, 2)]
    anns = [{"id": 10 * i, "image_id": i, "category_id": 1, "iscrowd": 0, "segmentation": rect(20, 10, 70, 90),
             "area": 4000.0, "bbox": [20, 10, 50, 80]} for i in (1, 2)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}


@pytest.fixture
def imgs(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in (1, 2):
        cv2.imwrite(str(d / f"im{i}.jpg"), np.full((100, 100, 3), 90 * i, np.uint8))
    return d


def _image(data, **kv):
    data["images"][1].update(kv)
    return data


def _seg(data, seg):
    data["annotations"][1]["segmentation"] = seg
    return data


def _without(data, where, key):
    del data[where][1][key]
    return data


# (what, edit of the annotation data) -> image 2 is skipped with a reason naming the problem
SKIPPED = {
    "200000 x 200000 declared": (lambda d: _image(d, height=200000, width=200000), "pixel"),
    "zero height": (lambda d: _image(d, height=0), "positive whole numbers"),
    "negative width": (lambda d: _image(d, width=-5), "positive whole numbers"),
    "string size": (lambda d: _image(d, width="100"), "positive whole numbers"),
    "missing size": (lambda d: _without(d, "images", "height"), "positive whole numbers"),
    "polygon of 0 points": (lambda d: _seg(d, [[]]), "fewer than 3 points"),
    "polygon of 1 point": (lambda d: _seg(d, [[5, 5]]), "fewer than 3 points"),
    "polygon of 2 points": (lambda d: _seg(d, [[5, 5, 10, 10]]), "fewer than 3 points"),
    "odd coordinates": (lambda d: _seg(d, [[5, 5, 10, 10, 20]]), "fewer than 3 points"),
    "NaN coordinate": (lambda d: _seg(d, [[5, 5, 10, float("nan"), 20, 20]]), "finite number"),
    "string coordinate": (lambda d: _seg(d, [[5, 5, 10, "x", 20, 20]]), "finite number"),
    "empty polygon list": (lambda d: _seg(d, []), "empty polygon list"),
    "no segmentation": (lambda d: _without(d, "annotations", "segmentation"), "no segmentation"),
    "RLE garbage string": (lambda d: _seg(d, {"size": [100, 100], "counts": "\x01\x02zz~~"}), "compressed RLE"),
    "RLE of 37 GiB": (lambda d: _seg(d, {"size": [200000, 200000], "counts": [40_000_000_000]}), "RLE size"),
    "RLE negative counts": (lambda d: _seg(d, {"size": [100, 100], "counts": [5000, -10, 5010]}), "non-negative"),
    "RLE short of the image": (lambda d: _seg(d, {"size": [100, 100], "counts": [10, 20]}), "cover 30 pixels"),
    "RLE without counts": (lambda d: _seg(d, {"size": [100, 100]}), "RLE without counts"),
}

# -> the whole file is refused with one line
REFUSED = {
    "duplicate image ids": (lambda d: _image(d, id=1), "image id 1 appears twice"),
    "image without id": (lambda d: _without(d, "images", "id"), "images[1] has no integer id"),
    "annotation without id": (lambda d: _without(d, "annotations", "id"), "annotations[1] has no integer id"),
    "annotation without image_id": (lambda d: _without(d, "annotations", "image_id"), "no integer image_id"),
    "annotation without category": (lambda d: _without(d, "annotations", "category_id"), "no integer category_id"),
    "categories not a list": (lambda d: {**d, "categories": {"id": 1}}, "not COCO instance annotations"),
    "top level a list": (lambda d: [d], "not COCO instance annotations"),
}


def _run(tmp_path, imgs, data, *extra, text=None):
    ann = tmp_path / "ann.json"
    ann.write_text(text if text is not None else json.dumps(data))
    out = tmp_path / "out"
    return run_cli("prep", "coco", ann, imgs, "--out", out, "--quiet", *extra, timeout=300), out


@pytest.mark.parametrize("case", list(SKIPPED))
def test_a_malformed_image_or_annotation_is_skipped_with_its_reason(tmp_path, imgs, case):
    edit, words = SKIPPED[case]
    r, out = _run(tmp_path, imgs, edit(copy.deepcopy(base())))
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert rows[1]["kept"], rows
    assert not rows[2]["kept"] and words in rows[2]["reason"], rows[2]
    assert rows[2]["code"] in ("bad-image", "bad-annotation"), rows[2]


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_broken_index_is_one_line(tmp_path, imgs, case):
    edit, words = REFUSED[case]
    r, out = _run(tmp_path, imgs, edit(copy.deepcopy(base())))
    assert words in one_error_line(r, "prep")
    assert not out.exists()


def test_deep_json_and_size_zero_are_one_line(tmp_path, imgs):
    depth = 100_000
    r, out = _run(tmp_path, imgs, None, text="[" * depth + "]" * depth)
    assert "nested too deeply" in one_error_line(r, "prep") or "not a readable JSON" in r.stderr
    r, out = _run(tmp_path, imgs, base(), "--size", "0")
    assert "--size" in one_error_line(r, "prep coco")
    assert not out.exists()
    assert sys.getrecursionlimit() < depth  # the case is deep enough to hit the limit
