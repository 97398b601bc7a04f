"""Where and in what precision models run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ...config import PRECISIONS
from ...graph.errors import ConfigError


@dataclass(frozen=True)
class Device:
    """Where to run, and whether to autocast to bf16 there."""

    device: torch.device
    bf16: bool

    def autocast(self, enabled: bool = True) -> Any:
        """bf16 autocast where supported; `enabled=False` (a probe head: tiny, and its logits
        decide near-ties) keeps fp32 everywhere."""
        if self.bf16 and enabled:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()


def pick_device(prefer: str = "auto", precision: str = "auto") -> Device:
    """CUDA if available, else CPU. Under DDP each rank takes cuda:LOCAL_RANK. `prefer` = "cpu"
    forces the CPU. `precision`: auto (bf16 autocast on a CUDA device that supports it, fp32 on
    the CPU) | fp32 | bf16 (also on the CPU: faster where it has bf16 instructions, results
    differ from fp32 by bf16 rounding)."""
    if prefer not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {prefer!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if prefer != "cpu" and torch.cuda.is_available():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        supported = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not supported:
            raise ConfigError("precision bf16 requested but this CUDA device does not support bf16")
        return Device(dev, supported and precision != "fp32")
    if prefer == "cuda":
        raise ConfigError("device cuda requested but torch sees no CUDA device")
    return Device(torch.device("cpu"), precision == "bf16")
