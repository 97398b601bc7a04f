"""Side-by-side benchmark of the graph stage: this package vs faiss-cpu, hnswlib, pynndescent,
scikit-learn and scipy, in ONE run on the same data, printed as ratios.

    pip install -e ".[bench]"
    python benches/bench_graph.py                 # the README table (n=100,000, d=384, k=10)
    python benches/bench_graph.py --n 20000       # quicker
    python benches/bench_graph.py --smooth-n 1000000 --skip-knn   # smoothing only

Each tool gets the same threads (all cores). Recall is recall@k against the exact graph.
Results are also written as JSON to benches/out/graph-<n>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import selective_w2sg as sw


def clustered(n: int, d: int, centres: int, seed: int) -> np.ndarray:
    """Gaussian mixture, rows L2-normalised (cosine == inner product for every tool)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(len(np.intersect1d(a, b, assume_unique=False)) for a, b in zip(found[:, :k], truth))
    return hits / truth.size


def drop_self(idx: np.ndarray, k: int) -> np.ndarray:
    """Peers return the query itself first; remove it (or the last column) to get k others."""
    n = idx.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        row = idx[i][idx[i] != i]
        out[i] = row[:k]
    return out


def bench_knn(x: np.ndarray, k: int, rows: list[dict], skip: set[str]) -> None:
    n, d = x.shape
    threads = os.cpu_count() or 1

    exact, t = timed(lambda: sw.knn_graph(x, k, method="exact"))
    truth = exact.indices
    rows.append(dict(job="exact", tool="sw2s exact", seconds=t, recall=1.0))

    if "faiss" not in skip:
        import faiss

        faiss.omp_set_num_threads(threads)

        def faiss_flat():
            index = faiss.IndexFlatIP(d)
            index.add(x)
            return index.search(x, k + 1)[1]

        idx, t = timed(faiss_flat)
        rows.append(dict(job="exact", tool="faiss IndexFlatIP", seconds=t, recall=recall(drop_self(idx, k), truth)))

        def faiss_hnsw():
            index = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 200
            index.add(x)
            index.hnsw.efSearch = 64
            return index.search(x, k + 1)[1]

        idx, t = timed(faiss_hnsw)
        rows.append(dict(job="approx", tool="faiss HNSWFlat M=16 efC=200 ef=64", seconds=t,
                         recall=recall(drop_self(idx, k), truth)))

    if "sklearn" not in skip and n <= 50_000:
        from sklearn.neighbors import NearestNeighbors

        idx, t = timed(lambda: NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute",
                                                n_jobs=threads).fit(x).kneighbors(x)[1])
        rows.append(dict(job="exact", tool="scikit-learn brute", seconds=t, recall=recall(drop_self(idx, k), truth)))

    approx, t = timed(lambda: sw.knn_graph(x, k, method="approx", seed=0))
    rows.append(dict(job="approx", tool="sw2s approx", seconds=t, recall=recall(approx.indices, truth),
                     estimated_recall=approx.estimated_recall))

    if "hnswlib" not in skip:
        import hnswlib

        def hnsw():
            index = hnswlib.Index(space="ip", dim=d)
            index.init_index(max_elements=n, M=16, ef_construction=200, random_seed=0)
            index.set_num_threads(threads)
            index.add_items(x)
            index.set_ef(64)
            return index.knn_query(x, k=k + 1)[0]

        idx, t = timed(hnsw)
        rows.append(dict(job="approx", tool="hnswlib M=16 efC=200 ef=64", seconds=t,
                         recall=recall(drop_self(idx.astype(np.int64), k), truth)))

    if "pynndescent" not in skip:
        from pynndescent import NNDescent

        # First call includes numba compilation; the second, on the same data, does not.
        _, t_first = timed(lambda: NNDescent(x[:2000], n_neighbors=k + 1, metric="cosine", random_state=0).neighbor_graph)
        (idx, _), t = timed(lambda: NNDescent(x, n_neighbors=30, metric="cosine", random_state=0,
                                               n_jobs=threads).neighbor_graph)
        rows.append(dict(job="approx", tool="pynndescent n_neighbors=30 (no compile)", seconds=t,
                         recall=recall(drop_self(idx, k), truth), compile_seconds=t_first))


