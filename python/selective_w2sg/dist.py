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


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's tensor (any lengths, also 0) in rank order, on every rank."""
    if not is_distributed():
        return t
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


def allreduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum gradients over ranks in one flat buffer. Each rank's loss is already divided by the
    *global* batch size, so the sum is the gradient of the global mean: equal to one process's,
    whatever the split of examples across ranks (also uneven)."""
    if not is_distributed():
        return
    ps = [p for p in params if p.requires_grad]
    for p in ps:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in ps])
    tdist.all_reduce(flat)
    off = 0
    for p in ps:
        n = p.numel()
        p.grad.copy_(flat[off : off + n].view_as(p))
        off += n


def broadcast_params(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights."""
    if not is_distributed():
        return
    for t in [*module.parameters(), *module.buffers()]:
        tdist.broadcast(t.data, src=0)
