"""`prep real`: every real-photo dataset of ../shared/realdata (a --limit subset) prepared in one call, into the
layouts `evaluate` and the trainers read; a second call keeps what is already prepared."""

from __future__ import annotations

import json

from fcnkit.cli.prep import main
from fcnkit.data.datasets import load_samples
from fcnkit.prep.realdata import SETS, prepare_real
from prep_util import realdata


def test_every_set_in_one_call_then_kept(tmp_path, capsys):
    src = realdata()
    for name in ("sneakers_white", "scenes_bsds500", "portraits_shen", "duts", "fashion_ccp", "coco_val2017_subset"):
        realdata(name)  # skips (or fails under CI) unless every set is there
    out = tmp_path / "real"
    assert main(["real", str(src), "--out", str(out), "--limit", "16", "--quiet", "--workers", "1"]) == 0
    info = json.loads((out / "real.json").read_text())
    assert sorted(info["sets"]) == sorted(SETS)
    assert len(load_samples(out / "shoes" / "white", split="test")) == info["sets"]["shoes"]["counts"]["white"]["test"]
    assert len(load_samples(out / "shoes" / "composite", split="test")) == 2
    for name in ("portraits", "duts", "fashion"):
        assert len(load_samples(out / name / "test")) == info["sets"][name]["counts"]["test"] > 0
    assert info["sets"]["duts"]["counts"] == {"train": 14, "val": 2, "test": 16}
    assert len(load_samples(out / "coco")) == info["sets"]["coco"]["counts"]["kept"]
    capsys.readouterr()
    before = (out / "duts" / "dataset.json").stat().st_mtime_ns
    r = prepare_real(src, out, only=["duts"], limit=16, quiet=True, workers=1)
    assert r["sets"]["duts"].get("reused") and (out / "duts" / "dataset.json").stat().st_mtime_ns == before
    assert sorted(r["sets"]) == sorted(SETS)  # the others stay listed
    r = prepare_real(src, out, only=["duts"], limit=8, quiet=True, workers=1)  # other options: rebuilt
    assert not r["sets"]["duts"].get("reused") and r["sets"]["duts"]["counts"]["test"] == 8


def test_nothing_there_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["real", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none of the real-photo datasets is here" in err
    assert not (tmp_path / "out").exists()
