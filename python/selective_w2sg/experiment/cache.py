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
from ..graph.errors import INTERRUPTED, DataError
from ..graph.io import save_json, save_npy

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

    def has(self, name: str) -> bool:
        """Whether the stage wrote the array `name` (an output only some runs write)."""
        return (self.path / f"{name}.npy").is_file()

    def summary(self) -> dict[str, Any]:
        """The summary its `compute` returned, kept in DONE.json ({} where there was none)."""
        p = self.path / DONE
        if not p.is_file():
            raise DataError(f"stage {str(self.path)!r} is not finished: {DONE} is missing")
        return dict(json.loads(p.read_text()).get("summary") or {})


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
    if INTERRUPTED.is_set():  # a Ctrl-C a library swallowed (errors.INTERRUPTED): stop here
        raise KeyboardInterrupt
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


def text_key(text: str) -> str:
    """The store key of one text: 16 hex digits of its sha256."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TextRowStore:
    """Rows of one float32 width keyed by text, for one producer config (e.g. a model's pooled
    features): `<root>/<name>/<key of config>/`. A text computed once is never computed again,
    whichever split, seed or run asks for it.

    Each batch of new rows is a part: `part-<id>.npy` (n, d) written first, then
    `part-<id>.json` (its text keys) as the commit marker, both atomically. A part without its
    `.json` (a killed run) is ignored and overwritten by the next run that needs those rows.
    Under torchrun the ranks share the computation and rank 0 writes."""

    def __init__(self, root: str | Path, name: str, config: Mapping[str, Any]) -> None:
        self.path = Path(root) / name / stage_key(config, {})
        self.config = dict(config)

    def _index(self) -> dict[str, tuple[Path, int]]:
        index: dict[str, tuple[Path, int]] = {}
        if not self.path.is_dir():
            return index
        # oldest part first, so a newer part (e.g. from --force) wins
        for keys_file in sorted(self.path.glob("part-*.json"), key=lambda f: (f.stat().st_mtime_ns, f.name)):
            npy = keys_file.with_suffix(".npy")
            try:
                keys = json.loads(keys_file.read_text())
            except ValueError:
                continue
            if not npy.is_file():
                continue
            for row, k in enumerate(keys):
                index[k] = (npy, row)
        return index

    def get(self, texts: list[str], compute: Callable[[list[str]], np.ndarray], *, force: bool = False,
            ) -> tuple[np.ndarray, int]:
        """(len(texts), d) float32 rows for `texts`, calling `compute(missing_texts)` once for the
        distinct texts not stored yet (all of them with `force`) and storing those. Returns
        (rows, number of texts computed)."""
        keys = [text_key(t) for t in texts]
        index = {} if force else self._index()
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in index and k not in missing:
                missing[k] = t
        fresh: dict[str, np.ndarray] = {}
        if missing:
            new_rows = np.ascontiguousarray(compute(list(missing.values())), dtype=np.float32)
            if new_rows.ndim != 2 or len(new_rows) != len(missing):
                raise DataError(f"computed rows have shape {new_rows.shape}, expected ({len(missing)}, d)")
            fresh = dict(zip(missing, new_rows))
            self._write(list(missing), new_rows)
            # Under torchrun the computation is collective: no rank may look at the store again
            # (and find a different set missing) before rank 0 has committed this part.
            dist.barrier()
        parts: dict[Path, np.ndarray] = {}

        def stored(k: str) -> np.ndarray:
            npy, row = index[k]
            if npy not in parts:
                parts[npy] = np.load(npy, mmap_mode="r")
            return parts[npy][row]

        rows = [fresh[k] if k in fresh else stored(k) for k in keys]
        out = np.array(rows, dtype=np.float32) if rows else np.empty((0, 0), np.float32)
        return out, len(missing)

    def _write(self, keys: list[str], rows: np.ndarray) -> None:
        if not dist.is_main():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / "config.json").is_file():
            save_json(self.path / "config.json", self.config)
        part = self.path / f"part-{hashlib.sha256(''.join(keys).encode()).hexdigest()[:16]}"
        save_npy(part.with_suffix(".npy"), rows)
        save_json(part.with_suffix(".json"), keys)  # written last: the part is complete

    def count(self) -> int:
        """How many texts are stored."""
        return len(self._index())
