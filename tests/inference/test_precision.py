"""--precision (bf16 autocast, channels-last on the CPU) and remove-bg --shard, on a real converted net."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import make_blob_images, one_error_line, run_cli
from fcnkit import inference
from fcnkit.inference.backends import ConvertedBackend, cpu_bf16_units, warn_emulated_bf16


def test_channels_last_gives_the_same_scores(threshold_model):
    ref = inference.resolve(str(threshold_model))
    x = np.random.default_rng(0).normal(0, 50, (2, 3, 40, 56)).astype(np.float32)
    plain = ConvertedBackend(ref, channels_last=False).forward(x)
    last = ConvertedBackend(ref, channels_last=True).forward(x)
    assert plain.shape == last.shape == (2, 2, 40, 56)
    np.testing.assert_allclose(last, plain, rtol=1e-5, atol=1e-4)
    bf16 = ConvertedBackend(ref, precision="bf16").forward(x)
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, plain)  # really computed in bf16...
    np.testing.assert_allclose(bf16, plain, rtol=0.05, atol=0.5)  # ...and close to fp32


def test_evaluate_reports_bf16_agreement_with_fp32(threshold_model, blob_lmdbs, tmp_path, capsys):
    from fcnkit.cli.evaluate import main

    out = tmp_path / "r.json"
    assert main([str(blob_lmdbs[0]), "--model", str(threshold_model), "--backend", "torch", "--precision", "bf16",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "torch-bf16 vs torch (fp32):" in text and "% of pixels agree" in text
    r = json.loads(out.read_text())
    assert r["methods"] == ["torch", "torch-bf16"]
    (p,) = r["precision"]
    assert p["reference"] == "torch" and p["method"] == "torch-bf16"
    s = p["summary"]
    assert s["images"] == 8 and s["pixels_total"] == 8 * 24 * 24
    assert s["pixels_differing"] <= 0.005 * s["pixels_total"]
    assert abs(p["iou_change"]) < 0.01
    assert r["summary"]["torch-bf16"]["jaccard_mean"] > 85


@pytest.mark.parametrize("args, words", [
    (["--backend", "caffe", "--precision", "bf16"], "applies to the PyTorch backend"),
    (["--backend", "torch", "--precision", "fp16"], "CUDA device only"),
])
def test_precision_refusals_are_one_line(threshold_model, blob_lmdbs, args, words):
    r = run_cli("evaluate", str(blob_lmdbs[0]), "--model", str(threshold_model), *args)
    assert words in one_error_line(r, "evaluate")


def test_remove_bg_shards_split_the_inputs_exactly(threshold_model, tmp_path):
    images, _ = make_blob_images(12, 24, seed=3)
    src = tmp_path / "in"
    src.mkdir()
    for i, im in enumerate(images):
        cv2.imwrite(str(src / f"im{i:02d}.png"), im.transpose(1, 2, 0))
    out = tmp_path / "out"
    seen = []
    for i in range(3):
        r = run_cli("remove-bg", str(src), "-o", str(out), "--model", str(threshold_model), "--output", "mask",
                    "--shard", f"{i}/3", "--json")
        assert r.returncode == 0, r.stderr
        names = [json.loads(line)["input"] for line in r.stdout.splitlines()]
        assert f"shard {i}/3: {len(names)} of 12" in r.stderr
        seen.append(set(names))
    assert sum(len(s) for s in seen) == 12 and set().union(*seen) == {str(p) for p in src.iterdir()}
    assert len(list(out.glob("*_mask.png"))) == 12
    # the same split on a rerun: every shard's outputs exist, so --skip-existing does nothing
    r = run_cli("remove-bg", str(src), "-o", str(out), "--model", str(threshold_model), "--output", "mask",
                "--shard", "1/3", "--skip-existing")
    assert r.returncode == 0 and "already done, skipped" in r.stdout and f"{len(seen[1])} already" in r.stdout


@pytest.mark.parametrize("bad", ["3/3", "1", "a/b", "0/0", "2/-1"])
def test_remove_bg_refuses_a_bad_shard(bad, capsys):
    from fcnkit.cli.remove_bg import parser

    with pytest.raises(SystemExit) as e:
        parser().parse_args(["in", "-o", "out", "--shard", bad])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("remove-bg: error: argument --shard") and "0 <= I < N" in last, last


def test_bf16_units_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_bf16_units(str(info)) == ["amx_bf16", "avx512_bf16"]  # the first processor's flags
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_bf16_units(str(info)) == []
    assert cpu_bf16_units(str(tmp_path / "missing")) == []


def test_bf16_on_a_cpu_without_bf16_units_warns_once(threshold_model, capsys):
    ref = inference.resolve(str(threshold_model))
    warn_emulated_bf16.cache_clear()
    ConvertedBackend(ref, precision="bf16")
    ConvertedBackend(ref, precision="bf16")
    err = capsys.readouterr().err
    if cpu_bf16_units():
        assert err == ""
    else:
        assert err.count("bf16 is emulated and slower than fp32") == 1
