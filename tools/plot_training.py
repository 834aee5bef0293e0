#!/usr/bin/env python3
"""Thin wrapper: see fcnkit.plot_training."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.plot_training import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
