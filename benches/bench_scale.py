"""Scale check: approximate kNN graphs of clustered 384-d float32 embeddings (100-centre
Gaussian mixture, rows L2-normalised by the cosine metric), read memory-mapped from .npy,
with wall time, estimated recall@k and peak memory relative to the input's size.

    python benches/bench_scale.py --sizes 100000,300000,1000000   # target at 1M: <= 3 min,
                                                                  # recall >= 0.95, peak <= 2.5x

The data is written by this process; each size's graph is built in a fresh child process
that maps it, so the child's peak RSS (which counts the mapped input pages it touched, and
the interpreter) is the graph's. Recall is `knn_graph`'s estimate: recall@k of
`--recall-sample` seeded query rows against their exact neighbours. The table ends with the
growth exponent of time (slope of log time against log n).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_data(path: Path, n: int, d: int, centres: int) -> None:
    """The mixture, written in chunks (by the parent, so the child's peak is the graph's)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        mm[s:e] = c[rng.integers(0, centres, e - s)] + 0.35 * rng.standard_normal((e - s, d), dtype=np.float32)
    mm.flush()
    del mm


def hwm() -> int:
    """This process's peak RSS in bytes: VmHWM, which (unlike ru_maxrss) starts afresh at exec
    and so does not count the parent's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one(path: Path, k: int, recall_sample: int) -> dict:
    import selective_w2sg as sw

    base = hwm()
    x = np.load(path, mmap_mode="r")
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    g = sw.knn_graph(x, k, method="approx", seed=0, recall_sample=recall_sample)
    secs = time.perf_counter() - t
    peak = hwm()
    return {"n": x.shape[0], "secs": secs, "recall": g.estimated_recall, "peak": peak, "base": base,
            "size": x.size * 4, "load": [load0, os.getloadavg()[0]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000", help="comma-separated n, e.g. 100000,300000,1000000")
    ap.add_argument("--n", type=int, help="a single size (same as --sizes N)")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--centres", type=int, default=100)
    ap.add_argument("--recall-sample", type=int, default=1000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        sizes = [args.n] if args.n else [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or any(s < 2 for s in sizes):
        ap.error("every size must be an integer >= 2")
    if args.child:
        print(json.dumps(one(Path(args.child), args.k, args.recall_sample)))
        return
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "emb.npy"
            write_data(path, n, args.d, args.centres)
            cmd = [sys.executable, __file__, "--child", str(path), "--k", str(args.k),
                   "--recall-sample", str(args.recall_sample)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        print(f"n={n:,} d={args.d} k={args.k}: {r['secs']:.1f} s, estimated recall@{args.k} {r['recall']:.4f}, "
              f"peak RSS {r['peak'] / 2**30:.2f} GiB = {r['peak'] / r['size']:.2f}x input "
              f"({r['size'] / 2**30:.2f} GiB; RSS before the call {r['base'] / 2**30:.2f} GiB), "
              f"load {r['load'][0]:.2f} -> {r['load'][1]:.2f}", flush=True)
    print(f"\n| n | time | growth exponent | est. recall@{args.k} | peak RSS / input | load (start -> end) |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        slope = "" if i == 0 else f"{math.log(r['secs'] / rows[i - 1]['secs']) / math.log(r['n'] / rows[i - 1]['n']):.2f}"
        print(f"| {r['n']:,} | {r['secs']:.1f} s | {slope} | {r['recall']:.4f} | {r['peak'] / r['size']:.2f}x "
              f"| {r['load'][0]:.2f} -> {r['load'][1]:.2f} |")
    if len(rows) > 1:
        ln = np.log([r["n"] for r in rows])
        lt = np.log([r["secs"] for r in rows])
        print(f"\ngrowth exponent of time over all sizes (least-squares log-log slope): {np.polyfit(ln, lt, 1)[0]:.2f}")


if __name__ == "__main__":
    main()
