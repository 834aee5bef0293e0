"""The one command table: every command is reachable as `fcnkit COMMAND`, as its console script, and (where
the project promises one) as a wrapper script; each answers --help and rejects bad input with exit 2."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT, VENV_BIN
from fcnkit import cli

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
WRAPPERS = {  # the top-level scripts the README promises -> the command they run
    "tools/caffe2torch.py": "convert", "tools/evaluate.py": "evaluate", "tools/fidelity.py": "fidelity",
    "tools/plot_training.py": "plot-training", "weights/fetch_vgg16.py": "fetch-vgg16",
    "data_prep/masks.py": "prep", "data_prep/composite.py": "prep", "data_prep/make_lmdb.py": "prep",
    "data_prep/sample.py": "prep", "data_prep/ingest.py": "prep", "data_prep/fetch_voc.py": "prep",
}


def test_every_command_has_a_console_script_pointing_at_its_cli_module():
    targets = {v.split(":")[0] for v in SCRIPTS.values()}
    for name, (module, _) in cli.COMMANDS.items():
        assert f"fcnkit.cli.{module}" in targets, f"{name} has no console script"
    assert SCRIPTS["fcnkit"] == "fcnkit.cli:main"
    for script in SCRIPTS:
        assert (VENV_BIN / script).exists(), f"{script} is not installed; run `make setup`"


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_fcnkit_command_help(command):
    r = subprocess.run([str(VENV_BIN / "fcnkit"), command, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


@pytest.mark.parametrize("command", [c for c in cli.COMMANDS if c not in ("models", "fidelity", "generate")])
def test_unknown_flag_is_exit_2(command):
    r = subprocess.run([str(VENV_BIN / "fcnkit"), command, "--no-such-flag"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr


def test_wrappers_are_thin_and_uniform():
    for rel, command in WRAPPERS.items():
        text = (ROOT / rel).read_text()
        assert f"run({command!r}" in text or f'run("{command}"' in text, rel
        assert len(text.splitlines()) < 25, f"{rel} is not a thin wrapper"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "caffe2torch.py"), "--list-layers"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Convolution" in r.stdout


def test_python_dash_m_fcnkit(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fcnkit", "models", "--json"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"name": "tiny/fcn8s_finetune"' in r.stdout


def test_entrypoint_dispatches_and_rejects_unknown_commands(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert cli.main([]) == 2 and "commands:" in capsys.readouterr().out
