"""Batches of texts: length-sorted, padded, tokenised; features extracted in batched passes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import dist
from .devices import Device, pick_device
from .forward import hidden_states, pool
from .loading import Backbone


def length_sorted_batches(lengths: Sequence[int], batch_size: int, *, max_tokens: int | None = None,
                          call_cost: float | None = None) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first, so an OOM shows up at once),
    at most `batch_size` per batch and, with `max_tokens`, at most that many padded tokens.

    `call_cost`: the cost of one forward call in padded tokens. The longest-first order is then
    cut where it minimises (calls x call_cost + padded tokens), by dynamic programming, instead of
    every `batch_size` rows: short texts of very different lengths (a question's answer options)
    would otherwise be mostly padding, while many tiny calls pay the per-call cost (reading every
    weight once) too often."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    if call_cost is not None:
        return [order[i:j] for i, j in _cheapest_cuts([int(lengths[k]) for k in order], batch_size, max_tokens,
                                                       call_cost)]
    batches: list[np.ndarray] = []
    cur: list[int] = []
    for i in order:
        width = max(lengths[cur[0]], 1) if cur else lengths[i]
        if cur and (len(cur) >= batch_size or (max_tokens and (len(cur) + 1) * width > max_tokens)):
            batches.append(np.array(cur))
            cur = []
        cur.append(int(i))
    if cur:
        batches.append(np.array(cur))
    return batches


def _cheapest_cuts(widths: Sequence[int], batch_size: int, max_tokens: int | None, call_cost: float
                   ) -> list[tuple[int, int]]:
    """Cut non-increasing `widths` into runs [i, j) of at most `batch_size` (and `max_tokens`
    padded tokens, unless a run is one row) minimising sum(call_cost + (j - i) * widths[i])."""
    n = len(widths)
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, max(-1, j - 1 - batch_size), -1):
            rows, width = j - i, max(widths[i], 1)
            if rows > 1 and max_tokens and rows * width > max_tokens:
                break
            cost = best[i] + call_cost + rows * width
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs = []
    j = n
    while j > 0:
        runs.append((cut[j], j))
        j = cut[j]
    return runs[::-1]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists to the longest with the tokenizer's `pad_id` on its padding `side`:
    (input_ids int64 (b, t), attention_mask int64 (b, t))."""
    width = max((len(s) for s in seqs), default=0)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        if side == "left":
            ids[i, width - len(s) :] = s
            mask[i, width - len(s) :] = 1
        else:
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def tokenize(backbone: Backbone, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to `max_length`; one fast batched call."""
    return list(backbone.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])


@dataclass
class ExtractStats:
    """Where the time of a feature extraction went."""

    n: int = 0
    wall_s: float = 0.0
    forward_s: float = 0.0

    @property
    def overhead_share(self) -> float:
        return 0.0 if self.wall_s == 0 else 1.0 - self.forward_s / self.wall_s


@torch.inference_mode()
def extract_features(
    backbone: Backbone, texts: Sequence[str], *, pooling: str | None = None, layers: Sequence[int] = (-1,),
    batch_size: int = 64, max_length: int = 256, device: Device | None = None,
    stats: ExtractStats | None = None, progress: Callable[[int], None] | None = None,
    max_tokens: int | None = None,
) -> dict[int, np.ndarray]:
    """Pooled hidden states of `texts` for each of `layers`: {layer: float32 (n, d)}, rows in the
    order of `texts`. One tokenisation, then batched forward passes over length-sorted batches
    (at most `batch_size` texts and `max_tokens` padded tokens each). Under torchrun each rank
    runs every world_size-th batch and the rows are gathered (bit-identical to one process)."""
    pooling = pooling or backbone.default_pooling
    device = device or pick_device()
    t0 = time.perf_counter()
    tok = backbone.tokenizer
    ids = tokenize(backbone, texts, max_length)
    lengths = [len(x) for x in ids]
    model = backbone.model.to(device.device)
    out = {layer: np.empty((len(texts), backbone.hidden_size), dtype=np.float32) for layer in layers}
    fwd = 0.0
    world = dist.world_size()
    mine = length_sorted_batches(lengths, batch_size, max_tokens=max_tokens)[dist.rank() :: world]
    for batch in mine:
        input_ids, mask = pad_batch([ids[i] for i in batch], tok.pad_token_id, tok.padding_side)
        input_ids, mask = input_ids.to(device.device), mask.to(device.device)
        f0 = time.perf_counter()
        with device.autocast():
            hs = hidden_states(model, input_ids, mask)
        if device.device.type == "cuda":
            torch.cuda.synchronize(device.device)
        fwd += time.perf_counter() - f0
        for layer in layers:
            out[layer][batch] = pool(hs[layer], mask, pooling).float().cpu().numpy()
        if progress is not None:
            progress(len(batch) * world)
    if world > 1:
        local = np.concatenate(mine) if mine else np.zeros(0, np.int64)
        out = {layer: dist.gather_rows(a[local], local, len(texts)) for layer, a in out.items()}
    if stats is not None:
        stats.n += len(texts)
        stats.wall_s += time.perf_counter() - t0
        stats.forward_s += fwd
    return out
