"""Losses over 2-class logits and soft targets P(y = 1).

Every loss returns *per-example* losses (b,), so the training loop can sum them and divide by the
global batch size: the same gradient on one process or on many.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..graph.errors import ConfigError

LOSSES = ("xent", "aux_conf")


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits float (b, 2), target P(y=1) float (b,) in [0, 1] -> per-example loss (b,):
    -(p log q1 + (1 - p) log q0)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    t = target.float()
    return -(t * logp[:, 1] + (1.0 - t) * logp[:, 0])


class XentLoss:
    """Soft-label cross-entropy against the given labels."""

    name = "xent"

    def end_step(self, sizes: list[int] | None = None) -> None:
        pass

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step: int) -> torch.Tensor:
        return soft_cross_entropy(logits, target)


class AuxConfLoss:
    """The auxiliary-confidence loss of Burns et al. (2023):

        target = (1 - a_t) * weak + a_t * 1[q1 > threshold],     loss = CE(logits, target)

    `a_t` ramps linearly from 0 to `aux_weight` over the first `warmup_steps` optimiser steps (no
    jump), and the hardening threshold is the (1 - `prior`) quantile of the model's P(y=1) over a
    running window of the last `window` predictions (not one batch, whose quantile is noise), so
    about a `prior` share of examples are hardened to 1. The window holds the predictions of the
    previous optimiser steps (whole steps: the oldest dropped while the rest still hold `window`
    predictions); the training loop calls `end_step()` after each step to add that step's. So the
    threshold is fixed within a step and does not depend on how a global batch is cut into
    micro-batches or ranks. On the very first step (empty window) the current batch sets it.

    `gather(probs, sizes)` maps this process's detached probabilities to all processes' (DDP;
    `sizes`: each rank's count this step), so every rank's window holds the same predictions as a
    single process would. Predictions and the threshold stay on the model's device: no host
    synchronisation per step.
    """

    name = "aux_conf"

    def __init__(
        self, aux_weight: float = 0.75, warmup_steps: int = 0, window: int = 512, prior: float = 0.5,
        gather: Callable[[torch.Tensor, list[int] | None], torch.Tensor] | None = None,
    ) -> None:
        if not 0.0 <= aux_weight <= 1.0:
            raise ConfigError(f"aux_weight must be in [0, 1], got {aux_weight}")
        if window < 1:
            raise ConfigError(f"aux window must be >= 1, got {window}")
        if not 0.0 < prior < 1.0:
            raise ConfigError(f"prior must be in (0, 1), got {prior}")
        self.aux_weight = aux_weight
        self.warmup_steps = max(int(warmup_steps), 0)
        self.prior = prior
        self.window_size = window
        self.window: deque[torch.Tensor] = deque()
        self._n_window = 0
        self._pending: list[torch.Tensor] = []
        self._threshold: torch.Tensor | None = None
        self._device = torch.device("cpu")  # where predictions live (an idle rank's empty share goes there too)
        self.gather = gather

    def weight(self, step: int) -> float:
        """a_t at optimiser step `step` (0-based)."""
        if self.warmup_steps == 0:
            return self.aux_weight
        return self.aux_weight * min(1.0, step / self.warmup_steps)

    def threshold(self) -> torch.Tensor:
        """The hardening threshold (a 0-d float64 tensor on the window's device)."""
        if self._threshold is None:
            q = torch.cat(list(self.window)).double()
            self._threshold = torch.quantile(q, 1.0 - self.prior)
        return self._threshold

    def end_step(self, sizes: list[int] | None = None) -> None:
        """Move this step's predictions (all ranks'; `sizes`: each rank's count) into the window.
        Collective under DDP."""
        p = torch.cat(self._pending) if self._pending else torch.zeros(0, device=self._device)
        self._pending = []
        if self.gather is not None:
            p = self.gather(p, sizes)
        self.observe(p)

    def observe(self, probs: torch.Tensor) -> None:
        """Add predictions P(y=1) to the window directly."""
        p = probs.detach().float()
        if p.numel() == 0:
            return
        self.window.append(p)
        self._threshold = None
        self._n_window += p.numel()
        while self._n_window - self.window[0].numel() >= self.window_size:
            self._n_window -= self.window.popleft().numel()

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step: int) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=-1)[:, 1].detach()
        self._device = probs.device
        self._pending.append(probs)
        thr = self.threshold() if self.window else torch.quantile(probs.double(), 1.0 - self.prior)
        hard = (probs > thr.float()).float()
        a = self.weight(step)
        return soft_cross_entropy(logits, (1.0 - a) * target.float() + a * hard)


def make_loss(name: str, *, total_steps: int, aux_weight: float = 0.75, aux_warmup_frac: float = 0.2,
              aux_window: int = 512, gather: Callable[[torch.Tensor, list[int] | None], torch.Tensor] | None = None
              ) -> XentLoss | AuxConfLoss:
    if name == "xent":
        return XentLoss()
    if name == "aux_conf":
        return AuxConfLoss(aux_weight, int(round(aux_warmup_frac * total_steps)), aux_window, gather=gather)
    raise ConfigError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
