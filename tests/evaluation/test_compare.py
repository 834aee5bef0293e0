"""`fcnkit compare`: the whole benchmark on a small dataset (real training, real inference, real files), its
JSON keys, the seeds' table formats, the overlay grid, the floors, and the FCN rows from Caffe snapshots."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import ROOT, VENV_BIN
from fcnkit.apps.compare import markdown, run_compare
from fcnkit.errors import UserError

KEYS = {"name", "family", "framework", "supervision", "params", "train_seconds", "ms_per_image", "iou",
        "jaccard_mean", "jaccard_std", "hausdorff_mean", "hausdorff_std", "pixel_acc", "mean_iou"}
FAST = {"*": {"epochs": 1}, "patchcnn": {"epochs": 1, "patches_per_epoch": 256, "batch_size": 32}}


@pytest.fixture(scope="module")
def result(blob_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    r = run_compare("quick", out, models=["tiny/extractnet-simple", "patchcnn"], datasets=["white"], fcn="skip",
                    data_root=blob_dataset, train_overrides=FAST, log=lambda *a: None)
    return out, r


def test_outputs_and_keys(result):
    out, r = result
    saved = json.loads((out / "compare.json").read_text())
    assert saved["preset"] == "quick" and saved["data"]["white"]["val_images"] == 8
    names = [m["name"] for m in saved["models"] if not m["postprocess"]]
    assert names == ["baseline (Otsu + watershed)", "tiny/extractnet-simple", "patchcnn (tag-free)",
                     "patchcnn (val box)"]
    assert all(KEYS <= set(m) for m in saved["models"])
    assert len(saved["models"]) == 2 * len(names)  # every method again after ExtractNet's post-processing
    box = next(m for m in saved["models"] if m["name"] == "patchcnn (val box)")
    assert box["supervision"].startswith("boxes") and box["params"] == 392064
    assert (out / "overlays_white.png").stat().st_size > 1000
    side = json.loads((out / "checkpoints" / "white" / "tiny" / "extractnet-simple.json").read_text())
    assert side["epoch"] == 1 and side["recipe"]["epochs"] == 1  # the smoke schedule reached the trainer
    patch = json.loads((out / "checkpoints" / "white" / "patchcnn.json").read_text())["recipe"]
    assert (patch["epochs"], patch["patches_per_epoch"], patch["batch_size"]) == (1, 256, 32)


def test_markdown_has_the_seeds_formats_and_the_floors(result):
    out, r = result
    md = (out / "compare.md").read_text()
    for header in ("| Method | Jaccard index (%) | Hausdorff distance |", "| Model | Validation IoU |",
                   "| Net | pixel acc. | mean IU |", "## Floors", "## The LRN seed's claim"):
        assert header in md
    assert len(r["floors"]) == 3 and {f["model"] for f in r["floors"]} == {
        "tiny/extractnet-simple", "patchcnn (tag-free)", "patchcnn (val box)"}
    assert md == markdown(r)


def test_lrn_claim_holds_only_when_the_original_does_not_learn():
    from fcnkit.apps.compare import lrn_claim

    def rows(seed, original, baseline=40.0):
        out = [{"name": n, "dataset": "white", "postprocess": False, "learned": True, "jaccard_mean": j}
               for n, j in (("tiny/lrn", seed), ("tiny/lrn-original", original))]
        return out + [{"name": "baseline", "dataset": "white", "postprocess": False, "learned": False,
                       "jaccard_mean": baseline}]

    [c] = lrn_claim(rows(80.0, 30.0), ["white"])  # the original stays below the baseline: it did not learn
    assert c == {"dataset": "white", "seed_variant": "tiny/lrn", "original": "tiny/lrn-original", "jaccard_seed": 80.0,
                 "jaccard_original": 30.0, "baseline": 40.0, "original_learns": False, "seed_better": True,
                 "holds": True}
    [c] = lrn_claim(rows(80.0, 60.0), ["white"])  # worse, but it learns: the claim is not borne out
    assert (c["holds"], c["original_learns"], c["seed_better"]) == (False, True, True)
    [c] = lrn_claim(rows(50.0, 60.0), ["white"])
    assert (c["holds"], c["seed_better"]) == (False, False)


def test_bad_input(blob_dataset, tmp_path):
    with pytest.raises(UserError, match="unknown preset"):
        run_compare("fast", tmp_path)
    with pytest.raises(UserError, match="a Caffe model"):
        run_compare("quick", tmp_path, models=["tiny/fcn8s"], data_root=blob_dataset, datasets=["white"])
    with pytest.raises(UserError, match="no val_image_lmdb"):
        run_compare("quick", tmp_path, data_root=tmp_path, datasets=["white"], fcn="skip")
    assert not (tmp_path / "compare.json").exists()


def _root_with_snapshot(caffe, tmp_path, snapshot: bool):
    """A project root (FCNKIT_ROOT) sharing the committed nets, with a tiny/fcn8s snapshot or none."""
    root = tmp_path / "proj"
    root.mkdir()
    for d in ("prototxt", "solvers"):
        (root / d).symlink_to(ROOT / d)
    if snapshot:
        snap = root / "weights" / "snapshots" / "tiny"
        snap.mkdir(parents=True)
        caffe.Net(str(ROOT / "prototxt" / "tiny" / "fcn8s" / "deploy.prototxt"), caffe.TEST).save(
            str(snap / "fcn8s_iter_7.caffemodel"))
    return root


def run_cli(root, data, out, *extra):
    env = {**os.environ, "FCNKIT_ROOT": str(root)}
    return subprocess.run([str(VENV_BIN / "fcnkit"), "compare", "--data-root", str(data), "--datasets", "white",
                           "--models", "tiny/extractnet-simple", "--epochs", "1", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600, env=env)


def test_fcn_rows_come_from_the_caffe_snapshot_and_its_conversion(caffe, blob_dataset, tmp_path):
    root = _root_with_snapshot(caffe, tmp_path, snapshot=True)
    r = run_cli(root, blob_dataset, tmp_path / "out", "--fcn", "load")
    assert r.returncode == 0, r.stderr
    rows = {m["name"]: m for m in json.loads((tmp_path / "out" / "compare.json").read_text())["models"]
            if not m["postprocess"]}
    caffe_row, torch_row = rows["tiny/fcn8s (Caffe)"], rows["tiny/fcn8s (converted)"]
    assert caffe_row["framework"] == "caffe" and torch_row["framework"] == "torch"
    assert caffe_row["params"] == torch_row["params"] > 0
    assert caffe_row["jaccard_mean"] == pytest.approx(torch_row["jaccard_mean"], abs=1e-6)


def test_missing_fcn_snapshot_names_the_command(caffe, blob_dataset, tmp_path):
    root = _root_with_snapshot(caffe, tmp_path, snapshot=False)
    r = run_cli(root, blob_dataset, tmp_path / "out", "--fcn", "load")
    assert r.returncode == 2 and "run `make demo`" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "compare.json").exists()
