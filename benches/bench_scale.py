"""Scale check: an approximate kNN graph of 1,000,000 x 384 clustered float32 embeddings,
read memory-mapped from .npy, with wall time and peak memory relative to the input's size.

    python benches/bench_scale.py --n 1000000      # target: <= 3 min, peak <= 2.5x input

Peak memory is this process's max RSS, which counts the memory-mapped input pages it touched.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import selective_w2sg as sw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--centres", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emb.npy"
        # Write the data in chunks so the generator's memory does not count against the graph.
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.n, args.d))
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((args.centres, args.d)).astype(np.float32)
        for s in range(0, args.n, 100_000):
            e = min(args.n, s + 100_000)
            mm[s:e] = centres[rng.integers(0, args.centres, e - s)] + 0.35 * rng.standard_normal((e - s, args.d), dtype=np.float32)
        mm.flush()
        del mm
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        x = np.load(path, mmap_mode="r")
        t = time.perf_counter()
        g = sw.knn_graph(x, args.k, method="approx", seed=0)
        secs = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        size = args.n * args.d * 4
        print(f"n={args.n:,} d={args.d} k={args.k}: {secs:.1f} s, method={g.method}, "
              f"estimated recall@{args.k}={g.estimated_recall}, peak RSS {peak / 2**30:.2f} GiB "
              f"= {peak / size:.2f}x input ({size / 2**30:.2f} GiB; RSS before the call {base / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
