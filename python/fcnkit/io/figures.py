"""Figures (PNG grids, curves) are drawn with matplotlib's headless Agg backend; `pyplot()` is the one place
that imports it (about a second, and only the commands that draw pay for it)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib  # noqa: PLC0415  (heavy: only commands that draw figures import it)

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt
