"""`fcnkit train`: real training runs on a small LMDB dataset, checkpoints `fcnkit.inference` loads, resume,
SIGTERM, the CSV log `plot-training` reads, and one-line errors for bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, VENV_BIN, fixed_output, write_lmdb_dataset
from fcnkit import inference, models
from fcnkit.errors import UserError
from fcnkit.training.trainer import compute_loss, train


def quiet(*_a, **_k):
    pass


@pytest.fixture(scope="module")
def trained(blob_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "ae.safetensors"
    r = train("tiny/extractnet-simple", blob_dataset / "white", out=out, epochs=2, seed=3, log=quiet, progress=False)
    return out, r


def test_checkpoint_sidecar_and_inference_load(trained, blob_dataset):
    out, r = trained
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["model"] == "tiny/extractnet-simple" and side["family"] == "extractnet"
    assert side["config"] == models.get("tiny/extractnet-simple").config
    assert side["epoch"] == 2 and len(side["history"]) == 2
    assert side["data"]["train"]["images"] == 16 and side["data"]["val"]["images"] == 8
    assert set(side["metrics"]) >= {"pixel_acc", "mean_iou", "jaccard", "hausdorff"}
    p = inference.load(out)  # the same checkpoint through the one inference interface
    img = np.full((40, 52, 3), 30, np.uint8)  # sides not multiples of 8: the size rule rounds, output matches
    assert p.mask(img).shape == (40, 52)


def test_validation_improves_over_the_untrained_net(trained, blob_dataset):
    from fcnkit.data.splits import load_val
    from fcnkit.training.trainer import validate

    spec = models.get("tiny/extractnet-simple")
    torch.manual_seed(3)
    untrained = validate(spec.build(**spec.config), spec, load_val(blob_dataset / "white"), "cpu")
    _, r = trained
    assert r["metrics"]["pixel_acc"] > untrained["pixel_acc"] or r["history"][1]["loss"] < r["history"][0]["loss"]


def test_same_seed_same_weights(blob_dataset, tmp_path):
    from safetensors.torch import load_file

    a = train("tiny/extractnet-simple", blob_dataset / "white", out=tmp_path / "a", epochs=1, seed=5, log=quiet,
              progress=False)
    b = train("tiny/extractnet-simple", blob_dataset / "white", out=tmp_path / "b", epochs=1, seed=5, log=quiet,
              progress=False)
    wa, wb = load_file(a["checkpoint"]), load_file(b["checkpoint"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_and_refuses_another_model(blob_dataset, tmp_path):
    out = tmp_path / "r.safetensors"
    train("tiny/extractnet-simple", blob_dataset / "white", out=out, epochs=1, log=quiet, progress=False)
    r = train("tiny/extractnet-simple", blob_dataset / "white", out=out, epochs=2, resume=True, log=quiet,
              progress=False)
    assert r["epoch"] == 2 and [h["epoch"] for h in r["history"]] == [1, 2]
    with pytest.raises(UserError, match="checkpoint of 'tiny/extractnet-simple'"):
        train("tiny/extractnet-interconnected", blob_dataset / "white", out=out, epochs=2, resume=True, log=quiet)


def test_csv_log_feeds_plot_training(trained, tmp_path):
    from fcnkit.evaluation.curves import plot_training

    out, _ = trained
    r = plot_training([str(out.with_suffix(".csv"))], tmp_path / "curves")
    (name, rows), = r["stages"]
    assert [row["iter"] for row in rows] == sorted(row["iter"] for row in rows) and len(rows) == 2
    assert "val_mean_iou" in rows[0] and "loss" in rows[0]
    assert r["png"].stat().st_size > 0


def test_deep_supervision_sums_the_per_level_losses():
    spec = models.get("tiny/lrn")
    torch.manual_seed(0)
    m = spec.build(**spec.config)
    x = torch.randn(2, 3, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.5).float()
    y[0, 0, :4] = 255  # ignored pixels
    total = compute_loss(m, x, y, "deep_bce")
    outs = m.supervised(x)
    assert len(outs) == 5
    manual = sum(compute_loss(fixed_output(o), x, torch.nn.functional.interpolate(y, size=o.shape[-2:], mode="nearest"),
                              "bce") for o in outs)
    assert torch.allclose(total, manual)


def run(*args, timeout=300):
    return subprocess.run([str(VENV_BIN / "fcnkit"), "train", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize(("args", "needle"), [
    (["nosuch-model"], "unknown model 'nosuch-model'"),
    (["tiny/fcn8s"], "is a Caffe model"),
    (["tiny/unet", "--size", "30"], "--size 30 does not suit the model"),
    (["tiny/lrn", "--set", "depth=3"], "has no setting 'depth'"),
    (["tiny/lrn", "--epochs", "0"], "--epochs: 0 is below the smallest allowed value, 1"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(blob_dataset, tmp_path, args, needle):
    out = tmp_path / "x.safetensors"
    r = run(args[0], blob_dataset / "white", *args[1:], "--out", out)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    assert not list(tmp_path.iterdir())


def test_mixed_image_sizes_name_the_data_and_the_fix(tmp_path):
    import cv2

    data = tmp_path / "photos"
    (data / "masks").mkdir(parents=True)
    for i, side in enumerate((40, 48)):
        cv2.imwrite(str(data / f"p{i}.png"), np.full((side, side, 3), 90, np.uint8))
        cv2.imwrite(str(data / "masks" / f"p{i}.png"), np.zeros((side, side), np.uint8))
    r = run("tiny/extractnet-simple", data, "--val", data, "--out", tmp_path / "x.safetensors")
    assert r.returncode == 2, r.stderr
    assert f"{data}: train images come in 2 sizes" in r.stderr and "--size S" in r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_pretrained_model_without_weights_names_the_fetch_command(blob_dataset, tmp_path):
    r = run("extractnet-resnet50", blob_dataset / "white", "--size", "32", "--weights-dir", tmp_path / "none",
            "--out", tmp_path / "x")
    assert r.returncode == 2 and "fcnkit fetch-weights resnet50" in r.stderr


@pytest.mark.slow
def test_sigterm_saves_a_loadable_checkpoint_and_exits_143(tmp_path):
    data = write_lmdb_dataset(tmp_path / "d", 64, 4, size=32)
    out = tmp_path / "c.safetensors"
    proc = subprocess.Popen([str(VENV_BIN / "fcnkit"), "train", "tiny/unet", str(data), "--epochs", "500",
                             "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not out.with_suffix(".json").is_file() and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted (SIGTERM)" in err and "Traceback" not in err, err
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["interrupted"] is True and side["epoch"] >= 1
    assert inference.load(out).mask(np.zeros((32, 32, 3), np.uint8)).shape == (32, 32)
    r = run("tiny/unet", data, "--epochs", str(side["epoch"] + 1), "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.with_suffix(".json").read_text())["epoch"] == side["epoch"] + 1



def test_checkpoint_works_in_evaluate_and_models(trained, blob_dataset):
    out, _ = trained
    r = subprocess.run([str(VENV_BIN / "evaluate"), str(blob_dataset / "white"), "--model", str(out), "--backend",
                        "torch", "--baseline"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "torch" in r.stdout and "baseline" in r.stdout
    r = subprocess.run([str(VENV_BIN / "fcnkit"), "models", "--family", "extractnet", "--json"], capture_output=True,
                       text=True, timeout=120)
    names = {m["name"] for m in json.loads(r.stdout)}
    assert {"extractnet-resnet152", "tiny/extractnet-interconnected"} <= names


@pytest.mark.slow
def test_pretrained_encoder_frozen_until_the_plateau_then_unfrozen(caffe, blob_dataset, tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "models" / "encoders"))
    from fcnkit.models.encoders.releases import RELEASES
    from safetensors.torch import load_file
    from standins import vgg_netspec, write_standin

    rel = RELEASES["vgg16"]
    write_standin(caffe, vgg_netspec(caffe, 16), tmp_path / "vgg16", rel.deploy_file, rel.model_file)
    logs = []
    out = tmp_path / "lrn.safetensors"
    train("tiny/lrn", blob_dataset / "white", out=out, epochs=1, config={"width": 1.0}, weights_dir=tmp_path / "vgg16",
          overrides={"pretrained": "vgg16", "freeze_encoder": "plateau", "batch_size": 8}, log=logs.append,
          progress=False)
    enc = load_file(str(out))
    from fcnkit.models.encoders.releases import load_pretrained
    from fcnkit.models.encoders.vgg import VGGEncoder

    ref = VGGEncoder(16)
    load_pretrained(ref, "vgg16", tmp_path / "vgg16")
    frozen = all(torch.equal(enc[f"encoder.{k}"], v) for k, v in ref.state_dict().items())
    assert frozen and any("encoder unfrozen" in line for line in logs)  # epoch 1 = epochs // 2: the hand-over
    train("tiny/lrn", blob_dataset / "white", out=out, epochs=2, config={"width": 1.0},
          weights_dir=tmp_path / "vgg16", overrides={"pretrained": "vgg16", "freeze_encoder": "plateau",
                                                     "batch_size": 8}, resume=True, log=logs.append, progress=False)
    enc = load_file(str(out))
    assert not torch.equal(enc["encoder.conv1_1.weight"], ref.state_dict()["conv1_1.weight"])


def test_cosine_schedule_runs_from_the_rate_down_to_zero():
    from fcnkit.models.recipe import Recipe

    r = Recipe(lr=3e-3, batch_size=4, epochs=2, lr_schedule="cosine")
    rates = [r.lr_at(i, 10) for i in range(11)]
    assert rates[0] == 3e-3 and rates[-1] < 1e-12 and abs(rates[5] - 1.5e-3) < 1e-12
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert Recipe(lr=1e-3, batch_size=4, epochs=2).lr_at(7, 10) == 1e-3  # no schedule: the rate throughout
    with pytest.raises(ValueError, match="lr_schedule"):
        Recipe(lr=1e-3, batch_size=4, epochs=2, lr_schedule="step")


def test_onecycle_schedule_warms_up_then_anneals_to_zero():
    from fcnkit.models.recipe import WARMUP, WARMUP_DIV, Recipe

    r = Recipe(lr=3e-3, batch_size=4, epochs=2, lr_schedule="onecycle")
    total = 100
    rates = [r.lr_at(i, total) for i in range(total + 1)]
    peak = round(WARMUP * total)
    assert abs(rates[0] - 3e-3 / WARMUP_DIV) < 1e-12 and rates[peak] == 3e-3 and rates[-1] < 1e-12
    assert all(a < b for a, b in zip(rates[:peak], rates[1:peak + 1], strict=True))
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1:], strict=False))
