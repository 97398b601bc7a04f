"""Stage outputs on disk, keyed by what produced them.

A stage's folder is `<root>/<stage>/<key>/`, where `key` hashes the stage's full configuration and
the fingerprints of its inputs (data splits, label arrays, models). Inside: `config.json` (written
first), the outputs (atomic writes), and `DONE.json` (written last, listing the outputs). A folder
with `DONE.json` is reused; one without it was interrupted and is wiped and redone.
Under torchrun only rank 0 writes; every rank computes, since training is collective.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import dist
from .errors import DataError
from .io import save_json, save_npy

DONE = "DONE.json"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stage_key(config: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over the canonical JSON of (config, inputs)."""
    return hashlib.sha256(canonical_json([config, inputs]).encode()).hexdigest()[:16]


def array_fingerprint(a: np.ndarray) -> str:
    """Hash of an array's dtype, shape and bytes: the key of labels passed into a stage."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class StageDir:
    """A stage's folder. `reused` says whether it came from an earlier run."""

    path: Path
    reused: bool = False

    @property
    def done(self) -> bool:
        return (self.path / DONE).is_file()

    def npy(self, name: str, mmap: bool = False) -> np.ndarray:
        p = self.path / f"{name}.npy"
        if not p.is_file():
            raise DataError(f"stage output {str(p)!r} is missing")
        return np.load(p, mmap_mode="r" if mmap else None)

    def json(self, name: str) -> Any:
        p = self.path / f"{name}.json"
        if not p.is_file():
            raise DataError(f"stage output {str(p)!r} is missing")
        return json.loads(p.read_text())


class StageWriter:
    """Atomic writes into a stage folder, from rank 0 only; records what was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: list[str] = []

    def npy(self, name: str, array: np.ndarray) -> None:
        if dist.is_main():
            save_npy(self.path / f"{name}.npy", array)
        self.files.append(f"{name}.npy")

    def json(self, name: str, obj: Any) -> None:
        if dist.is_main():
            save_json(self.path / f"{name}.json", obj)
        self.files.append(f"{name}.json")


def _is_complete(path: Path) -> bool:
    done = path / DONE
    if not done.is_file():
        return False
    try:
        files = json.loads(done.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((path / f).is_file() for f in files)


def run_cached(
    root: str | Path, stage: str, config: Mapping[str, Any], inputs: Mapping[str, Any],
    compute: Callable[[StageWriter], Mapping[str, Any] | None], *, force: bool = False,
) -> StageDir:
    """Return the folder of (`stage`, `config`, `inputs`), running `compute(writer)` first unless
    a finished one exists. `compute` writes its outputs through `writer` and may return a summary,
    stored in DONE.json."""
    key = stage_key(config, inputs)
    path = Path(root) / stage / key
    if not force and _is_complete(path):
        return StageDir(path, reused=True)
    if dist.is_main():
        if path.exists():  # interrupted (or forced): start clean, so no stale file survives
            shutil.rmtree(path)
        path.mkdir(parents=True)
        save_json(path / "config.json", {"stage": stage, "key": key, "config": config, "inputs": inputs})
    dist.barrier()
    writer = StageWriter(path)
    t0 = time.time()
    summary = compute(writer)
    if dist.is_main():
        save_json(path / DONE, {"stage": stage, "key": key, "files": writer.files, "seconds": time.time() - t0,
                                "summary": dict(summary or {})})
    dist.barrier()
    return StageDir(path, reused=False)
