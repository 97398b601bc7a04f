"""Atomic outputs: permissions under the umask, no leftovers on failure, writability first."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from selective_w2sg.graph.errors import OutputExistsError, OutputPathError
from selective_w2sg.graph.io import atomic_path, check_writable, save_json, save_npy


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

    from selective_w2sg.graph.errors import DataError
    from selective_w2sg.experiment.tasks import offline_reason, load_questions

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline_reason() == "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert "cannot reach 127.0.0.1:9" in offline_reason()
    pytest.importorskip("datasets")
    t0 = time.perf_counter()
    try:
        load_questions("sciq")
    except DataError as e:
        assert "offline" in str(e) and "--data" in str(e)
    # (a cached copy loads, offline)
    assert time.perf_counter() - t0 < 15


# ---- issue 19: concurrent writers, disk full, strict JSON ----


def _claim_worker(path, value, barrier, results):
    barrier.wait()
    try:
        save_npy(path, np.full(1000, value, np.float32), overwrite=False)
        results.put(("won", value))
    except OutputExistsError:
        results.put(("lost", value))


def test_concurrent_claims_of_one_new_output_exactly_one_wins(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for round_ in range(3):
        path = tmp_path / f"out{round_}.npy"
        barrier, results = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_claim_worker, args=(path, v, barrier, results)) for v in (1, 2, 3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        got = sorted(results.get(timeout=10) for _ in procs)
        winners = [v for what, v in got if what == "won"]
        assert len(winners) == 1, got
        assert np.load(path)[0] == winners[0]  # the winner's content, never replaced by a loser
        assert not list(tmp_path.glob(".*.tmp*"))


def test_disk_full_is_one_typed_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    (tmp_path / "a.npy").write_bytes(b"old")

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OutputPathError, match=r"a\.npy.*no space left on device"):
        save_npy(tmp_path / "a.npy", np.ones(3))
    assert (tmp_path / "a.npy").read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp*"))


def test_strict_json_writes_nan_and_inf_as_null(tmp_path):
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    leaves = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=5),
                       st.none(), st.booleans())
    tree = st.recursive(leaves, lambda c: st.one_of(st.lists(c, max_size=4),
                                                    st.dictionaries(st.text(max_size=4), c, max_size=4)),
                        max_leaves=20)

    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    @settings(max_examples=60, deadline=None)
    @given(obj=tree)
    def check(obj):
        p = save_json(tmp_path / "r.json", {"x": obj, "np": np.array([np.nan, 1.0]), "f": np.float64("inf")})
        back = json.loads(p.read_text(), parse_constant=refuse)
        assert back["np"] == [None, 1.0] and back["f"] is None

    check()
