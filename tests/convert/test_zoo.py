"""Model-zoo nets generated with NetSpec by fcnkit.convert.model_zoo (the layer patterns of CaffeNet, GoogLeNet,
ResNet-50, SqueezeNet, VGG-16 FCN-8s, HED with repeated 'crop' names, MobileNet-SSD, SegNet, Zhang et al.'s
colorization net with its Silence-d output, SSD300 with Normalize, a CRNN-style LSTM net and C3D), at 1/8 of
their channel widths: each converts, passes `convert --verify` per blob and per layer against real Caffe at
two input sizes, and exports to ONNX, whose outputs --verify also compares with Caffe. C3D's own layer types
(Convolution3D, Pooling3D) are not in this Caffe: its converted net is verified against real Caffe running
the same net written in this Caffe's layers (N-d Convolution; Reshape + Pooling)."""

from __future__ import annotations

import json

import pytest
from fcnkit.cli.convert import main
from fcnkit.convert import model_zoo
from fcnkit.convert.verify import verify

pytestmark = pytest.mark.caffe

# What model.onnx can leave free: fully convolutional nets keep batch, height and width dynamic.
ONNX_DYNAMIC = {"caffenet": "batch", "googlenet": "batch", "resnet50": "batch", "squeezenet": "batch, height, width",
                "fcn8s": "batch, height, width", "hed": "batch, height, width", "segnet": "batch",
                "mobilenet_ssd": "batch", "colorization": "batch, height, width", "ssd300": "batch, height, width",
                "crnn": "none", "c3d": "batch"}
SLOW = {"resnet50", "googlenet", "mobilenet_ssd", "ssd300"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in model_zoo.ZOO])
def test_zoo_net_converts_verifies_and_exports(name, tmp_path, capsys):
    _, meta = model_zoo.ZOO[name]
    sizes = list(meta.test_sizes)
    files = model_zoo.write(name, tmp_path, width=1 / 8, sizes=[sizes[0]] if meta.size_agnostic else sizes, seed=1)
    runs = ([(files["prototxts"][sizes[0]], sizes)] if meta.size_agnostic
            else [(files["prototxts"][s], [s]) for s in sizes])
    if meta.fork:
        _fork_net_converts_and_matches_caffe_twin(files, sizes[0], tmp_path, capsys)
        return
    for k, (proto, verify_sizes) in enumerate(runs):
        out = tmp_path / f"out{k}"
        arg = ",".join(f"{w}x{h}" for h, w in verify_sizes)
        # SegNet unpools by argmax masks: on photos' flat regions (equal window maxima) Caffe and PyTorch pick
        # different equal maxima (float rounding), which --verify then names; random inputs have no such ties.
        photos, randoms = ("0", "2") if name == "segnet" else ("1", "1")
        rc = main([str(proto), str(files["caffemodel"]), "-o", str(out), "--onnx", "--verify", "--sizes", arg,
                   "--photos", photos, "--random", randoms, "-q", "--tol", str(meta.tol),
                   "--mean", ",".join(str(m) for m in meta.mean), "--scale", str(meta.scale)])
        text = capsys.readouterr().out
        assert rc == 0, text
        assert "verify: PASS" in text and "first divergence: none" in text, text
        for h, w in verify_sizes:
            assert f"== {w}x{h} (WxH)" in text and f"== onnxruntime (model.onnx) vs Caffe, {w}x{h} (WxH)" in text
        compared_onnx = text.count("not compared") == 0
        assert "onnxruntime: " in text and (compared_onnx or name == "mobilenet_ssd")  # SSD's ONNX: fixed H/W
        info = json.loads((out / "conversion.json").read_text())
        onnx = info["onnx"]
        assert onnx["exported"] and onnx["checker"] == "ok", onnx
        assert onnx["dynamic"] == ONNX_DYNAMIC[name], onnx
        if name == "mobilenet_ssd":
            assert onnx["left_out"] == {"detection_out": "DetectionOutput"}
            assert set(onnx["outputs"]) == {"mbox_loc", "mbox_conf_flatten", "mbox_priorbox"}
        if name == "hed":
            assert info["renamed"]["crop"] == ["crop", "crop_2", "crop_3", "crop_4", "crop_5"]
        if name == "ssd300":
            assert onnx["left_out"] == {"detection_out": "DetectionOutput"}
            assert any(layer["type"] == "Normalize" for layer in info["layers"])
        if name == "colorization":  # the only output is read by Silence alone: kept, as Caffe computes it
            assert [o["blob"] for o in info["outputs"]] == ["class8_ab"]
            silence = next(layer for layer in info["layers"] if layer["type"] == "Silence")
            assert silence["kind"] == "skipped" and "class8_ab" in " ".join(silence["notes"])
        if name == "crnn":
            assert [o["blob"] for o in info["outputs"]] == ["probs"]
            assert sum(layer["type"] == "LSTM" for layer in info["layers"]) == 2


def _fork_net_converts_and_matches_caffe_twin(files, size, tmp_path, capsys):
    proto, twin = files["prototxts"][size], files["caffe_prototxts"][size]
    assert "Convolution3D" in proto.read_text() and "Pooling3D" in proto.read_text()
    out = tmp_path / "out"
    assert main([str(proto), str(files["caffemodel"]), "-o", str(out), "--onnx", "-q"]) == 0
    capsys.readouterr()
    assert verify(twin, files["caffemodel"], out, n_photos=0, n_random=2, quiet=True)
    text = capsys.readouterr().out
    assert "verify: PASS" in text and "first divergence: none" in text, text
    info = json.loads((out / "conversion.json").read_text())
    assert info["onnx"]["exported"] and info["onnx"]["dynamic"] == ONNX_DYNAMIC["c3d"]
    assert [layer["torch"].split("(")[0] for layer in info["layers"] if layer["type"] == "Pooling3D"] == \
        ["CaffePool3d"] * 5
