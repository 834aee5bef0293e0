"""Where the project keeps data, weights, snapshots and runs, and how a relative path is resolved.

The committed solvers and nets name their files relative to the project root (`data/...`,
`weights/snapshots/...`), as Caffe resolves them against the working directory. Commands that look
for defaults (the demo model, VGG-16, snapshots) resolve them against the project root instead, so they
work from any directory: the root is `$FCNKIT_ROOT` if set, else the checkout holding this package
(an editable install), else the working directory.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

DATA_DIR = "data"
SNAPSHOT_DIR = "weights/snapshots"
VGG16_DIR = "weights/vgg16"
DEMO_RUN_DIR = "runs/demo"


@cache
def project_root() -> Path:
    env = os.environ.get("FCNKIT_ROOT")
    if env:
        return Path(env).resolve()
    checkout = Path(__file__).resolve().parents[3]  # <root>/python/fcnkit/config/paths.py
    if (checkout / "solvers").is_dir() and (checkout / "prototxt").is_dir():
        return checkout
    return Path.cwd()


def in_project(rel: str | os.PathLike) -> Path:
    """A project-relative path (as the committed files spell them) as an absolute path."""
    p = Path(rel)
    return p if p.is_absolute() else project_root() / p
