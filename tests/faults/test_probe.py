"""A hostile probe of every command: more than 200 bad inputs (bad numbers, devices, settings, files that are
not what they claim, models that do not exist, paths that cannot be written), each of which must end in one
line `PROG: error: ...` on stderr and exit status 2 — no traceback, no Caffe abort, no silent success.

The default run calls every case in this process through the command table (`fcnkit.cli.main`), which is
quick; `-m slow` runs every 12th case again as a real console-script process, and all of them with
FCNKIT_PROBE_ALL=1 (about 20 minutes on 2 cores: too long for every CI run). Inputs are real files written
here: a garbage prototxt, a zip and a 0-byte file as caffemodels, a text file as a photo, a damaged sidecar.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, VENV_BIN
from fcnkit import cli

sys.path.insert(0, str(ROOT / "tests" / "convert"))
from convert_helpers import write_caffemodel  # noqa: E402

LINE = re.compile(r"^[\w -]+: error: \S")

BAD_INTS = ["-1", "abc", "1.5", "nan", "", "99999999999999999999999"]
BAD_FLOATS = ["abc", "nan", "inf", "-inf", ""]
BAD_DEVICES = ["bogus", "cuda:99", "mps", "cuda:-1", "cpu:x", ""]


def _info(bottom="data", cls="nn.Conv2d", args=(3, 2, 1), kwargs=None) -> dict:
    """A conversion.json of one module layer `c` reading `bottom` into the output `score`."""
    spec = {"cls": cls, "args": list(args), "kwargs": kwargs or {}, "call": "args", "multi_top": False}
    return {"inputs": [{"blob": "data"}], "outputs": [{"blob": "score", "shape": [1, 2, 8, 8]}],
            "layers": [{"name": "c", "kind": "module", "module": "c", "bottoms": [bottom], "tops": ["score"],
                        "module_spec": spec}]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real bad files the cases name: {key: path}."""
    d = tmp_path_factory.mktemp("probe")
    f = {"dir": d}
    f["garbage_proto"] = d / "garbage.prototxt"
    f["garbage_proto"].write_bytes(b'layer { name: "x" type: "Convolution" ]]] \xff\n')
    f["binary_proto"] = d / "binary.prototxt"
    f["binary_proto"].write_bytes(bytes(range(256)))
    f["good_proto"] = d / "good.prototxt"
    f["good_proto"].write_text('name: "n"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { '
                               'dim: 1 dim: 3 dim: 8 dim: 8 } } }\nlayer { name: "conv" type: "Convolution" '
                               'bottom: "data" top: "score" convolution_param { num_output: 2 kernel_size: 1 } }\n')
    f["good_model"] = write_caffemodel(d / "good.caffemodel", [
        ("conv", "Convolution", [np.ones((2, 3, 1, 1), np.float32), np.zeros(2, np.float32)])])
    f["good_photos"] = d / "good_photos"
    (f["good_photos"] / "masks").mkdir(parents=True)
    cv2.imwrite(str(f["good_photos"] / "a.png"), np.full((16, 16, 3), 200, np.uint8))
    cv2.imwrite(str(f["good_photos"] / "masks" / "a.png"), np.full((16, 16), 255, np.uint8))
    f["other_proto"] = d / "other.prototxt"
    f["other_proto"].write_text(f["good_proto"].read_text().replace('name: "conv"', 'name: "conv_other"'))
    f["zip_model"] = d / "w.caffemodel"
    with zipfile.ZipFile(f["zip_model"], "w") as z:
        z.writestr("a.txt", "x" * 100)
    f["empty_model"] = d / "empty.caffemodel"
    f["empty_model"].write_bytes(b"")
    f["text_model"] = d / "text.caffemodel"
    f["text_model"].write_text('name: "n"\nlayer { name: "x" }\n')
    f["text_image"] = d / "notes.png"
    f["text_image"].write_text("not a picture\n" * 10)
    f["empty_image"] = d / "empty.png"
    f["empty_image"].write_bytes(b"")
    f["photos"] = d / "photos"
    (f["photos"] / "masks").mkdir(parents=True)
    (f["photos"] / "a.png").write_text("not a picture")
    f["empty_dir"] = d / "nothing"
    f["empty_dir"].mkdir()
    f["file_as_dir"] = d / "afile"
    f["file_as_dir"].write_text("x")
    for key, (name, text) in {"empty_log": ("empty.log", ""), "solver_garbage": ("s.prototxt", "base_lr: abc\n"),
                              "solver_neg": ("neg.prototxt", 'net: "good.prototxt"\nbase_lr: -1\nlr_policy: "fixed"\n'),
                              "solver_policy": ("pol.prototxt", 'net: "good.prototxt"\nbase_lr: 0.1\n'
                                                                'lr_policy: "sometimes"\n'),
                              "json_list": ("list.json", "[1, 2]")}.items():
        f[key] = d / name
        f[key].write_text(text)
    # checkpoints whose sidecars lie
    for name, side in {"ck_list": {"model": "tiny/unet", "config": [1, 2]},
                       "ck_unknown": {"model": "tiny/unet", "config": {"depth": 3}},
                       "ck_strwidth": {"model": "tiny/unet", "config": {"width": "wide"}},
                       "ck_nomodel": {"config": {}},
                       "ck_caffe": {"model": "tiny/fcn8s"},
                       "ck_bogus": {"model": "no/such"}}.items():
        (d / f"{name}.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        (d / f"{name}.json").write_text(json.dumps(side))
        f[name] = d / f"{name}.safetensors"
    (d / "ck_badjson.safetensors").write_bytes(b"x")
    (d / "ck_badjson.json").write_text("{not json")
    f["ck_badjson"] = d / "ck_badjson.safetensors"
    # a converted-model folder whose conversion.json lies
    for name, info in {"conv_missing_blob": _info(bottom="nowhere"), "conv_cuda": _info(kwargs={"device": "cuda"}),
                       "conv_evil_cls": _info(cls="os.system", args=["true"]), "conv_notjson": None}.items():
        folder = d / name
        folder.mkdir()
        (folder / "conversion.json").write_text(json.dumps(info) if info is not None else "{oops")
        (folder / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        f[name] = folder
    return f


def cases() -> list[tuple[str, list[str]]]:
    """(id, argv for `fcnkit`) of every case; {key} is replaced by the fixture's file `key`."""
    out: list[tuple[str, list[str]]] = [("no-command", []), ("unknown-command", ["bogus"])]

    def add(cmd: str, base: list[str], flag: str, values):
        for v in values:
            out.append((f"{cmd} {flag}={v!r}", [cmd, *base, flag, v]))

    d = "{dir}"
    # ---- train: typed flags and --set against the family's settings
    tb = ["tiny/unet", "{photos}", "--out", f"{d}/t/x.safetensors"]
    for flag in ("--epochs", "--batch-size", "--limit", "--size", "--seed"):
        add("train", tb, flag, BAD_INTS + (["0"] if flag != "--seed" else []))
    add("train", tb, "--lr", [*BAD_FLOATS, "1e38", "-0.1", "0"])
    add("train", tb, "--device", BAD_DEVICES)
    sets = {"tiny/unet": ["width=-1", "width=0", "width=abc", "width=NaN", "width=[1,2]", "width=1e9",
                          "width=true", "depth=3", "=1", "width", "width=Infinity"],
            "tiny/lrn": ["skip_conv=maybe", "skip_conv=1", "skip_conv=\"yes\"", "width=-0.5"],
            "tiny/extractnet-simple": ["interconnected=maybe", "interconnected=2", "width=100"],
            "tiny/extractnet-resnet50": ["activation=tanh", "encoder=vgg99", "batch_norm=null", "activation=1"],
            "extractnet-vgg19": ["encoder=resnet50"],
            "patchcnn": ["step=0", "step=-4", "step=1.5", "step=1000", "step=\"8\""]}
    for model, items in sets.items():
        for item in items:
            out.append((f"train {model} --set {item}", ["train", model, "{photos}", "--out", f"{d}/t/y.safetensors",
                                                        "--set", item]))
    out += [("train unknown model", ["train", "no/such", "{photos}"]),
            ("train caffe model", ["train", "tiny/fcn8s", "{photos}"]),
            ("train missing data", ["train", "tiny/unet", f"{d}/absent"]),
            ("train data is a file", ["train", "tiny/unet", "{file_as_dir}"]),
            ("train empty data", ["train", "tiny/unet", "{empty_dir}"]),
            ("train resume nothing", ["train", "tiny/unet", "{photos}", "--resume", "--out", f"{d}/r/x.safetensors"])]
    # ---- refine
    rb = ["{text_image}", "--out", f"{d}/refined"]
    for flag, vals in (("--relabel", ["-1", "abc", "101"]), ("--step", ["0", "-2", "33"]), ("--steps", ["-1", "x"]),
                       ("--batch", ["0", "-1"]), ("--limit", ["0"]), ("--seed", ["-1"])):
        add("refine", rb, flag, vals)
    add("refine", rb, "--device", BAD_DEVICES[:3])
    add("refine", rb, "--box", ["", "1,2,3", "a,b,c,d", "0,0,-1,5", "-1,0,5,5", "1,2,3,4,5", "0,0,0,0"])
    out += [("refine missing image", ["refine", f"{d}/absent.png", "--box", "1,1,5,5"]),
            ("refine text image", ["refine", "{text_image}", "--box", "1,1,5,5", "--out", f"{d}/rf"]),
            ("refine dataset with box", ["refine", "{photos}", "--dataset", "--box", "1,1,5,5"])]
    # ---- compare
    for flag, vals in (("--epochs", ["0", "-1", "x"]), ("--seed", ["-1"]), ("--device", BAD_DEVICES[:3]),
                       ("--preset", ["bogus"]), ("--fcn", ["sometimes"])):
        add("compare", ["--out", f"{d}/cmp"], flag, vals)
    out.append(("compare unknown model", ["compare", "--out", f"{d}/cmp", "--models", "no/such", "--fcn", "skip"]))
    # ---- remove-bg
    rbb = ["{photos}", "-o", f"{d}/rb"]
    for flag, vals in (("--device", BAD_DEVICES[:3]), ("--max-side", ["-1", "x"]), ("--batch-size", ["0", "-3"]),
                       ("--margin", ["-1"]), ("--bgcolor", ["300,0,0", "1,2", "a,b,c", ""]),
                       ("--format", ["gif"]), ("--output", ["all"]), ("--max-pixels", ["0"]),
                       ("--backend", ["tensorflow"])):
        add("remove-bg", rbb, flag, vals)
    for key in ("garbage_proto", "binary_proto"):
        out.append((f"remove-bg deploy {key}", ["remove-bg", "{photos}", "-o", f"{d}/rb", "--backend", "caffe",
                                                "--model", f"{{{key}}}:{{zip_model}}"]))
    for key in ("zip_model", "empty_model", "text_model"):
        out.append((f"remove-bg caffemodel {key}", ["remove-bg", "{photos}", "-o", f"{d}/rb", "--backend", "caffe",
                                                    "--model", f"{{good_proto}}:{{{key}}}"]))
    for key in ("ck_list", "ck_unknown", "ck_strwidth", "ck_nomodel", "ck_caffe", "ck_bogus", "ck_badjson",
                "conv_missing_blob", "conv_cuda", "conv_evil_cls", "conv_notjson"):
        out.append((f"remove-bg model {key}", ["remove-bg", "{photos}", "-o", f"{d}/rb", "--model", f"{{{key}}}"]))
    out += [("remove-bg no output", ["remove-bg", "{photos}"]),
            ("remove-bg stdout two inputs", ["remove-bg", "{text_image}", "{empty_image}", "-o", "-"]),
            ("remove-bg stdin twice", ["remove-bg", "-", "-", "-o", f"{d}/rb"]),
            ("remove-bg out is a file", ["remove-bg", "{photos}", "-o", "{file_as_dir}"]),
            ("remove-bg no images", ["remove-bg", "{empty_dir}", "-o", f"{d}/rb"]),
            ("remove-bg json-out folder", ["remove-bg", "{photos}", "--json-out", "{empty_dir}"]),
            ("remove-bg unknown model", ["remove-bg", "{photos}", "-o", f"{d}/rb", "--model", "no/such"]),
            ("remove-bg skip-existing stdout", ["remove-bg", "{text_image}", "-o", "-", "--skip-existing"])]
    # ---- evaluate
    for flag, vals in (("--limit", ["0", "-1", "x"]), ("--device", BAD_DEVICES[:3]), ("--backend", ["tf"]),
                       ("--postprocess", ["magic"])):
        add("evaluate", ["{photos}"], flag, vals)
    out += [("evaluate missing data", ["evaluate", f"{d}/absent"]),
            ("evaluate data without masks", ["evaluate", "{empty_dir}"]),
            ("evaluate text photos", ["evaluate", "{photos}", "--backend", "torch", "--model", "tiny/unet"]),
            ("evaluate model garbage deploy", ["evaluate", "{good_photos}", "--backend", "caffe", "--model",
                                               "{garbage_proto}:{good_model}"]),
            ("evaluate model empty caffemodel", ["evaluate", "{good_photos}", "--backend", "caffe", "--model",
                                                 "{good_proto}:{empty_model}"]),
            ("evaluate model zip caffemodel", ["evaluate", "{good_photos}", "--backend", "caffe", "--model",
                                               "{good_proto}:{zip_model}"]),
            ("evaluate model of another net", ["evaluate", "{good_photos}", "--backend", "caffe", "--model",
                                               "{other_proto}:{good_model}"]),
            ("evaluate checkpoint list config", ["evaluate", "{good_photos}", "--backend", "torch", "--model",
                                                 "{ck_list}"]),
            ("evaluate folder cuda module", ["evaluate", "{good_photos}", "--backend", "torch", "--model",
                                             "{conv_cuda}"])]
    # ---- convert
    cb = ["{good_proto}", "{good_model}", "-o", f"{d}/cv"]
    for flag, vals in (("--scale", [*BAD_FLOATS, "0", "-1"]), ("--tol", ["0", "nan", "-1", "x"]),
                       ("--mean", ["a,b,c", "nan,1,2", "", "1,,2"]), ("--opset", ["5", "x"]),
                       ("--random", ["-1"]), ("--photos", ["-2"]), ("--input-shape", ["data", "data=1,3", "=1,3,4,4",
                                                                                    "data=0,3,4,4", "data=a"]),
                       ("--sizes", ["0x0", "10", "axb", "-5x5"]), ("--class-name", ["import", "1abc", "a b"]),
                       ("--plugin", [f"{d}/absent.py", "../../x", "os;rm", "json.py/x"])):
        add("convert", cb, flag, vals)
    out += [("convert garbage prototxt", ["convert", "{garbage_proto}", "{zip_model}", "-o", f"{d}/cv"]),
            ("convert binary prototxt", ["convert", "{binary_proto}", "{zip_model}", "-o", f"{d}/cv"]),
            ("convert zip caffemodel", ["convert", "{good_proto}", "{zip_model}", "-o", f"{d}/cv"]),
            ("convert empty caffemodel", ["convert", "{good_proto}", "{empty_model}", "-o", f"{d}/cv"]),
            ("convert text caffemodel", ["convert", "{good_proto}", "{text_model}", "-o", f"{d}/cv"]),
            ("convert swapped", ["convert", "{zip_model}", "{good_proto}", "-o", f"{d}/cv"]),
            ("convert missing files", ["convert", f"{d}/a.prototxt", f"{d}/b.caffemodel", "-o", f"{d}/cv"]),
            ("convert no out", ["convert", "{good_proto}", "{zip_model}"]),
            ("convert out is a file", ["convert", "{good_proto}", "{zip_model}", "-o", "{file_as_dir}"]),
            ("convert fp64 without verify", ["convert", "{good_proto}", "{zip_model}", "-o", f"{d}/cv", "--fp64"])]
    # ---- solve
    for flag, vals in (("--max-iter", ["0", "-1", "x"]), ("--val-iter", ["-1", "x"]), ("--gpu", ["-1", "x"]),
                       ("--engine", ["tf"])):
        add("solve", ["{solver_neg}"], flag, vals)
    out += [("solve missing solver", ["solve", f"{d}/absent.prototxt"]),
            ("solve garbage solver", ["solve", "{solver_garbage}"]),
            ("solve negative lr", ["solve", "{solver_neg}"]),
            ("solve unknown policy", ["solve", "{solver_policy}"]),
            ("solve device with caffe", ["solve", "{solver_neg}", "--device", "cpu"]),
            ("solve binary solver", ["solve", "{binary_proto}"])]
    # ---- serve (port 0: never the default port)
    for flag, vals in (("--port", ["99999", "-1", "x"]), ("--workers", ["0", "-1"]), ("--max-queue", ["-1"]),
                       ("--max-bytes", ["0"]), ("--max-pixels", ["0"]), ("--max-side", ["-1"]),
                       ("--read-timeout", ["0", "nan", "-1", "1e9"]), ("--device", BAD_DEVICES[:3]),
                       ("--backend", ["tf"])):
        add("serve", [] if flag == "--port" else ["--port", "0"], flag, vals)
    for key in ("ck_list", "conv_missing_blob", "garbage_proto"):
        out.append((f"serve model {key}", ["serve", "--port", "0", "--model", f"{{{key}}}"]))
    out.append(("serve unknown model", ["serve", "--port", "0", "--model", "no/such"]))
    # ---- the small ones
    out += [("plot-training =log", ["plot-training", "=x.log"]),
            ("plot-training missing", ["plot-training", f"{d}/absent.log"]),
            ("plot-training empty log", ["plot-training", "{empty_log}", "-o", f"{d}/pt"]),
            ("models --family bogus", ["models", "--family", "bogus"]),
            ("models unknown flag", ["models", "--bogus"]),
            ("fetch-weights unknown", ["fetch-weights", "nonet"]),
            ("fetch-weights two with dest", ["fetch-weights", "vgg16", "vgg19", "--dest", f"{d}/w"]),
            ("fetch-vgg16 unknown flag", ["fetch-vgg16", "--bogus"]),
            ("generate unknown flag", ["generate", "--bogus"]),
            ("fidelity unknown flag", ["fidelity", "--bogus"]),
            ("demo size 0", ["demo", "--size", "0"]), ("demo seed -1", ["demo", "--seed", "-1"])]
    # ---- prep
    for flag, vals in (("--size", ["0", "-1", "5000"]), ("--limit", ["0"]), ("--val-fraction", ["2", "nan", "-0.1"]),
                       ("--seed", ["-1"])):
        add("prep", ["coco", "{json_list}", "{photos}", "--out", f"{d}/coco"], flag, vals)
    out += [("prep coco not coco", ["prep", "coco", "{json_list}", "{photos}", "--out", f"{d}/coco"]),
            ("prep coco missing", ["prep", "coco", f"{d}/absent.json", "{photos}", "--out", f"{d}/coco"]),
            ("prep unknown step", ["prep", "bake"]),
            ("prep fetch unknown", ["prep", "fetch", "imagenet"]),
            ("prep lmdb size 0", ["prep", "lmdb", "{photos}", "--out", f"{d}/l", "--size", "0"]),
            ("prep lmdb seed -1", ["prep", "lmdb", "{photos}", "--out", f"{d}/l", "--seed", "-1"]),
            ("prep sample size 0", ["prep", "sample", "--out", f"{d}/s", "--size", "0"]),
            ("prep masks missing", ["prep", "masks", f"{d}/absent", f"{d}/m"])]
    return out


CASES = cases()


def _argv(argv: list[str], files: dict) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) if "{" in a else a for a in argv]


