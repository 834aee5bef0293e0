"""evaluate / baseline / post-processing on real data with real Caffe and the real converter."""

from __future__ import annotations

import json

import cv2
import numpy as np
import skimage.data
from fcnkit.evaluation.baselines import extractnet_baseline
from fcnkit.evaluation.metrics import foreground_jaccard
from fcnkit.inference.postprocess import _odd, postprocess_extractnet


def test_evaluate_both_backends_agree_and_score_well(threshold_model, blob_lmdbs, tmp_path, capsys):
    from fcnkit.cli.evaluate import main

    image_lmdb = blob_lmdbs[0]
    out = tmp_path / "r.json"
    rc = main([str(image_lmdb), "--model", str(threshold_model), "--backend", "both", "--baseline",
               "--postprocess", "extractnet", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "caffe vs torch: 0 of 4608 pixels differ in argmax (0 of 8 images" in text
    r = json.loads(out.read_text())
    assert r["methods"] == ["caffe", "torch", "baseline", "caffe+pp", "torch+pp", "baseline+pp"]
    for m in ("caffe", "torch"):
        assert r["summary"][m]["pixel_acc"] > 0.95 and r["summary"][m]["jaccard_mean"] > 85
    assert r["summary"]["caffe"] == r["summary"]["torch"]
    assert r["disagreement_summary"]["pixels_differing"] == 0
    assert r["disagreement_summary"]["max_abs_score_diff"] < 1e-3
    assert len(r["per_image"]["baseline"]) == 8 and r["summary"]["baseline"]["jaccard_mean"] > 60
    h = np.array(r["summary"]["caffe"]["hist"])
    assert h.sum() == 8 * 24 * 24  # no ignore pixels in this data


def test_evaluate_photo_folder_and_errors(threshold_model, blob_lmdbs, tmp_path, capsys):
    from fcnkit.cli.evaluate import main

    _, _, images, labels = blob_lmdbs
    (tmp_path / "masks").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), images[i].transpose(1, 2, 0))
        cv2.imwrite(str(tmp_path / "masks" / f"p{i}.png"), labels[i, 0] * 255)
    assert main([str(tmp_path), "--model", str(threshold_model), "--backend", "torch"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert main([str(tmp_path / "nope"), "--backend", "torch", "--model", str(threshold_model)]) == 2
    assert main([str(tmp_path), "--model", str(tmp_path), "--backend", "torch"]) == 2
    assert "not a converted model directory" in capsys.readouterr().err


def test_baseline_on_a_real_silhouette_photo():
    horse = skimage.data.horse()  # real scanned silhouette: False on the horse
    truth = (~horse).astype(np.uint8)
    img = cv2.cvtColor(np.where(horse, 235, 40).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    mask, steps = extractnet_baseline(img, return_steps=True)
    assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 1}
    assert foreground_jaccard(truth, mask) > 75
    assert steps["otsu"][0, 0] == 0  # polarity: the border is background
    # the central segment wins over one of about the same area in the corner
    two = np.full((200, 200, 3), 255, np.uint8)
    cv2.circle(two, (100, 100), 20, (0, 0, 0), -1)
    cv2.rectangle(two, (0, 165), (40, 199), (0, 0, 0), -1)
    m = extractnet_baseline(two)
    assert m[100, 100] == 1 and m[190, 10] == 0


def test_baseline_on_real_photo_returns_single_region():
    mask = extractnet_baseline(cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR))
    assert mask.any() and cv2.connectedComponents(mask)[0] - 1 >= 1


def test_postprocess_removes_speckle_and_fills_holes():
    truth = np.zeros((224, 224), np.uint8)
    cv2.ellipse(truth, (112, 112), (70, 50), 0, 0, 360, 1, -1)
    rng = np.random.default_rng(0)
    noisy = truth ^ (rng.random(truth.shape) < 0.03).astype(np.uint8)
    out = postprocess_extractnet(noisy)
    assert foreground_jaccard(truth, out) > 97 > foreground_jaccard(truth, noisy)
    assert not out[:30].any()  # speckle in the background gone
    assert cv2.connectedComponents(out)[0] == 2  # one object, holes filled
    assert _odd(27 * 0.5) == 15 and _odd(39) == 39 and _odd(0.2) == 1
    # a thin object narrower than the 39-px opening disappears: the report's k is for 224-px masks
    thin = np.zeros((224, 224), np.uint8)
    thin[100:120, 20:200] = 1
    assert not postprocess_extractnet(thin).any()
    assert postprocess_extractnet(thin, reference=896).any()  # quarter-size kernels keep it


def test_report_markdown_and_pngs(threshold_model, blob_lmdbs, tmp_path):
    import matplotlib.image
    from fcnkit.cli.evaluate import main

    rep = tmp_path / "rep"
    assert main([str(blob_lmdbs[0]), "--model", str(threshold_model), "--baseline", "--report", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "| caffe |" in md and "| torch |" in md and "| baseline |" in md
    assert "| pixels whose argmax differs | 0 of 4608 |" in md
    for name in ("best_caffe.png", "worst_caffe.png"):
        assert f"]({name})" in md
        assert matplotlib.image.imread(rep / name).shape[2] in (3, 4)
