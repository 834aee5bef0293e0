"""One inference interface for every model: `load(ref)` -> `Predictor` -> foreground log-odds, probability,
mask at the image's own resolution. `evaluate`, `remove-bg` and the web server all go through it.

    from fcnkit import inference
    p = inference.load("runs/demo/torch/fcn8s_finetune")     # or "tiny/fcn8s", "a.prototxt:b.caffemodel"
    mask = p.mask(bgr)                                        # (H, W) uint8 0/1

`refs` resolves what `--model` names, `backends` runs it in Caffe or PyTorch, `predict` turns raw outputs
into maps at the image's size.
"""

from __future__ import annotations

from fcnkit.inference.backends import make_backend
from fcnkit.inference.predict import Predictor, probability, to_mask
from fcnkit.inference.refs import DEFAULT_MODEL, ModelRef, resolve


def load_many(ref=None, backends=("auto",), *, device: str = "cpu", precision: str = "fp32", deploy=None,
              caffemodel=None, max_side: int = 0, batch_size: int = 1, log=None) -> list[Predictor]:
    """One Predictor per backend ("caffe", "torch" or "auto") for the same model reference (see `refs`):
    e.g. a Caffe net and its PyTorch conversion, side by side. A backend may be given as a pair
    (backend, precision) to override `precision` for it (e.g. an fp32 reference beside a bf16 run).
    `log` receives notes about defaults."""
    r = resolve(ref, deploy=deploy, caffemodel=caffemodel)
    for note in r.notes:
        if log:
            log(note)
    pairs = [b if isinstance(b, tuple) else (b, precision) for b in backends]
    return [Predictor(make_backend(r, b, device, prec), r.preprocessing, r.output, label=r.label,
                      max_side=max_side, batch_size=batch_size) for b, prec in pairs]


def load(ref=None, *, backend: str = "auto", **kw) -> Predictor:
    """A Predictor for one model reference on one backend."""
    return load_many(ref, (backend,), **kw)[0]


__all__ = ["DEFAULT_MODEL", "ModelRef", "Predictor", "load", "load_many", "probability", "resolve", "to_mask"]
