"""Atomic, non-clobbering file output. Every file the package writes goes through here."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputExistsError, OutputPathError


def check_writable(path: str | os.PathLike[str], force: bool) -> Path:
    """Check, before any work is done, that `path` can be written: not an existing folder, not
    an existing file unless `force`, and its nearest existing parent folder writable. Creates
    nothing (the write creates missing folders, and removes them again if it fails)."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"output {str(p)!r} is a folder; give a file name")
    if p.exists() and not force:
        raise OutputExistsError(f"output {str(p)!r} exists; pass --force to overwrite it")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot create {str(p)!r}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {str(p)!r}: folder {str(parent)!r} is not writable")
    try:  # the real test (root passes os.access even where it cannot write)
        fd, probe = tempfile.mkstemp(prefix=".sw2s-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputPathError(f"cannot write {str(p)!r}: folder {str(parent)!r} is not writable ({e.strerror})") from None
    return p


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


_UMASK_LOCK = threading.Lock()


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and missing parents; return the ones created, deepest first."""
    missing = []
    f = folder
    while not f.exists() and f != f.parent:
        missing.append(f)
        f = f.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as e:
        raise OutputPathError(f"cannot create folder {str(folder)!r}: {e.strerror}") from None
    except FileExistsError:
        raise OutputPathError(f"cannot create folder {str(folder)!r}: a file is in the way") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:  # deepest first
        try:
            f.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success rename it over `path`
    (atomic on POSIX) with the permissions a new file gets under the umask, on failure remove
    it and the folders this call created. A crash never leaves a half-written `path`."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"output {str(p)!r} is a folder; give a file name")
    created = _make_parents(p.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + "".join(p.suffixes), dir=p.parent)
    except PermissionError as e:
        _remove_empty(created)
        raise OutputPathError(f"cannot write {str(p)!r}: {e.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _remove_empty(created)
        raise


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def save_json(path: str | os.PathLike[str], obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")
