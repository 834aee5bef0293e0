"""Registered models with weights on this machine: which `serve` offers without --model and which is the
default (every one, best first), and `remove-bg --model NAME`. A stand-in project root holds real Caffe
snapshots of two tiny stages (random weights of the committed deploy nets)."""

from __future__ import annotations

import pytest
from conftest import ROOT


@pytest.fixture
def project_with_two_snapshots(caffe, tmp_path, monkeypatch):
    from fcnkit import models
    from fcnkit.config import paths

    root = tmp_path / "project"
    root.mkdir()
    (root / "prototxt").symlink_to(ROOT / "prototxt")
    for name in ("tiny/fcn32s", "tiny/fcn8s_finetune"):
        spec = models.get(name)
        snap = root / f"{spec.snapshot_prefix}_iter_4.caffemodel"
        snap.parent.mkdir(parents=True, exist_ok=True)
        caffe.Net(str(ROOT / spec.deploy), caffe.TEST).save(str(snap))
    monkeypatch.setenv("FCNKIT_ROOT", str(root))
    paths.project_root.cache_clear()
    yield root
    paths.project_root.cache_clear()


def test_every_trained_model_is_offered_and_the_best_is_the_default(project_with_two_snapshots):
    from fcnkit.apps.serve.catalog import load_catalog

    notes = []
    cat = load_catalog(None, log=notes.append)
    assert set(cat.entries) == {"tiny/fcn32s", "tiny/fcn8s_finetune"}
    assert cat.default == "tiny/fcn8s_finetune" and "best model" in cat.why_default
    info = {i["name"]: i for i in cat.infos()}
    assert info["tiny/fcn8s_finetune"]["default"] and not info["tiny/fcn32s"]["default"]
    assert "PASCAL VOC" in info["tiny/fcn8s_finetune"]["trained_on"]
    assert "white" in info["tiny/fcn32s"]["trained_on"]
    assert info["tiny/fcn32s"]["backend"] == "caffe" and len(notes) == 2


def test_no_trained_model_is_one_clear_error(tmp_path, monkeypatch):
    from fcnkit.apps.serve.catalog import load_catalog
    from fcnkit.config import paths
    from fcnkit.errors import UserError

    monkeypatch.setenv("FCNKIT_ROOT", str(tmp_path))
    paths.project_root.cache_clear()
    try:
        with pytest.raises(UserError, match="make demo"):
            load_catalog(None)
    finally:
        paths.project_root.cache_clear()


def test_remove_bg_takes_a_registered_name(project_with_two_snapshots, tmp_path, capsys):
    import json

    import cv2
    from fcnkit.cli.remove_bg import main
    from serve_helpers import disc

    cv2.imwrite(str(tmp_path / "d.png"), disc())
    assert main([str(tmp_path / "d.png"), "--model", "tiny/fcn32s", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["model"] == "tiny/fcn32s" and meta["backend"] == "caffe" and (meta["width"], meta["height"]) == (90, 61)


def test_installed_real_photo_models_are_offered_and_the_best_duts_one_is_the_default(
        project_with_two_snapshots, blob_dataset, tmp_path, capsys):
    """`compare --preset real` installs its models (`install_models`); then the server's default is the best
    DUTS model by its recorded test IoU, ahead of the FCN chain, and each says what it was trained on."""
    import json

    import cv2
    from fcnkit.apps.compare_real import install_models
    from fcnkit.apps.serve.catalog import load_catalog
    from fcnkit.cli.models import main as models_main
    from fcnkit.cli.remove_bg import main as remove_bg
    from fcnkit.training.trainer import train
    from serve_helpers import disc

    trained = {}
    for name in ("duts/extractnet-simple", "duts/extractnet-interconnected", "portraits/unet"):
        ckpt = tmp_path / "ckpt" / f"{name}.safetensors"
        train(name, blob_dataset / "white", out=ckpt, epochs=1, log=lambda *a: None, progress=False)
        trained[name] = ckpt
    rows = [{"dataset": n.split("/")[0], "postprocess": False, "name": n, "iou": iou, "jaccard_mean": 50.0,
             "hausdorff_mean": 9.0, "pixel_acc": 0.9, "mean_iou": 0.7}
            for n, iou in (("duts/extractnet-simple", 0.41), ("duts/extractnet-interconnected", 0.52),
                           ("portraits/unet", 0.93))]
    done = install_models(trained, rows, log=lambda *a: None)
    assert len(done) == 3 and all(str(project_with_two_snapshots) in p for p in done)

    cat = load_catalog(None, log=lambda *a: None)
    assert {"tiny/fcn8s_finetune", "portraits/unet", "duts/extractnet-interconnected"} <= set(cat.entries)
    assert cat.default == "duts/extractnet-interconnected"  # DUTS before portraits, then the higher test IoU
    assert "DUTS" in cat.why_default and "0.520" in cat.why_default
    info = {i["name"]: i for i in cat.infos()}
    assert "portraits" in info["portraits/unet"]["trained_on"] and "DUTS" in info[cat.default]["trained_on"]

    assert models_main(["--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["portraits/unet"]["weights"] and "Shen" in listed["portraits/unet"]["trained_on"]
    cv2.imwrite(str(tmp_path / "d.png"), disc())
    assert remove_bg([str(tmp_path / "d.png"), "--model", "portraits/unet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "portraits/unet"
