"""Atomic outputs: permissions under the umask, no leftovers on failure, writability first."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from selective_w2sg.errors import OutputExistsError, OutputPathError
from selective_w2sg.io import atomic_path, check_writable, save_json, save_npy


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        p = save_npy(tmp_path / "a.npy", np.zeros(3))
        q = save_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    for f in (p, q):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o666 & ~umask


def test_failed_write_removes_created_folders(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.npy"
    with pytest.raises(RuntimeError), atomic_path(target):
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_check_writable_creates_nothing(tmp_path):
    check_writable(tmp_path / "a" / "b" / "out.npy", force=False)
    assert not (tmp_path / "a").exists()


def test_folder_as_output(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        check_writable(tmp_path / "d", force=True)
    assert isinstance(OutputPathError("x"), ValueError)


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "f.npy").write_bytes(b"")
    with pytest.raises(OutputExistsError):
        check_writable(tmp_path / "f.npy", force=False)
    check_writable(tmp_path / "f.npy", force=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_writable(ro / "sub" / "out.npy", force=False)
    finally:
        ro.chmod(0o700)


def test_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_writable(tmp_path / "f" / "out.npy", force=False)


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs /sys")
def test_unwritable_system_folder():
    with pytest.raises(OutputPathError, match="not writable"):
        check_writable("/sys/sw2s-out/graph.npz", force=False)


def test_hub_offline_detected_at_once(monkeypatch):
    """No network: `sw2s train --task sciq` must not retry the hub for ~40 s (tasks.py)."""
    import time

    from selective_w2sg.errors import DataError
    from selective_w2sg.tasks import _offline_reason, load_questions

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _offline_reason() == "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert "cannot reach 127.0.0.1:9" in _offline_reason()
    pytest.importorskip("datasets")
    t0 = time.perf_counter()
    try:
        load_questions("sciq")
    except DataError as e:
        assert "offline" in str(e) and "--data" in str(e)
    # (a cached copy loads, offline)
    assert time.perf_counter() - t0 < 15
