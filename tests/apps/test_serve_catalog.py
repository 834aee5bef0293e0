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
