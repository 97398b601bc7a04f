"""Ctrl-C interrupts a long call into the Rust core, with a typed exception, promptly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, time, numpy as np, selective_w2sg as sw
    x = np.random.default_rng(0).standard_normal((60000, 256)).astype(np.float32)
    print("ready", flush=True)
    t = time.perf_counter()
    try:
        sw.knn_graph(x, 10, method="exact")
    except sw.InterruptedComputation as e:
        print(f"interrupted after {time.perf_counter() - t:.2f}s: {type(e).__name__}", flush=True)
        sys.exit(3)
    print("finished", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_knn_graph():
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    waited = time.perf_counter() - sent
    assert p.returncode == 3, out
    assert "InterruptedComputation" in out
    assert waited < 5.0, f"took {waited:.1f}s to stop"  # the whole graph takes far longer


def test_a_swallowed_ctrl_c_stops_the_next_stage(tmp_path):
    """A KeyboardInterrupt raised inside some library's __del__ is dropped by Python; the CLI's
    handler also sets errors.INTERRUPTED, and the next stage stops on it without computing."""
    from selective_w2sg.experiment.cache import run_cached
    from selective_w2sg.graph.errors import INTERRUPTED

    ran = []
    INTERRUPTED.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_cached(tmp_path, "stage", {"a": 1}, {}, lambda w: ran.append(1))
    finally:
        INTERRUPTED.clear()
    assert not ran and not (tmp_path / "stage").exists()
    run_cached(tmp_path, "stage", {"a": 1}, {}, lambda w: ran.append(1))
    assert ran == [1]
