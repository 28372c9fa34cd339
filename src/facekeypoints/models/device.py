"""Which device torch runs on: one resolver for training, evaluation, prediction, bench and export.

``auto`` is the GPU when there is one (CUDA, then Apple's MPS), else the CPU. Asking for a device
that is not there is a one-line error (``DeviceError``), never a stack trace from deep in torch.

Examples
--------
>>> resolve_device("cpu")
'cpu'
>>> resolve_device("auto") in ("cpu", "cuda", "mps")
True
>>> resolve_device("tpu")
Traceback (most recent call last):
...
facekeypoints.models.device.DeviceError: device 'tpu' is not one of auto, cpu, cuda, cuda:N, mps
"""
from __future__ import annotations

import re

__all__ = ["resolve_device", "DeviceError", "AMP_MODES", "amp_dtype"]

AMP_MODES = ("none", "bf16", "fp16")


class DeviceError(ValueError):
    """A device or precision that this machine does not have."""


def resolve_device(name: str = "auto") -> str:
    """``auto|cpu|cuda|cuda:N|mps`` -> a torch device string that exists here (``cuda`` means cuda:0)."""
    if not isinstance(name, str):  # 0 or None met the pattern below as a bare "expected string" TypeError
        hint = f" (GPU {name} is 'cuda:{name}')" if isinstance(name, int) and not isinstance(name, bool) else ""
        raise TypeError(f"device must be a string, one of auto, cpu, cuda, cuda:N, mps; got "
                        f"{type(name).__name__} {name!r}{hint}")
    if name == "cpu":  # without importing torch: ONNX Runtime prediction never needs it
        return "cpu"
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _has_mps() else "cpu"
    if name == "mps":
        if not _has_mps():
            raise DeviceError("device 'mps' was asked for, but this torch build sees no Apple GPU")
        return "mps"
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise DeviceError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "torch sees no CUDA GPU"
        raise DeviceError(f"device {name!r} was asked for, but {why} here; use --device cpu (or auto)")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} was asked for, but there are {torch.cuda.device_count()} CUDA devices")
    return name


def amp_dtype(amp: str, device: str):
    """The autocast ``torch.dtype`` of ``train.amp`` (none, bf16, fp16) on ``device``, or None;
    fp16 needs a GPU."""
    if amp not in AMP_MODES:
        raise DeviceError(f"train.amp {amp!r} is not one of {list(AMP_MODES)}")
    if amp == "fp16" and device == "cpu":
        raise DeviceError("train.amp fp16 needs a GPU (float16 has no fast CPU kernels); use bf16 on the CPU")
    import torch

    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _has_mps() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
