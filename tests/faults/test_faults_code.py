"""Nothing runs code from a data file: names in a prototxt cannot become code in the generated model.py (quoted,
then audited before anything imports it), a `train --resume` state file is read as data (a pickle that would
run code is refused), and `convert --plugin` never lets a file in the working directory stand in for a
module. Real files, real processes; the marker file proves whether anything ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import VENV_BIN, one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "convert"))
from convert_helpers import write_caffemodel  # noqa: E402

PAYLOAD = 'import os; open(os.environ.get("MARK", "/nonexistent/x"), "w").write("ran")'


def _hostile_net(tmp_path: Path) -> tuple[Path, Path]:
    """A valid net whose net name, layer names and blob names each try to break out of a docstring or a
    comment of model.py (triple quotes, newlines, backslashes, a trailing quote)."""
    q = lambda s: s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731 - prototxt escaping
    net_name = f'x"""\n{PAYLOAD}\n"""'
    conv = f'c\n{PAYLOAD}\n#'
    blob = f'b"""\n{PAYLOAD}\n"""\\'
    relu = 'r"\r\n' + PAYLOAD
    proto = tmp_path / "evil.prototxt"
    proto.write_text(f'''name: "{q(net_name)}"
layer {{ name: "in" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: 8 dim: 8 }} }} }}
layer {{ name: "{q(conv)}" type: "Convolution" bottom: "data" top: "{q(blob)}"
        convolution_param {{ num_output: 2 kernel_size: 3 pad: 1 }} }}
layer {{ name: "{q(relu)}" type: "ReLU" bottom: "{q(blob)}" top: "{q(blob)}" }}
''')
    rng = np.random.default_rng(0)
    model = write_caffemodel(tmp_path / "evil.caffemodel", [
        (conv, "Convolution", [rng.standard_normal((2, 3, 3, 3)).astype(np.float32), np.zeros(2, np.float32)])])
    return proto, model


def test_names_in_the_prototxt_never_become_code(tmp_path):
    proto, model = _hostile_net(tmp_path)
    mark = tmp_path / "ran"
    env = {"MARK": str(mark), "PATH": "/usr/bin:/bin"}
    r = run_cli("convert", proto, model, "-o", tmp_path / "out", env=env)
    assert r.returncode == 0, r.stderr
    assert not mark.exists(), "a layer name ran as code during convert"
    src = (tmp_path / "out" / "model.py").read_text()
    assert '"""\nimport os' not in src and "\nimport os; open" not in src
    # whoever imports the generated model.py runs nothing from the names either, and gets a working net
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import model; "
            "out = model.load_model()(torch.zeros(1, 3, 8, 8)); print(tuple(out.shape))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True,
                       env={**env, "PYTHONPATH": ""}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(1, 2, 8, 8)"
    assert not mark.exists(), "a layer name ran as code when model.py was imported"


def test_a_model_py_that_does_more_than_build_layers_is_never_run(tmp_path):
    from fcnkit.caffenet.model_folder import load_generated
    from fcnkit.errors import UserError

    proto, model = _hostile_net(tmp_path)
    assert run_cli("convert", proto, model, "-o", tmp_path / "out").returncode == 0
    good = (tmp_path / "out" / "model.py").read_text()
    mark = tmp_path / "ran"
    cases = {
        "statement in __init__": good.replace("super().__init__()\n",
                                              f"super().__init__()\n        open({str(mark)!r}, 'w')\n", 1),
        "import": good.replace("import json\n", "import json\nimport subprocess\n", 1),
        "os.system": good.replace("import json\n", f"import json\nos.system('touch {mark}')\n", 1),
        "call in forward": good.replace("        return ", f"        open({str(mark)!r}, 'w')\n        return ", 1),
        "builtin as a layer": good.replace("super().__init__()\n",
                                           f"super().__init__()\n        self.z = open({str(mark)!r}, 'w')\n", 1),
    }
    for what, text in cases.items():
        assert text != good, what
        bad = tmp_path / f"{what.replace(' ', '_')}.py"
        bad.write_text(text)
        with pytest.raises(UserError, match="not a model.py as `convert` writes it"):
            load_generated(bad)
        assert not mark.exists(), what
    assert load_generated(tmp_path / "out" / "model.py").Net is not None  # the real file still loads


class _Boom:
    def __reduce__(self):
        return (exec, (PAYLOAD,))


def test_resume_state_is_data_a_pickle_with_code_is_refused(tmp_path, blob_dataset):
    import torch

    out = tmp_path / "ck" / "lrn.safetensors"
    r = run_cli("fcnkit-train", "lrn", blob_dataset / "white", "--out", out, "--epochs", "1", "--limit", "4",
                "--device", "cpu")
    assert r.returncode == 0, r.stderr
    resume = out.with_name("lrn.resume.pt")
    assert resume.is_file()
    torch.load(resume, weights_only=True)  # what the trainer writes is plain data
    torch.save({"epoch": _Boom()}, resume)
    mark = tmp_path / "ran"
    r = run_cli("fcnkit-train", "lrn", blob_dataset / "white", "--out", out, "--epochs", "2", "--limit", "4",
                "--device", "cpu", "--resume", env={"MARK": str(mark), "PATH": "/usr/bin:/bin"})
    line = one_error_line(r, "train")
    assert "lrn.resume.pt" in line and "--resume" in line
    assert not mark.exists(), "the resume file ran code"


def test_plugin_never_shadowed_by_the_working_directory(tmp_path):
    """`python -m fcnkit convert --onnx` in a folder holding onnx.py runs the real onnx; a plugin is a file path
    or an installed module, and a plugin file named like an importable module is refused."""
    proto, model = _hostile_net(tmp_path)
    mark = tmp_path / "ran"
    work = tmp_path / "work"
    work.mkdir()
    for name in ("onnx.py", "torch_pylayers.py", "safetensors.py"):
        (work / name).write_text(PAYLOAD + "\n")
    env = {"MARK": str(mark), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "fcnkit", "convert", str(proto), str(model), "-o",
                        str(tmp_path / "out"), "--onnx", "-q"], capture_output=True, text=True, cwd=work,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert not mark.exists(), "a file in the working directory shadowed a module"
    # a module name is not looked up in the working directory
    r = run_cli("convert", proto, model, "-o", tmp_path / "o2", "--plugin", "torch_pylayers", cwd=work, env=env)
    assert "torch_pylayers" in one_error_line(r, "convert")
    assert not mark.exists()
    # a plugin file whose name is an importable module would shadow it
    r = run_cli("convert", proto, model, "-o", tmp_path / "o3", "--plugin", work / "onnx.py", cwd=work, env=env)
    assert "cannot shadow" in one_error_line(r, "convert")
    assert not mark.exists()
