"""Label spreading per iteration: sw2s `smooth_labels` against scipy CSR float32, same graphs,
same run.

    python benches/bench_smooth.py --n 1000000      # target: <= 10 ms per iteration

Three kNN-shaped graphs of n nodes with k out-edges each (W = `weight_matrix`, symmetrised):
"local" (neighbours near in index), "shuffled" (the same graph, node ids permuted: a kNN
graph of real data arrives in arbitrary order) and "far 20%" (shuffled, and 20% of the edges
go to uniformly random nodes). Per-iteration time = time of `--iters` iterations (timed inside
the core for sw2s; the loop `F = a S F + (1 - a) Y` for scipy) / iters; the one-time setup
(sw2s: S and its node order; scipy: S) is reported separately. c = 2 label columns.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp

import selective_w2sg as sw


def graphs(n: int, k: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    offsets = rng.integers(-2000, 2000, size=(n, k))
    idx = np.clip(np.arange(n)[:, None] + offsets, 0, n - 1).astype(np.int64)
    scores = rng.random((n, k), dtype=np.float32)
    y = rng.random(n).astype(np.float32)
    far = idx.copy()
    nf = max(1, k // 5)  # 20% of each row's edges
    far[:, k - nf:] = rng.integers(0, n, size=(n, nf))
    perm = rng.permutation(n)
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    out = {}
    for name, g, shuffle in (("local", idx, False), ("shuffled", idx, True), ("far 20%", far, True)):
        g = inv[g][perm] if shuffle else g
        s, yy = (scores[perm], y[perm]) if shuffle else (scores, y)
        self_loop = g == np.arange(n)[:, None]
        g = g.copy()
        g[self_loop] = (g[self_loop] + 1) % n
        out[name] = (g, s, yy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--alpha", type=float, default=0.5)
    args = ap.parse_args()
    if args.n < 2 or not 1 <= args.k < args.n or args.iters < 1 or not 0.0 <= args.alpha < 1.0:
        ap.error("need n >= 2, 1 <= k < n, iters >= 1, 0 <= alpha < 1")
    print(f"n={args.n:,} k={args.k} c=2 iters={args.iters}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print("| graph | nnz(W) | sw2s ms/iter | scipy ms/iter | ratio | sw2s setup s | scipy setup s | max abs diff | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    a = args.alpha
    for name, (gi, gs, gy) in graphs(args.n, args.k).items():
        w = sw.weight_matrix((gi, gs), args.n)
        load = os.getloadavg()[0]
        res = sw.smooth_labels(w, gy, alpha=a, max_iter=args.iters, tol=0.0, return_info=True)
        ms = res.iterate_seconds / res.iterations * 1e3

        yy = np.stack([1 - gy, gy], 1).astype(np.float32)
        t = time.perf_counter()
        d = np.asarray(w.sum(axis=1)).ravel()
        s_inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-30)), 0).astype(np.float32)
        s = sp.csr_matrix(sp.diags(s_inv) @ w @ sp.diags(s_inv), dtype=np.float32)
        t_setup = time.perf_counter() - t
        f = yy.copy()
        t = time.perf_counter()
        for _ in range(args.iters):
            f = a * (s @ f) + (1 - a) * yy
        ms_sp = (time.perf_counter() - t) / args.iters * 1e3
        # smooth_labels returns rows normalised to sum 1 (binary: the positive column)
        diff = float(np.abs(res.labels - f[:, 1] / f.sum(axis=1)).max())
        print(f"| {name} | {w.nnz:,} | {ms:.1f} | {ms_sp:.1f} | {ms / ms_sp:.2f}x | {res.setup_seconds:.2f} | "
              f"{t_setup:.2f} | {diff:.1e} | {load:.2f} -> {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
