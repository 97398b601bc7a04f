"""Training a binary classifier from soft labels, with early stopping on a validation split.

One loop for every mode: the model is a `LinearHead` over cached features (`probe`) or a
`Classifier` over token ids (`full`, `lora`). Under torchrun / accelerate launch each rank takes
its share of every global batch and gradients are summed over ranks, so one process and N
processes take the same optimiser steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from . import dist
from ..config import MODES, TrainConfig
from ..graph.errors import ConfigError
from .losses import make_loss, soft_cross_entropy
from .models import Device, LinearHead, length_sorted_batches, pad_batch, pick_device, transformer_blocks

# --------------------------------------------------------------------------------------------
# Inputs: what a batch of examples looks like to the model.


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`: to CUDA from pinned memory without blocking the host (the copy
    is ordered on the stream before the kernels that read it); on the CPU, itself."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class Inputs(Protocol):
    def __len__(self) -> int: ...

    @property
    def lengths(self) -> np.ndarray | None: ...

    def batch(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]: ...

    def subset(self, idx: np.ndarray) -> Inputs: ...


class FeatureInputs:
    """Cached features float32 (n, d) -> {"x": (b, d)} for a `LinearHead`, and with `anchor`
    float32 (n,) also {"anchor": (b,)}: a fixed logit offset per example."""

    def __init__(self, features: np.ndarray, anchor: np.ndarray | None = None) -> None:
        self.features = np.asarray(features, dtype=np.float32)
        self.anchor = None if anchor is None else np.asarray(anchor, dtype=np.float32)
        if self.anchor is not None and self.anchor.shape != (len(self.features),):
            raise ConfigError(f"anchor has shape {self.anchor.shape}, expected ({len(self.features)},)")
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The whole arrays on `device`, copied once (features are small next to a GPU's memory),
        so a batch is an index on the device instead of a host-to-device copy per step."""
        if device not in self._on:
            x = to_device(torch.from_numpy(self.features), device)
            a = None if self.anchor is None else to_device(torch.from_numpy(self.anchor), device)
            self._on[device] = (x, a)
        return self._on[device]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def lengths(self) -> None:
        return None

    def batch(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        if device.type == "cpu":
            out = {"x": torch.from_numpy(self.features[idx])}
            if self.anchor is not None:
                out["anchor"] = torch.from_numpy(self.anchor[idx])
            return out
        x, a = self._tensors(device)
        i = to_device(torch.from_numpy(np.asarray(idx, dtype=np.int64)), device)
        return {"x": x[i]} if a is None else {"x": x[i], "anchor": a[i]}

    def subset(self, idx: np.ndarray) -> FeatureInputs:
        return FeatureInputs(self.features[idx], None if self.anchor is None else self.anchor[idx])


class TokenInputs:
    """Token id lists -> dynamically padded {"input_ids", "attention_mask"} for a `Classifier`,
    padded with the tokenizer's own pad id on its own side."""

    def __init__(self, ids: list[list[int]], pad_id: int, padding_side: str) -> None:
        self.ids = ids
        self.pad_id = pad_id
        self.padding_side = padding_side
        self._lengths = np.array([len(x) for x in ids])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def batch(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        ids, mask = pad_batch([self.ids[i] for i in idx], self.pad_id, self.padding_side)
        return {"input_ids": to_device(ids, device), "attention_mask": to_device(mask, device)}

    def subset(self, idx: np.ndarray) -> TokenInputs:
        return TokenInputs([self.ids[i] for i in idx], self.pad_id, self.padding_side)


# --------------------------------------------------------------------------------------------
# Batching


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator, lengths: np.ndarray | None) -> list[np.ndarray]:
    """A shuffled epoch in global batches. With `lengths`, examples are sorted by length within
    chunks of 50 batches and the batches shuffled: little padding, still random."""
    perm = rng.permutation(n)
    if lengths is None:
        return [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    chunk = batch_size * 50
    batches = []
    for c in range(0, n, chunk):
        part = perm[c : c + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def predict_batches(n: int, batch_size: int, lengths: np.ndarray | None, max_tokens: int | None = None
                    ) -> list[np.ndarray]:
    """Prediction batches: longest first, at most `batch_size` examples and `max_tokens` padded tokens."""
    if lengths is None:
        return [np.arange(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
    return length_sorted_batches(lengths, batch_size, max_tokens=max_tokens)


# --------------------------------------------------------------------------------------------
# Prediction and training


def predict_proba(model: nn.Module, inputs: Inputs, *, batch_size: int = 64, device: Device | None = None,
                  max_tokens: int | None = None) -> np.ndarray:
    """P(y = 1) for every example, float32 (n,). Batches are shared out over ranks and gathered."""
    # A sharded model all-gathers its layers in every forward: no_grad, not inference_mode (the
    # gathered weights must stay usable by the training that may follow).
    with torch.no_grad() if dist.is_sharded(model) else torch.inference_mode():
        return _predict_proba(model, inputs, batch_size, device or pick_device(), max_tokens)


def _predict_proba(model: nn.Module, inputs: Inputs, batch_size: int, device: Device, max_tokens: int | None
                   ) -> np.ndarray:
    was_training = model.training
    model.eval()
    n = len(inputs)
    batches = predict_batches(n, batch_size, inputs.lengths, max_tokens)
    mine = batches[dist.rank() :: dist.world_size()]
    idx = np.concatenate(mine) if mine else np.zeros(0, dtype=np.int64)
    # Sharded: every forward is a collective, so every rank runs as many (where it has one fewer,
    # the shortest batch again, thrown away).
    sharded = dist.is_sharded(model)
    spare = math.ceil(len(batches) / dist.world_size()) - len(mine) if sharded else 0
    parts = []
    for j, b in enumerate(mine + [batches[-1]] * spare):
        with device.autocast(enabled=not isinstance(model, LinearHead)):
            logits = model(**inputs.batch(b, device.device))
        if j < len(mine):
            parts.append(torch.softmax(logits.float(), -1)[:, 1])  # stays on the device: one copy at the end
    out = torch.cat(parts).cpu().numpy() if parts else np.zeros(0, dtype=np.float32)
    if sharded:
        dist.reshard(model)
    model.train(was_training)
    return dist.gather_rows(out.astype(np.float32, copy=False), idx, n)


@dataclass
class TrainResult:
    model: nn.Module
    best_eval: int  # index of the evaluation whose weights were kept (-1: no validation)
    steps: int  # optimiser steps taken
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    train_s: float = 0.0
    state_bytes: int = 0  # this rank's parameters and optimiser state (of a sharded model: its shards)


def val_score(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy against hard labels, soft cross-entropy): higher accuracy wins, then lower loss."""
    acc = float(np.mean((probs > 0.5) == (labels > 0.5)))
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    return acc, loss


@contextlib.contextmanager
def _cpu_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op CPU threads: a linear head's tiny matmuls are slower with more
    threads (spin-waiting, worse on a shared machine)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_classifier(
    model: nn.Module, train: Inputs, train_labels: np.ndarray, val: Inputs | None, val_labels: np.ndarray | None,
    cfg: TrainConfig, *, loss: str = "xent", seed: int = 0, device: Device | None = None,
    progress: Callable[[int, int], None] | None = None, select_start: bool = False,
) -> TrainResult:
    """Train `model` (returning logits (b, 2)) on soft labels P(y=1) float (n,), keeping the
    weights with the best score on (`val`, `val_labels`); `select_start`: the untrained weights
    are scored first and are a candidate too (an anchored head that starts at a good answer).
    Without `val`, every epoch runs and the last weights are kept. `progress(step, total_steps)`."""
    cfg = cfg.resolved()
    device = device or pick_device(cfg.device, cfg.precision)
    one_thread = 1 if (cfg.mode == "probe" and device.device.type == "cpu") else None
    with _cpu_threads(one_thread):
        return _train(model, train, train_labels, val, val_labels, cfg, loss, seed, device, progress, select_start)


def _data_parallel(model: nn.Module, device: Device, shard: str = "none") -> nn.Module:
    """Under torchrun / accelerate launch: the model in torch's DistributedDataParallel (weights
    broadcast from rank 0, bucketed gradient all-reduce overlapping the backward pass), or with
    `shard` full / full-lowmem the model itself, sharded in place by FSDP2; else the model itself."""
    if shard != "none":
        if not dist.is_distributed():
            raise ConfigError(f"--shard {shard} needs a distributed run (torchrun --nproc_per_node N): one process "
                              "has no ranks to shard over; use --shard none")
        # Every rank starts from the same weights (a seeded build); DDP would broadcast rank 0's.
        return dist.fully_shard_model(model, transformer_blocks(model), device.device, device.bf16)
    if not dist.is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.device.index if device.device.index is not None else 0] if device.device.type == "cuda" else None
    # Buffers (a head's feature mean and std) are equal on every rank: synced at start, not per step.
    import inspect

    quiet = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    kw = {"forward_sync_buffers": False} if quiet else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **kw)


def _train(
    model: nn.Module, train: Inputs, train_labels: np.ndarray, val: Inputs | None, val_labels: np.ndarray | None,
    cfg: TrainConfig, loss: str, seed: int, device: Device, progress: Callable[[int, int], None] | None,
    select_start: bool = False,
) -> TrainResult:
    t0 = time.perf_counter()
    y = torch.from_numpy(np.array(train_labels, dtype=np.float32))  # a copy: labels may be a read-only memmap
    if y.ndim != 1 or len(y) != len(train):
        raise ConfigError(f"train labels have shape {tuple(y.shape)}, expected ({len(train)},)")
    if torch.isnan(y).any() or (y < 0).any() or (y > 1).any():
        raise ConfigError("train labels must be probabilities in [0, 1]")
    torch.manual_seed(seed)
    if cfg.shard == "none":  # sharded: fully_shard moves each layer as it shards it (never the whole model at once)
        model.to(device.device)
    engine = _data_parallel(model, device, cfg.shard)  # what runs forward/backward: the model, or its DDP wrapper
    sharded = dist.is_sharded(model)
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = device.device.type == "cuda"
    # Sharded weights are DTensors: AdamW's default (foreach) implementation handles them.
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=(cuda and not sharded) or None)
    y_dev = y.to(device.device)
    n = len(train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    # A step budget (`max_steps`) is the same number of updates whatever the training set's size;
    # epochs are passes over the data, so their step count grows with it.
    total = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * cfg.epochs  # type: ignore[operator]
    n_epochs = math.ceil(total / steps_per_epoch)
    warm = max(1, int(cfg.warmup_frac * total))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    loss_fn = make_loss(loss, total_steps=total, aux_weight=cfg.aux_weight, aux_warmup_frac=cfg.aux_warmup_frac,
                        aux_window=cfg.aux_window, gather=dist.gather_cat)
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    best: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_eval, bad, stopped = -1, 0, False
    history: list[dict[str, float]] = []
    world, rk = dist.world_size(), dist.rank()
    mbs: int = cfg.micro_batch_size  # type: ignore[assignment]
    step = 0
    if select_start and val is not None:
        probs = predict_proba(model, val, batch_size=cfg.eval_batch_size, device=device,
                              max_tokens=cfg.max_batch_tokens)
        acc, vloss = val_score(probs, np.asarray(val_labels, dtype=np.float32))
        history.append({"step": 0, "epoch": -1, "val_acc": acc, "val_loss": vloss})
        best, best_eval = (acc, vloss), 0
        best_state = _state_copy(model)
    model.train()
    for epoch in range(n_epochs):
        rng = np.random.default_rng([seed, epoch])
        for gbatch in epoch_batches(n, cfg.batch_size, rng, train.lengths):
            if step >= total:
                break
            local = gbatch[rk::world]
            micro = [local[m * mbs : (m + 1) * mbs] for m in range(math.ceil(len(local) / mbs))]
            # A rank with no examples this step runs one zero-loss micro-batch to join the collectives;
            # under full-lowmem every micro-batch communicates, so every rank runs as many as rank 0.
            n_micro = max(len(micro), 1)
            if cfg.shard == "full-lowmem":
                n_micro = max(math.ceil(len(gbatch[0::world]) / mbs), 1)
            for j, mi in enumerate(micro + [gbatch[:1]] * (n_micro - len(micro))):
                # DDP averages gradients over ranks; each rank's loss is its examples' sum over the
                # *global* batch size, times the world size: the average is the global batch's mean,
                # one process's gradient whatever the split. Gradients synchronise once per step, in
                # the backward pass of the last micro-batch (bucketed, overlapping the backward).
                last = j == n_micro - 1
                if sharded:
                    dist.accumulate_unsharded(model, not last and cfg.shard == "full")
                sync = contextlib.nullcontext() if (last or engine is model) else engine.no_sync()
                with sync:
                    with device.autocast(enabled=not isinstance(model, LinearHead)):
                        logits = engine(**train.batch(mi, device.device))
                    if j < len(micro):
                        idx = to_device(torch.from_numpy(np.asarray(mi, dtype=np.int64)), device.device)
                        per_ex = loss_fn(logits, y_dev[idx], step)
                        (per_ex.sum() * (world / len(gbatch))).backward()
                    else:  # no examples left on this rank this step: join the gradient sync with a zero
                        (logits.sum() * 0.0).backward()
            loss_fn.end_step([len(gbatch[r::world]) for r in range(world)])  # collective under DDP
            if cfg.max_grad_norm > 0:  # of sharded gradients (DTensors) too: the norm is the whole model's
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if progress is not None:
                progress(step, total)
            if val is not None and (step % eval_every == 0 or step == total):
                probs = predict_proba(model, val, batch_size=cfg.eval_batch_size, device=device,
                                      max_tokens=cfg.max_batch_tokens)
                acc, vloss = val_score(probs, np.asarray(val_labels, dtype=np.float32))
                history.append({"step": step, "epoch": epoch, "val_acc": acc, "val_loss": vloss})
                if best is None or acc > best[0] or (acc == best[0] and vloss < best[1]):
                    best, best_eval, bad = (acc, vloss), len(history) - 1, 0
                    best_state = _state_copy(model)
                else:
                    bad += 1
                    if bad >= cfg.patience:  # type: ignore[operator]
                        stopped = True
                        break
        if stopped:
            break
    if best_state is not None:
        _load_state(model, best_state)
    model.eval()
    held = [*model.parameters(), *(t for st in opt.state.values() for t in st.values() if torch.is_tensor(t))]
    return TrainResult(model, best_eval, step, stopped, history, time.perf_counter() - t0, dist.local_bytes(held))


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights and buffers, copied to the host: of a sharded model, this rank's shards."""
    return {k: _local(v).detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """The inverse of `_state_copy`; a sharded model's shards are written in place."""
    if not dist.is_sharded(model):
        model.load_state_dict(state)
        return
    with torch.no_grad():
        for k, v in model.state_dict().items():
            _local(v).copy_(state[k])


def _local(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


__all__ = [
    "MODES", "TrainConfig", "Inputs", "FeatureInputs", "TokenInputs", "epoch_batches", "predict_proba",
    "train_classifier", "TrainResult", "val_score", "soft_cross_entropy",
]
