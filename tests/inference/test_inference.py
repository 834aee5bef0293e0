"""One inference interface: model references resolve to the right files, every backend answers with the same
foreground log-odds at the image's own size, batching and resizing change nothing they should not."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from fcnkit import inference
from fcnkit.errors import UserError
from fcnkit.models.registry import ModelSpec, Preprocessing, register


def disc(h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 20, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (240, 240, 240), -1)
    return img


def test_references_resolve(threshold_model, tmp_path):
    r = inference.resolve(threshold_model)
    assert r.kind == "converted" and r.output == "softmax2" and r.output_blob == "score"
    assert r.deploy.name == "deploy.prototxt" and r.caffemodel.name == "net.caffemodel"
    pair = inference.resolve(f"{r.deploy}:{r.caffemodel}")
    assert pair.kind == "caffe" and pair.deploy == r.deploy and pair.preprocessing.mean == r.preprocessing.mean
    with pytest.raises(UserError, match="unknown model"):
        inference.resolve("no-such-model")
    with pytest.raises(UserError, match=r"has no trained weights yet .*`solve solvers/fcn8s.prototxt`"):
        inference.resolve("fcn8s")
    with pytest.raises(UserError, match="DEPLOY.prototxt:MODEL.caffemodel"):
        inference.resolve(r.deploy)
    with pytest.raises(UserError, match="not a converted model directory"):
        inference.resolve(tmp_path)


def test_caffe_and_torch_answer_alike_at_the_image_size(threshold_model):
    caffe_p, torch_p = inference.load_many(threshold_model, ("caffe", "torch"))
    assert (caffe_p.name, torch_p.name) == ("caffe", "torch")
    img = disc(37, 53)
    for p in (caffe_p, torch_p):
        s = p.scores(img)
        assert s.shape == (2, 37, 53)
        np.testing.assert_array_equal(p.logit(img), s[1] - s[0])
        np.testing.assert_array_equal(p.mask(img), s.argmax(0))  # log-odds > 0 is exactly argmax
        pr = p.proba(img)
        assert pr.dtype == np.float32 and ((pr > 0.5) == (p.mask(img) == 1)).all()
    np.testing.assert_allclose(caffe_p.logit(img), torch_p.logit(img), atol=1e-4)
    m = torch_p.mask(img)
    assert m[18, 26] == 1 and m[1, 1] == 0


def test_batches_and_max_side_keep_answers(threshold_model):
    one = inference.load(threshold_model, backend="torch")
    batched = inference.load(threshold_model, backend="torch", batch_size=3)
    images = [disc(40, 40), disc(31, 47), disc(40, 40), disc(40, 40), disc(31, 47)]
    singles = [one.logit(im) for im in images]
    for a, b in zip(singles, batched.logits(images), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    small = inference.load(threshold_model, backend="torch", max_side=32)
    big = disc(90, 120)
    s = small.scores(big)
    assert s.shape == (2, 90, 120)  # scored at 24x32, resized back
    assert (small.mask(big) == one.mask(big)).mean() > 0.95


def test_size_rule_runs_the_net_at_multiples(threshold_model):
    seen = []
    p = inference.load(threshold_model, backend="torch")
    forward = p.backend.forward
    p.backend.forward = lambda x: (seen.append(x.shape), forward(x))[1]
    p.preprocessing = Preprocessing("BGR", p.preprocessing.mean, 1.0, "multiple:16")
    out = p.logit(disc(37, 53))
    assert seen == [(1, 3, 32, 48)] and out.shape == (37, 53)


def test_preprocessing_rules():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0] = 10  # B
    img[..., 2] = 30  # R
    x = Preprocessing("RGB", (1.0, 2.0, 3.0), 0.5, "any").to_input(img)
    assert x.shape == (3, 2, 3) and x[0, 0, 0] == (30 - 1) * 0.5 and x[2, 0, 0] == (10 - 3) * 0.5
    assert Preprocessing(size_rule="fixed:224").input_size(30, 500) == (224, 224)
    assert Preprocessing(size_rule="multiple:32").input_size(50, 10) == (64, 32)
    with pytest.raises(ValueError):
        Preprocessing(size_rule="multiple:")


def test_native_checkpoint_of_a_registered_family(tmp_path):
    import torch
    from safetensors.torch import save_file

    def build(threshold: float = 128.0):
        net = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            net.weight.fill_(1 / 3)
            net.bias.fill_(-threshold)
        return net

    register(ModelSpec(name="test/brightness", family="test", framework="torch", output="sigmoid1",
                       preprocessing=Preprocessing(), description="brightness > threshold", trained_on="nothing",
                       weights="a test checkpoint", build=build))
    ckpt = tmp_path / "bright.safetensors"
    save_file(build(100.0).state_dict(), str(ckpt))
    (tmp_path / "bright.json").write_text(json.dumps({"model": "test/brightness", "config": {"threshold": 100.0}}))
    p = inference.load(ckpt)
    assert p.name == "torch" and p.output == "sigmoid1"
    img = disc(20, 30)
    np.testing.assert_allclose(p.logit(img)[10, 15], 240 - 100, rtol=1e-5)
    assert p.mask(img)[0, 0] == 0 and p.mask(img)[10, 15] == 1
    with pytest.raises(UserError, match="no Caffe form"):
        inference.load(ckpt, backend="caffe")
    (tmp_path / "other.safetensors").write_bytes(ckpt.read_bytes())
    (tmp_path / "other.json").write_text(json.dumps({"model": "tiny/fcn8s"}))
    with pytest.raises(UserError):
        inference.load(tmp_path / "other.safetensors")