def _check(code: int, err: str, argv: list[str]) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("convert: note:",))]
    assert "Traceback" not in err, (argv, err[-3000:])
    assert code == 2, (argv, code, err[-2000:])
    assert len(lines) == 1 and LINE.match(lines[0]), (argv, lines)


def test_the_probe_has_over_200_cases():
    assert len(CASES) >= 200, len(CASES)
    assert len({c for c, _ in CASES}) == len(CASES)


@pytest.mark.caffe
@pytest.mark.parametrize(("case", "argv"), CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(case, argv, files, monkeypatch):
    monkeypatch.chdir(files["dir"])
    err, outbuf = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(outbuf):
        try:
            code = cli.main(_argv(argv, files))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    _check(code, err.getvalue(), argv)


PROCESS_CASES = CASES if os.environ.get("FCNKIT_PROBE_ALL") == "1" else CASES[::12]


@pytest.mark.slow
@pytest.mark.caffe
@pytest.mark.parametrize(("case", "argv"), PROCESS_CASES, ids=[c for c, _ in PROCESS_CASES])
def test_bad_input_as_a_real_process(case, argv, files):
    r = subprocess.run([str(VENV_BIN / "fcnkit"), *_argv(argv, files)], capture_output=True, text=True,
                       timeout=600, cwd=files["dir"])
    _check(r.returncode, r.stderr, argv)
    assert not Path(files["dir"], "cv").exists()  # nothing half-written by a refused convert
