"""tools/fidelity.py reads the real files: all PASS as committed, FAIL when a file drifts from the paper."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import ROOT


def run_fidelity(root):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "fidelity.py"), "--root", str(root)],
                          capture_output=True, text=True, timeout=120)


def test_committed_files_match_the_paper():
    r = run_fidelity(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and " PASS" in r.stdout
    assert "Where the paper is silent" in r.stdout and "weight_decay: 0.0005" in r.stdout


def test_a_drifted_solver_fails(tmp_path):
    for d in ("prototxt", "solvers"):
        shutil.copytree(ROOT / d, tmp_path / d)
    path = tmp_path / "solvers" / "fcn16s.prototxt"
    path.write_text(path.read_text().replace("max_iter: 20000", "max_iter: 2000"))
    r = run_fidelity(tmp_path)
    assert r.returncode == 1
    bad = [line for line in r.stdout.splitlines() if line.endswith("FAIL")]
    assert len(bad) == 1 and "fcn16s iterations" in bad[0] and "2000" in bad[0]
