"""The `convert` command: bad input gives one clear line and exit status 2 with nothing written;
training prototxts (Data layers, losses), odd layer names and several outputs convert correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from convert_helpers import parity, run_case
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.cli.convert import main
from fcnkit.convert.sample_nets import randomize

pytestmark = pytest.mark.caffe


def _small_net(tmp_path: Path, num_output: int = 5, name: str = "conv", extra: str = "") -> tuple[Path, Path]:
    """A 3-layer deploy net and its random caffemodel."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 9, 9]))
    setattr(n, name, L.Convolution(n.data, num_output=num_output, kernel_size=3))
    n.pool = L.Pooling(getattr(n, name), kernel_size=2, stride=2)
    text = str(n.to_proto()) + extra
    proto = tmp_path / f"{name}{num_output}.prototxt"
    proto.write_text(text)
    model = tmp_path / f"{name}{num_output}.caffemodel"
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, 0)
    net.save(str(model))
    return proto, model


def _fails(capsys, argv, *, out: Path, expect: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("convert: error: ")
    for piece in expect:
        assert piece in err, err
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers, leftovers
    return err


def test_truncated_caffemodel(tmp_path, capsys):
    proto, model = _small_net(tmp_path)
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    _fails(capsys, [str(proto), str(cut), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["cut.caffemodel", "truncated or corrupt"])


def test_corrupt_caffemodel(tmp_path, capsys):
    proto, _ = _small_net(tmp_path)
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    _fails(capsys, [str(proto), str(junk), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["junk.caffemodel"])


def test_prototxt_syntax_error_names_line_and_column(tmp_path, capsys):
    proto, model = _small_net(tmp_path)
    lines = proto.read_text().splitlines()
    idx = next(i for i, line in enumerate(lines) if "num_output" in line)
    lines[idx] = lines[idx].replace("num_output", "num_ouptut")
    bad = tmp_path / "bad.prototxt"
    bad.write_text("\n".join(lines) + "\n")
    col = lines[idx].index("num_ouptut") + 1
    _fails(capsys, [str(bad), str(model), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=[f"bad.prototxt:{idx + 1}:{col}:", "num_ouptut"])


def test_unbalanced_braces(tmp_path, capsys):
    proto, model = _small_net(tmp_path)
    bad = tmp_path / "open.prototxt"
    bad.write_text(proto.read_text().rstrip().rstrip("}") + "\n")
    _fails(capsys, [str(bad), str(model), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["open.prototxt:", "does not parse"])


def test_shape_mismatch_names_layer_and_both_shapes(tmp_path, capsys):
    _, model5 = _small_net(tmp_path, num_output=5)
    proto6, _ = _small_net(tmp_path, num_output=6)
    _fails(capsys, [str(proto6), str(model5), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["layer 'conv'", "(5, 3, 3, 3)", "(6, 3, 3, 3)"])


def test_layer_missing_from_caffemodel(tmp_path, capsys):
    _, model = _small_net(tmp_path, name="conv")
    proto, _ = _small_net(tmp_path, name="conv_renamed")
    _fails(capsys, [str(proto), str(model), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["conv5.caffemodel", "no layer named 'conv_renamed'"])


def test_unsupported_layer_type(tmp_path, capsys):
    extra = 'layer { name: "crf" type: "DenseCRF" bottom: "pool" top: "crf" }\n'
    proto, model = _small_net(tmp_path)
    with_crf = tmp_path / "crf.prototxt"
    with_crf.write_text(proto.read_text() + extra)
    _fails(capsys, [str(with_crf), str(model), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["layer 'crf'", "type 'DenseCRF'", "DeepLab", "--list-layers"])


def test_prototxt_passed_as_caffemodel(tmp_path, capsys):
    proto, _ = _small_net(tmp_path)
    _fails(capsys, [str(proto), str(proto), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["text prototxt, not a binary caffemodel"])


def test_missing_file(tmp_path, capsys):
    proto, _ = _small_net(tmp_path)
    _fails(capsys, [str(proto), str(tmp_path / "nope.caffemodel"), "-o", str(tmp_path / "out")],
           out=tmp_path / "out", expect=["nope.caffemodel"])


def test_existing_output_needs_force_and_is_replaced_whole(tmp_path, capsys):
    proto, model = _small_net(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert main([str(proto), str(model), "-o", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "stale.txt").exists()
    assert main([str(proto), str(model), "-o", str(out), "-q", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["conversion.json", "model.py", "weights.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_tools_script_and_list_layers():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "caffe2torch.py"), "--list-layers"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Deconvolution" in r.stdout and "Crop" in r.stdout


def test_train_val_net_with_data_and_loss_layers(tmp_path):
    """A train/val prototxt: the TEST Data layer becomes the input (shape from --input-shape), loss and
    accuracy are left out, and its transform_param lands in conversion.json; same numbers as the deploy
    net in Caffe."""
    caffe = load_caffe()
    deploy, model = _small_net(tmp_path)
    body = deploy.read_text().split("layer {", 2)[2]  # drop the Input layer
    data = """
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { mirror: true crop_size: 9 mean_value: 104 mean_value: 117 mean_value: 123 }
  data_param { source: "train_lmdb" batch_size: 8 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { crop_size: 9 mean_value: 104.5 mean_value: 117 mean_value: 123 scale: 0.5 }
  data_param { source: "val_lmdb" batch_size: 1 backend: LMDB } }
"""
    loss = """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "pool" bottom: "label" }
layer { name: "acc" type: "Accuracy" bottom: "pool" bottom: "label" include { phase: TEST } }
"""
    train_val = tmp_path / "train_val.prototxt"
    train_val.write_text(data + "layer {" + body + loss)
    out = tmp_path / "out"
    assert main([str(train_val), str(model), "-o", str(out), "-q", "--input-shape", "data=1,3,9,9"]) == 0
    info = json.loads((out / "conversion.json").read_text())
    assert [i["blob"] for i in info["inputs"]] == ["data"]
    assert [o["blob"] for o in info["outputs"]] == ["pool"]
    pre = info["preprocessing"]
    assert pre["known"] and pre["mean_value"] == [104.5, 117.0, 123.0] and pre["scale"] == 0.5
    assert pre["crop"] == [9, 9]
    skipped = {layer["name"] for layer in info["layers"] if layer["kind"] == "skipped"}
    assert skipped == {"loss", "acc"}
    # the same module from the deploy net, with --preprocess-from: identical numbers to Caffe
    net = caffe.Net(str(deploy), str(model), caffe.TEST)
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 9)).astype(np.float32)
    info2, _, _ = parity(net, deploy, model, tmp_path / "out2", {"data": x},
                         convert_kwargs={"preprocess_from": train_val})
    assert info2["preprocessing"]["mean_value"] == [104.5, 117.0, 123.0]


def test_data_layer_without_shape_asks_for_input_shape(tmp_path, capsys):
    _, model = _small_net(tmp_path)
    deploy = tmp_path / "conv5.prototxt"
    body = deploy.read_text().split("layer {", 2)[2]
    proto = tmp_path / "data.prototxt"
    data = 'layer { name: "data" type: "Data" top: "data" data_param { source: "x" batch_size: 1 } }\n'
    proto.write_text(data + "layer {" + body)
    _fails(capsys, [str(proto), str(model), "-o", str(tmp_path / "out")], out=tmp_path / "out",
           expect=["--input-shape data=N,C,H,W"])


def test_odd_names_and_multiple_outputs(tmp_path):
    """Layer/blob names that are not identifiers (or clash with nn.Module attributes) are renamed and
    recorded; a net with several outputs returns them in Caffe's (sorted) order."""
    def build(n, L, P):
        setattr(n, "conv1/3x3", L.Convolution(n.data, num_output=4, kernel_size=3, pad=1))
        setattr(n, "1x1", L.Convolution(getattr(n, "conv1/3x3"), num_output=2, kernel_size=1))
        n.forward = L.ReLU(getattr(n, "1x1"))
        setattr(n, "class", L.Sigmoid(getattr(n, "conv1/3x3")))
        setattr(n, "z-out", L.TanH(getattr(n, "conv1/3x3")))

    info, cb, tb = run_case(tmp_path, build, {"data": (1, 3, 7, 8)})
    assert info["renamed"] == {"conv1/3x3": "conv1_3x3", "1x1": "_1x1", "forward": "forward_",
                               "class": "class_", "z-out": "z_out"}
    assert [o["blob"] for o in info["outputs"]] == ["class", "forward", "z-out"]
    src = (tmp_path / "out" / "model.py").read_text()
    assert "-> tuple[torch.Tensor, torch.Tensor, torch.Tensor]" in src


@pytest.mark.parametrize("bad", ["data=1,3,x", "data", "=1,2"])
def test_bad_input_shape_argument(tmp_path, bad, capsys):
    proto, model = _small_net(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([str(proto), str(model), "-o", str(tmp_path / "out"), "--input-shape", bad])
    assert exc.value.code == 2
    assert "NAME=N,C,H,W" in capsys.readouterr().err


def test_mean_and_scale_from_command_line(tmp_path, capsys):
    proto, model = _small_net(tmp_path)
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "-q", "--mean", "104.00699,116.66877,122.67892",
                 "--scale", "0.017"]) == 0
    pre = json.loads((out / "conversion.json").read_text())["preprocessing"]
    assert pre["known"] and pre["mean_value"] == [104.00699, 116.66877, 122.67892] and pre["scale"] == 0.017
    assert "104.00699" in (out / "model.py").read_text()  # also stated in the generated docstring
    _fails(capsys, [str(proto), str(model), "-o", str(tmp_path / "o2"), "--mean", "1,2"], out=tmp_path / "o2",
           expect=["--mean has 2 values", "3 channels"])


def test_verify_reports_a_wrong_blob_and_fails(tmp_path, capsys):
    """--verify must catch a numeric difference: perturb one weight of a converted net by 5% of the largest
    weight and the table marks that layer's blob (and those after it) NO; verify returns False."""
    from fcnkit.convert.verify import verify
    from safetensors.numpy import load_file, save_file

    proto, model = _small_net(tmp_path)
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "-q"]) == 0
    assert verify(proto, model, out, n_photos=1, n_random=1) is True
    capsys.readouterr()
    tensors = load_file(str(out / "weights.safetensors"))
    w = tensors["conv.weight"]
    w.flat[0] += 0.05 * np.abs(w).max()
    save_file(tensors, str(out / "weights.safetensors"))
    assert verify(proto, model, out, n_photos=1, n_random=1) is False
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("   ") and line.split()}
    assert rows["conv"].rstrip().endswith("NO") and rows["data"].rstrip().endswith("yes")
    assert "verify: FAIL" in text


def test_skip_leaves_out_an_unused_python_layer(tmp_path, capsys):
    """A Python metric layer whose top nothing reads is left out by itself; --skip still names layers to
    leave out explicitly (and must name real ones)."""
    proto, model = _small_net(tmp_path)
    metric = ('layer { name: "acc" type: "Python" bottom: "pool" top: "acc" '
              'python_param { module: "fcnkit.caffe.pylayers" layer: "PixelAccuracy" } }\n')
    with_python = tmp_path / "py.prototxt"
    with_python.write_text(proto.read_text() + metric)
    _fails(capsys, [str(with_python), str(model), "-o", str(tmp_path / "out"), "--skip", "nope"],
           out=tmp_path / "out", expect=["--skip names ['nope']"])
    for extra, note in (([], "Python layer whose tops no later layer reads (e.g. a metric): left out"),
                        (["--skip", "acc"], "skipped by --skip")):
        out = tmp_path / f"out{len(extra)}"
        assert main([str(with_python), str(model), "-o", str(out), "-q", *extra]) == 0
        info = json.loads((out / "conversion.json").read_text())
        assert [o["blob"] for o in info["outputs"]] == ["pool"]
        assert info["layers"][-1] == {"name": "acc", "type": "Python", "kind": "skipped", "bottoms": ["pool"],
                                      "tops": ["acc"], "top_shapes": [], "notes": [note]}


def test_verify_copies_weights_when_caffe_cannot_read_the_file(tmp_path, monkeypatch, capsys):
    """Above what the Caffe build can read, --verify loads the weights into Caffe from fcnkit's reader;
    the resulting Caffe net is identical to one that read the file itself."""
    from fcnkit.convert import verify as V

    caffe = load_caffe()
    proto, model = _small_net(tmp_path)
    monkeypatch.setattr(V, "_readable_up_to", 10)
    monkeypatch.setattr(V, "_caffe_reads", lambda p, m: False)
    copied = V.caffe_net(caffe, proto, model)
    assert "cannot read" in capsys.readouterr().out
    direct = caffe.Net(str(proto), str(model), caffe.TEST)
    for name in direct.params:
        for a, b in zip(direct.params[name], copied.params[name], strict=True):
            np.testing.assert_array_equal(a.data, b.data)
