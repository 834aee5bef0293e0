"""Backends: one model, one framework. `forward` maps a preprocessed batch to the model's raw output.

    forward(x: (N, 3, H, W) float32) -> (N, C, H, W) float32      (C = 2 for "softmax2", 1 for "sigmoid1")

- `CaffeBackend`: pycaffe on a deploy prototxt + caffemodel (the input blob is reshaped to each batch);
- `ConvertedBackend`: the PyTorch module `convert` wrote, rebuilt from conversion.json (never imported);
- `CheckpointBackend`: a natively trained PyTorch model of a registered family;
- `ModuleBackend`: an `nn.Module` held in memory (training's validation, `refine`, `compare`), so it is
  scored through the same `Predictor` (sizes, preprocessing, log-odds) as a checkpoint loaded from disk.
`make_backend(ref, "caffe" | "torch")` picks the one that runs a resolved reference.

Precision (PyTorch backends only; Caffe computes in fp32): "fp32" (default: Caffe parity is the point),
"bf16" (`torch.autocast` to bfloat16: convolutions and matrix products in bf16, the rest in fp32; fast on
CPUs with AMX or AVX-512-BF16 and on recent GPUs) or "fp16" (CUDA only). On the CPU the input and the
model are put in channels-last memory order, which oneDNN's convolutions run faster
(`bench/bench_precision.py` measures both orders side by side); results are the same up to float rounding.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from fcnkit.caffenet.model_folder import load_converted
from fcnkit.caffenet.pycaffe import check_net_files, load_caffe
from fcnkit.errors import UserError
from fcnkit.inference.predict import Predictor
from fcnkit.inference.refs import ModelRef
from fcnkit.models.native import build_model, check_settings


class CaffeBackend:
    name = "caffe"

    def __init__(self, ref: ModelRef):
        for p, what in ((ref.deploy, "deploy prototxt"), (ref.caffemodel, "caffemodel")):
            if p is None or not p.is_file():
                raise UserError(f"Caffe backend: {what} {p} not found; pass --deploy/--caffemodel")

        check_net_files(ref.deploy, ref.caffemodel)  # Caffe aborts the process on what it cannot load
        caffe = load_caffe()  # CPU: --device selects the PyTorch device only
        self.net = caffe.Net(str(ref.deploy), caffe.TEST, weights=str(ref.caffemodel))
        self.input = self.net.inputs[0]
        self.output = ref.output_blob

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.net.blobs[self.input].reshape(*x.shape)
        self.net.blobs[self.input].data[...] = x
        self.net.forward()
        return self.net.blobs[self.output].data.copy()


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The CPU's bf16 units (AMX, AVX-512-BF16) that make bf16 faster than fp32; [] where there are none."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags = next((set(ln.split(":", 1)[1].split()) for ln in text.splitlines() if ln.startswith("flags")), set())
    return [f for f in ("amx_bf16", "avx512_bf16") if f in flags]


@functools.cache
def warn_emulated_bf16() -> None:
    """Once per process, where bf16 is about to run on a CPU that emulates it."""
    print("warning: --precision bf16: this CPU has neither AMX nor AVX-512-BF16, so bf16 is emulated and slower "
          "than fp32 (10x on FCN-8s, bench/bench_precision.py); use fp32 here", file=sys.stderr)


def check_precision(precision: str, device: str = "cpu") -> None:
    """One line for a precision this device cannot run."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise UserError("--precision fp16 runs on a CUDA device only (CPU kernels for half floats are slow or "
                        "missing); on the CPU use --precision bf16")


class _TorchBackend:
    def __init__(self, device: str, precision: str = "fp32", channels_last: bool | None = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {device}: this PyTorch has no usable CUDA device; use --device cpu")
        check_precision(precision, device)
        if precision == "bf16" and device == "cpu" and not cpu_bf16_units():
            warn_emulated_bf16()
        self.torch = torch
        self.device = device
        self.precision = precision
        self.name = "torch" if precision == "fp32" else f"torch-{precision}"
        self.channels_last = device == "cpu" if channels_last is None else channels_last
        self.model = None
        self.out_index = 0

    def _use(self, model) -> None:
        """Hold `model` in the backend's memory order."""
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model

    def forward(self, x: np.ndarray) -> np.ndarray:
        t = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[self.precision]
        with self.torch.inference_mode(), torch.autocast(t.device.type, dtype=dtype, enabled=dtype is not None):
            y = self.model(t)
        y = y[self.out_index] if isinstance(y, tuple | list) else y
        return y.float().contiguous().cpu().numpy()


class ConvertedBackend(_TorchBackend):
    """A `convert` output folder, loaded as data: nothing in the folder (model.py) is executed."""

    def __init__(self, ref: ModelRef, device: str = "cpu", **kw):
        super().__init__(device, **kw)
        model = load_converted(ref.folder, device)
        self.out_index = model.output_blobs.index(ref.output_blob)
        self._use(model)


class CheckpointBackend(_TorchBackend):
    def __init__(self, ref: ModelRef, device: str = "cpu", **kw):
        super().__init__(device, **kw)
        spec = ref.spec
        where = f"{ref.checkpoint.with_suffix('.json')} config"
        model = build_model(spec, check_settings(spec, ref.info.get("config", {}), where), where)
        try:
            state = load_file(str(ref.checkpoint))
        except Exception as exc:  # safetensors raises its own error types for malformed headers
            raise UserError(f"{ref.checkpoint}: not a readable safetensors checkpoint ({exc})") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"{ref.checkpoint}: does not fit model {spec.name} ({first}); is it a checkpoint of "
                            "another family or configuration?") from None
        self._use(model.to(device).eval())


class ModuleBackend(_TorchBackend):
    """A module being trained or refined: used as it is (fp32, its own memory order)."""

    def __init__(self, model, device: str = "cpu"):
        super().__init__(device, channels_last=False)
        self.model = model

    def forward(self, x: np.ndarray) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            return super().forward(x)
        finally:
            self.model.train(was_training)


def module_predictor(model, preprocessing, output: str = "sigmoid1", *, device: str = "cpu", batch_size: int = 8,
                     label: str = ""):
    """A `Predictor` over an in-memory module (`preprocessing`: the family's `Preprocessing`)."""
    return Predictor(ModuleBackend(model, device), preprocessing, output, label=label, batch_size=batch_size)


def make_backend(ref: ModelRef, backend: str = "auto", device: str = "cpu", precision: str = "fp32"):
    """The backend that runs `ref`: "caffe", "torch", or "auto" (torch when the reference has a PyTorch form)."""
    if backend == "auto":
        backend = "caffe" if ref.kind == "caffe" else "torch"
    if backend == "caffe":
        if ref.kind == "checkpoint":
            raise UserError(f"{ref.label} is a PyTorch checkpoint; it has no Caffe form (use --backend torch)")
        if precision != "fp32":
            raise UserError(f"--precision {precision}: Caffe computes in fp32 only; use --backend torch for "
                            f"{precision}")
        return CaffeBackend(ref)
    if backend != "torch":
        raise ValueError(f"backend must be caffe, torch or auto, got {backend!r}")
    if ref.kind == "converted":
        return ConvertedBackend(ref, device, precision=precision)
    if ref.kind == "checkpoint":
        return CheckpointBackend(ref, device, precision=precision)
    raise UserError(f"{ref.label} is a Caffe net; convert it for the torch backend (`convert {ref.deploy} "
                    f"{ref.caffemodel} -o DIR`, then --model DIR) or use --backend caffe")