def bench_smooth(n: int, k: int, rows: list[dict], iters: int = 20) -> None:
    """Label spreading on a kNN-shaped graph of n nodes (k out-edges each, neighbours near in
    index), once in that local order and once with node ids shuffled (a kNN graph of real data
    arrives in arbitrary order). Per-iteration time = (time of `iters`
    iterations, timed inside the core) / iters; the one-time setup (S, node reordering) is
    reported separately, and so is scipy's (building S)."""
    rng = np.random.default_rng(0)
    offsets = rng.integers(-2000, 2000, size=(n, k))
    idx = np.clip(np.arange(n)[:, None] + offsets, 0, n - 1).astype(np.int64)
    self_loop = idx == np.arange(n)[:, None]
    idx[self_loop] = (idx[self_loop] + 1) % n
    scores = rng.random((n, k), dtype=np.float32)
    y = rng.random(n).astype(np.float32)
    perm = rng.permutation(n)
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    for order, (gi, gs, gy) in {
        "local order": (idx, scores, y),
        "shuffled order": (inv[idx][perm], scores[perm], y[perm]),
    }.items():
        w = sw.weight_matrix((gi, gs), n)
        res = sw.smooth_labels(w, gy, alpha=0.5, max_iter=iters, tol=0.0, return_info=True)
        rows.append(dict(job=f"smooth {n:,} nodes, {order}", tool="sw2s smooth_labels",
                         seconds=res.iterate_seconds / iters, per="iteration", setup_seconds=res.setup_seconds,
                         nnz=int(w.nnz)))

        yy = np.stack([1 - gy, gy], 1)

        def scipy_setup():
            d = np.asarray(w.sum(axis=1)).ravel()
            s_inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-30)), 0).astype(np.float32)
            return sp.csr_matrix(sp.diags(s_inv) @ w @ sp.diags(s_inv), dtype=np.float32)

        s, t_setup = timed(scipy_setup)

        def scipy_iters():
            f = yy.copy()
            for _ in range(iters):
                f = 0.5 * (s @ f) + 0.5 * yy
            return f

        _, t = timed(scipy_iters)
        rows.append(dict(job=f"smooth {n:,} nodes, {order}", tool="scipy CSR float32", seconds=t / iters,
                         per="iteration", setup_seconds=t_setup))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--centres", type=int, default=100)
    ap.add_argument("--smooth-n", type=int, default=1_000_000)
    ap.add_argument("--skip", default="", help="comma list: faiss,hnswlib,pynndescent,sklearn")
    ap.add_argument("--skip-knn", action="store_true")
    ap.add_argument("--skip-smooth", action="store_true")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    rows: list[dict] = []
    if not args.skip_knn:
        x = clustered(args.n, args.d, args.centres, seed=0)
        bench_knn(x, args.k, rows, skip)
    if not args.skip_smooth:
        bench_smooth(args.smooth_n, args.k, rows)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"graph stage: n={args.n:,} d={args.d} k={args.k}, {os.cpu_count()} cores")
    for col in ("job", "tool", "time", "ratio to peer", "recall@k"):
        table.add_column(col)
    ref = {"exact": "faiss IndexFlatIP", "approx": "hnswlib M=16 efC=200 ef=64"}
    # peers are looked up within the same job: each smoothing graph has its own scipy row
    by_job_tool = {(r["job"], r["tool"]): r for r in rows}
    for r in rows:
        base = ref.get(r["job"])
        if r["job"].startswith("smooth"):
            base = "scipy CSR float32"
        ratio = ""
        peer = by_job_tool.get((r["job"], base))
        if r["tool"].startswith("sw2s") and peer is not None:
            ratio = f"{r['seconds'] / peer['seconds']:.2f}x {base}"
            pynn = by_job_tool.get((r["job"], "pynndescent n_neighbors=30 (no compile)"))
            if r["job"] == "approx" and pynn is not None:
                ratio += f"; {r['seconds'] / pynn['seconds']:.2f}x pynndescent"
        unit = f"{r['seconds'] * 1000:.1f} ms/iter" if r.get("per") else f"{r['seconds']:.2f} s"
        if "setup_seconds" in r:
            unit += f" (+{r['setup_seconds']:.2f} s setup)"
        rec = "" if "recall" not in r else f"{r['recall']:.4f}"
        table.add_row(r["job"], r["tool"], unit, ratio, rec)
    Console().print(table)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"graph-{args.n}.json").write_text(json.dumps(dict(args=vars(args), rows=rows), indent=2))


if __name__ == "__main__":
    main()
