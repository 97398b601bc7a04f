"""Atomic, non-clobbering file output. Every file the package writes goes through here."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputExistsError, OutputPathError, RunLockedError


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


# errors of writing an output that are the machine's, not a bug: one line naming the file
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted", errno.EFBIG: "file too large",
                 errno.EIO: "input/output error"}


def write_error(path: str | os.PathLike[str], e: OSError) -> OutputPathError | None:
    """The typed error for an OSError met while writing `path` (disk full, read-only ...);
    None for any other error."""
    if e.errno not in _WRITE_ERRNOS:
        return None
    return OutputPathError(f"cannot write {str(path)!r}: {_WRITE_ERRNOS[e.errno]}")


def _claim(tmp: Path, p: Path) -> None:
    """Give the finished `tmp` the name `p` only if `p` does not exist, atomically: of several
    processes writing one new output, exactly one succeeds (a hard link fails on an existing
    name); the others get `OutputExistsError`."""
    try:
        os.link(tmp, p)
    except FileExistsError:
        raise OutputExistsError(f"output {str(p)!r} was written meanwhile (by another process); "
                                "pass --force to overwrite it") from None
    except OSError as e:  # no hard links here (some network or FAT file systems): claim the name
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise OutputExistsError(f"output {str(p)!r} was written meanwhile (by another process); "
                                    "pass --force to overwrite it") from None
        os.replace(tmp, p)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success rename it over `path`
    (atomic on POSIX) with the permissions a new file gets under the umask, on failure remove
    it and the folders this call created. A crash never leaves a half-written `path`.
    `overwrite=False`: `path` is claimed only if it does not exist at that moment (atomically,
    so of concurrent writers exactly one wins), else `OutputExistsError`. A write that fails
    for the machine's reasons (disk full, read-only, quota) is an `OutputPathError` naming
    `path`; the old `path` is kept."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"output {str(p)!r} is a folder; give a file name")
    created = _make_parents(p.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + "".join(p.suffixes), dir=p.parent)
    except OSError as e:
        _remove_empty(created)
        typed = write_error(p, e)
        if typed is None:
            raise
        raise typed from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp_path, p)
        else:
            _claim(tmp_path, p)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _remove_empty(created)
        typed = write_error(p, e) if isinstance(e, OSError) and not isinstance(e, OutputExistsError) else None
        if typed is not None:
            raise typed from None
        raise


def save_npy(path: str | os.PathLike[str], array: np.ndarray, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


def save_npz(path: str | os.PathLike[str], *, overwrite: bool = True, **arrays: np.ndarray) -> Path:
    with atomic_path(path, overwrite) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def save_json(path: str | os.PathLike[str], obj: Any, overwrite: bool = True) -> Path:
    """Strict JSON (RFC 8259): NaN and infinities are written as null."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


def strict_json(obj: Any) -> Any:
    """`obj` with numpy values, paths and tuples made JSON types, and every non-finite float
    (NaN, inf) replaced by None, so that `json.dumps(..., allow_nan=False)` accepts it."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {(k if isinstance(k, (str, int, float, bool)) or k is None else str(k)): strict_json(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return strict_json(_json_default(obj))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


LOCK_NAME = ".sw2s.lock"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold `folder`'s lock (`.sw2s.lock`, an flock, with the holder's pid, host and start
    time written in it) while a run writes the folder. A second holder is refused at once with
    `RunLockedError` naming the first. The kernel releases the lock when its process dies, so a
    lock left by a killed run is stale by construction and is simply taken over. The folder is
    created if missing (a read-only parent is an `OutputPathError`)."""
    import fcntl
    import socket
    import time

    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise OutputPathError(f"run folder {str(root)!r} is a file; give a folder")
    _make_parents(root)
    lock = root / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as e:
        typed = write_error(lock, e)
        if typed is None:
            raise
        raise typed from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except ValueError:
            holder = {}
        os.close(fd)
        since = holder.get("started")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
        raise RunLockedError(
            f"run folder {str(root)!r} is in use by another sw2s process (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, since {when}); wait for it to finish or give another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode(), 0)
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the file stays (unlinking it would let two processes lock two files)
        os.close(fd)  # releases the flock
