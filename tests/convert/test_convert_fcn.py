"""FCN nets end to end: full-size VGG-16 FCN-32s/16s/8s with random weights (~0.5 GB caffemodels, above
protobuf's 64 MB default limit) convert and pass `convert --verify` at 224x224 and 500x375 against real
Caffe; the generated model.py runs in a fresh interpreter without this project, and torch.jit.script /
torch.export accept it with unchanged outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fcnkit.cli.convert import main
from fcnkit.convert.convert import load_generated
from fcnkit.convert.sample_nets import random_caffemodel, write_fcn_deploy

# A fresh interpreter that cannot import this project, Caffe, protobuf or safetensors.
pytestmark = pytest.mark.caffe


BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("fcnkit", "fcnkit_caffe_pb2", "caffe", "safetensors", "google"):
                raise ImportError("blocked: " + name)
            return None
    sys.meta_path.insert(0, _Block())
""")


@pytest.fixture(scope="session")
def full_fcn(tmp_path_factory):
    """Full-size random-weight FCN deploy nets + caffemodels, made once per session on demand."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(variant: str) -> tuple[Path, Path]:
        if variant not in made:
            d = tmp_path_factory.mktemp(f"fcn{variant}_full")
            proto = write_fcn_deploy(d / f"fcn{variant}.prototxt", variant, num_classes=2,
                                     input_shape=(1, 3, 500, 500))
            made[variant] = (proto, random_caffemodel(proto, d / f"fcn{variant}.caffemodel", seed=1))
        return made[variant]

    yield get
    for _, model in made.values():  # 0.5 GB each: do not leave them in pytest's kept temp dirs
        model.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def fcn8s_small(tmp_path_factory):
    """FCN-8s graph with 1/8 of the VGG channels: same layers, crops and shape rules, fast."""
    d = tmp_path_factory.mktemp("fcn8s_small")
    proto = write_fcn_deploy(d / "fcn8s.prototxt", "8s", width=1 / 8, num_classes=3,
                             input_shape=(1, 3, 96, 80))
    model = random_caffemodel(proto, d / "fcn8s.caffemodel", seed=2)
    out = d / "out"
    assert main([str(proto), str(model), "-o", str(out), "-q"]) == 0
    return proto, model, out


@pytest.mark.slow
def test_fcn8s_full_size_converts_and_verifies(full_fcn, tmp_path, capsys):
    proto, model = full_fcn("8s")
    assert model.stat().st_size > 500 * 2**20  # well above protobuf's 64 MB default message limit
    out = tmp_path / "fcn8s"
    rc = main([str(proto), str(model), "-o", str(out), "--verify", "--sizes", "224x224,500x375",
               "--photos", "1", "--random", "1"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "verify: PASS" in text
    assert "== 224x224 (WxH)" in text and "== 500x375 (WxH)" in text
    # the per-blob table: one row per Caffe blob, e.g. the final crop at 500x375
    assert any(line.split()[:2] == ["score", "1x2x375x500"] for line in text.splitlines())
    info = json.loads((out / "conversion.json").read_text())
    assert info["outputs"] == [{"blob": "score", "position": 0, "shape": [1, 2, 500, 500]}]
    assert info["blobs"]["fc6"] == [1, 4096, 16, 16] and info["tensors"]["fc6.weight"] == [4096, 512, 7, 7]
    assert info["tensors"]["upscore8.weight"] == [2, 2, 16, 16] and "upscore8.bias" not in info["tensors"]
    assert info["scriptability"]["torch.jit.script"] == "ok"
    assert info["scriptability"]["torch.export"].startswith("ok")
    crops = {layer["name"]: layer["torch"] for layer in info["layers"] if layer["type"] == "Crop"}
    assert crops == {"score_pool4c": "CaffeCrop(axis=2, offsets=[5])",
                     "score_pool3c": "CaffeCrop(axis=2, offsets=[9])",
                     "score": "CaffeCrop(axis=2, offsets=[31])"}

    # model.py runs in a fresh interpreter that cannot import this project (its __main__ smoke run)
    r = subprocess.run([sys.executable, "-I", "-c", BLOCKER + "\nimport runpy; runpy.run_path('model.py', "
                        "run_name='__main__')"], cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "score (1, 2, 500, 500)"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["32s", "16s"])
def test_fcn32s_16s_full_size_verify(variant, full_fcn, tmp_path, capsys):
    proto, model = full_fcn(variant)
    rc = main([str(proto), str(model), "-o", str(tmp_path / variant), "--verify",
               "--sizes", "224x224,500x375", "--photos", "1", "--random", "0", "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "verify: PASS" in text


def test_small_fcn_fresh_interpreter_matches_in_process(fcn8s_small):
    _, _, out = fcn8s_small
    x = np.random.default_rng(0).standard_normal((1, 3, 75, 101)).astype(np.float32)
    np.save(out.parent / "x.npy", x)
    net = load_generated(out / "model.py").load_model()
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    code = BLOCKER + textwrap.dedent(f"""
        import torch
        import model
        raw = open({str(out.parent / 'x.npy')!r}, 'rb').read()
        x = torch.frombuffer(bytearray(raw[-{x.nbytes}:]), dtype=torch.float32).reshape({x.shape})
        with torch.inference_mode():
            y = model.load_model()(x)
        open('y.bin', 'wb').write(y.numpy().tobytes())
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    y = np.frombuffer((out / "y.bin").read_bytes(), dtype=np.float32).reshape(ref.shape)
    (out / "y.bin").unlink()
    np.testing.assert_array_equal(y, ref)


def test_small_fcn_torchscript_and_export_keep_outputs(fcn8s_small):
    _, _, out = fcn8s_small
    net = load_generated(out / "model.py").load_model()
    x = torch.randn(1, 3, 96, 80)
    other = torch.randn(2, 3, 61, 77)  # scripting keeps the net size-agnostic
    with torch.inference_mode():
        ref, ref_other = net(x), net(other)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(net)
        exported = torch.export.export(net, (x,)).module()
    with torch.inference_mode():
        torch.testing.assert_close(scripted(x), ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(scripted(other), ref_other, rtol=0, atol=1e-5)
    torch.testing.assert_close(exported(x), ref, rtol=0, atol=1e-5)


def test_small_fcn_channels_last_same_output(fcn8s_small):
    _, _, out = fcn8s_small
    module = load_generated(out / "model.py")
    x = torch.randn(1, 3, 90, 71)
    with torch.inference_mode():
        ref = module.load_model()(x)
        got = module.load_model(channels_last=True)(x.contiguous(memory_format=torch.channels_last))
    assert "Conv2dGemm(" in (out / "model.py").read_text()  # fc6 takes the matmul path, also channels-last
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4 * float(ref.abs().max()))
