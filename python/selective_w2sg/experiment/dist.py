"""torch.distributed, when a launcher (torchrun, accelerate launch) has initialised it; every
helper is a no-op in a single process. Rank 0 writes files; the others wait at a barrier."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist


def init_from_env() -> bool:
    """Join the process group a launcher set up (torchrun / accelerate launch export WORLD_SIZE,
    RANK, MASTER_ADDR ...): NCCL when CUDA is there, else gloo. No-op in a single process or when
    already initialised. Returns whether this run is distributed."""
    import os

    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not tdist.is_available():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group(backend)
    return True


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def gather_cat(t: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate every rank's 1-d tensor (any lengths, also 0) in rank order, on every rank.
    With `sizes` (every rank's length, known alike on all ranks) the tensors stay on their device
    (padded all_gather, NCCL on GPUs); without, they travel as pickled host copies."""
    if not is_distributed():
        return t
    if sizes is not None:
        if len(sizes) != world_size() or sizes[rank()] != t.numel():
            raise ValueError(f"gather_cat: sizes {sizes} do not match rank {rank()}'s {t.numel()} values")
        width = max(max(sizes), 1)
        buf = torch.zeros(width, dtype=t.dtype, device=t.device)
        buf[: t.numel()] = t.reshape(-1)
        out = [torch.empty_like(buf) for _ in sizes]
        tdist.all_gather(out, buf)
        return torch.cat([o[:k] for o, k in zip(out, sizes)])
    parts: list[Any] = [None] * world_size()
    tdist.all_gather_object(parts, t.detach().cpu())
    return torch.cat(parts).to(t.device)


def gather_rows(local: np.ndarray, local_idx: np.ndarray, n: int) -> np.ndarray:
    """Every rank computed rows `local_idx` of an (n, ...) array; return the full array on all ranks."""
    if not is_distributed():
        out = np.empty((n, *local.shape[1:]), dtype=local.dtype)
        out[local_idx] = local
        return out
    parts: list[Any] = [None] * world_size()
    tdist.all_gather_object(parts, (local_idx, local))
    out = np.empty((n, *local.shape[1:]), dtype=local.dtype)
    for idx, rows in parts:
        out[idx] = rows
    return out


def is_sharded(model: Any) -> bool:
    """Whether `model` was wrapped by FSDP2 `fully_shard` (its weights are DTensor shards)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2
        return False
    return isinstance(model, FSDPModule)


def fully_shard_model(model: torch.nn.Module, blocks: list[torch.nn.Module], device: torch.device,
                      bf16: bool) -> torch.nn.Module:
    """Shard `model`'s parameters (and so its gradients and optimiser state) over the ranks with
    FSDP2: each of `blocks` (the transformer layers) is its own unit, all-gathered just before
    it runs and freed after, then the rest (embeddings, head) at the root. In place; returns the
    model. The model may still be on the host: each unit moves to `device` as it is sharded, so
    the whole model is never there at once. On CUDA with `bf16`: bf16 compute copies of the
    weights, fp32 shards (the optimiser's master weights) and an fp32 gradient reduction;
    elsewhere fp32 throughout."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (world_size(),))
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
          if bf16 and device.type == "cuda" else MixedPrecisionPolicy())
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def accumulate_unsharded(model: torch.nn.Module, accumulating: bool) -> None:
    """FSDP2 gradient accumulation without communication: before a micro-batch that is not the
    step's last (`accumulating`), gradients stay unsharded on each rank (no reduce-scatter; they
    add up in fp32) and the layers' weights stay gathered through its forward and backward (no
    all-gather). A step then makes the same collectives whatever its micro-batch count: one
    all-gather per layer in the first forward, and in the last micro-batch (`accumulating`
    False) the usual all-gather in the backward and one reduce-scatter, after which every
    weight is resharded for the optimiser. The same sequence on every rank, also when ranks
    hold different numbers of micro-batches (a collective mismatch would hang). The price:
    while accumulating, a rank holds the whole model's weights and fp32 gradients."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_requires_gradient_sync(not accumulating, recurse=False)
            m.set_reshard_after_backward(not accumulating, recurse=False)
            if m is not model:  # the root keeps FSDP's own choice (it does not reshard after forward)
                m.set_reshard_after_forward(not accumulating, recurse=False)


def reshard(model: torch.nn.Module) -> None:
    """Free every gathered weight of a sharded model (a forward without a backward leaves the
    root's, embeddings included, gathered): evaluation between training steps then costs no
    memory after it, and the model holds only its shards again."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def local_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes this rank holds of `tensors`: a DTensor (a sharded weight, its optimiser state)
    counts its local shard only."""
    from torch.distributed.tensor import DTensor

    total = 0
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total


def shutdown() -> None:
    """Leave the process group cleanly after a run: collect dropped DDP wrappers (their reducers
    hold the group and a background thread), wait for every rank, then destroy the group. A
    process that exits with the group alive can abort in gloo's teardown ("terminate called
    without an active exception"). No-op in a single process."""
    if not is_distributed():
        return
    import gc

    gc.collect()
    tdist.barrier()
    tdist.destroy_process_group()
