"""Model families. `fcnkit.models.get(name)` / `registered()` see every family listed in FAMILIES.

To add a family: create `models/<family>/__init__.py` that builds its nets and calls
`registry.register(ModelSpec(...))` for each model, and add its module name to FAMILIES.
"""

from __future__ import annotations

import importlib

from fcnkit.models import registry
from fcnkit.models.registry import ModelSpec, Preprocessing, latest_snapshot, register

FAMILIES = ("fcn", "lrn", "unet", "extractnet", "patchcnn")
_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for fam in FAMILIES:
            importlib.import_module(f"fcnkit.models.{fam}")
        _loaded = True


def registered() -> dict[str, ModelSpec]:
    _load_families()

    return registry.registered()


def get(name: str) -> ModelSpec:
    _load_families()

    return registry.get(name)


def by_snapshot_prefix(prefix: str) -> ModelSpec | None:
    _load_families()

    return registry.by_snapshot_prefix(prefix)


__all__ = ["FAMILIES", "ModelSpec", "Preprocessing", "by_snapshot_prefix", "get", "latest_snapshot", "register",
           "registered"]
