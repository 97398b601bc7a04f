"""`sw2s knn` and `sw2s smooth`: the graph stage on its own, from .npy files."""

from __future__ import annotations

import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..errors import DataError
from ..graph import METHODS, KnnGraph, knn_graph
from ..io import check_writable, save_npy
from ..smoothing import SmoothResult, smooth_labels
from ._app import app

console = Console(stderr=True)


def load_npy(path: Path, what: str) -> np.ndarray:
    """Memory-map a `.npy` file; a missing or malformed file is a `DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = str(e).split(". ")[0].replace("\n", " ")
        raise DataError(f"{what} file {str(path)!r} is not a readable .npy array ({reason})") from None


@contextmanager
def _status(message: str) -> Iterator[None]:
    start = time.perf_counter()
    with console.status(message):
        yield
    console.print(f"[green]done[/] {message} in {time.perf_counter() - start:.2f} s")


def _graph_rows(table: Table, graph: KnnGraph) -> None:
    table.add_row("points", f"{graph.n:,}")
    table.add_row("k", str(graph.k))
    table.add_row("metric", graph.metric)
    table.add_row("method used", graph.method)
    recall = "1.0 (exact)" if graph.estimated_recall is None else f"{graph.estimated_recall:.4f} (sampled)"
    table.add_row("recall@k", recall)


Embeddings = Annotated[Path, typer.Option("--embeddings", "-e", help="(n, d) float .npy file (memory-mapped).")]
K = Annotated[int, typer.Option("--k", "-k", help="Neighbours per point (1 <= k < n).")]
Metric = Annotated[str, typer.Option(help="cosine | ip | sqeuclidean.")]
Method = Annotated[str, typer.Option(help=f"{' | '.join(METHODS)}: auto is exact for small n, else approximate with a recall check.")]
Seed = Annotated[int, typer.Option(help="Seed of the approximate search.")]
Threads = Annotated[int | None, typer.Option("--threads", help="Threads (default: SW2S_NUM_THREADS or all cores).")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]


@app.command("knn")
def knn_cmd(
    embeddings: Embeddings,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output graph (.npz).")],
    k: K = 10,
    metric: Metric = "cosine",
    method: Method = "auto",
    seed: Seed = 0,
    threads: Threads = None,
    force: Force = False,
) -> None:
    """Build the k-nearest-neighbour graph of an embeddings file and save it as .npz."""
    check_writable(out, force)
    x = load_npy(embeddings, "embeddings")
    with _status(f"kNN graph of {x.shape[0]:,} x {x.shape[1] if x.ndim == 2 else '?'} embeddings"):
        graph = knn_graph(x, k, metric=metric, method=method, seed=seed, num_threads=threads)
    graph.save(out)
    table = Table(title="sw2s knn", show_header=False)
    _graph_rows(table, graph)
    table.add_row("written", str(out))
    Console().print(table)


@app.command("smooth")
def smooth_cmd(
    embeddings: Embeddings,
    labels: Annotated[Path, typer.Option("--labels", "-l", help="Weak labels .npy: (n,) P(positive) or (n, c) soft labels.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output smoothed labels (.npy), same shape as --labels.")],
    graph_path: Annotated[Path | None, typer.Option("--graph", help="Reuse a graph saved by `sw2s knn` (checked against --embeddings).")] = None,
    k: K = 10,
    alpha: Annotated[float, typer.Option(help="Weight of the neighbours, in [0, 1).")] = 0.5,
    max_iter: Annotated[int, typer.Option(help="Maximum iterations.")] = 50,
    tol: Annotated[float, typer.Option(help="Stop when max |F_t - F_t-1| < tol.")] = 1e-6,
    metric: Metric = "cosine",
    method: Method = "auto",
    seed: Seed = 0,
    threads: Threads = None,
    force: Force = False,
) -> None:
    """Smooth weak labels by label spreading over the kNN graph of the embeddings."""
    check_writable(out, force)
    x = load_npy(embeddings, "embeddings")
    y = np.asarray(load_npy(labels, "labels"))
    if x.ndim >= 1 and y.ndim >= 1 and y.shape[0] != x.shape[0]:
        raise DataError(f"labels have {y.shape[0]} rows but embeddings have {x.shape[0]}")
    if graph_path is not None:
        graph = KnnGraph.load(graph_path)
        graph.check_matches(np.asarray(x))
    else:
        with _status(f"kNN graph of {x.shape[0]:,} embeddings"):
            graph = knn_graph(x, k, metric=metric, method=method, seed=seed, num_threads=threads)
    with _status("label spreading"):
        res = smooth_labels(graph, y, alpha=alpha, max_iter=max_iter, tol=tol, num_threads=threads, return_info=True)
    assert isinstance(res, SmoothResult)
    save_npy(out, res.labels)
    table = Table(title="sw2s smooth", show_header=False)
    _graph_rows(table, graph)
    table.add_row("alpha", str(alpha))
    table.add_row("iterations", f"{res.iterations} ({'converged' if res.converged else 'max_iter reached'}, residual {res.residual:.2e})")
    before = y if y.ndim == 1 else y[:, -1]
    after = res.labels if res.labels.ndim == 1 else res.labels[:, -1]
    table.add_row("mean |change|", f"{float(np.mean(np.abs(after - before))):.4f}")
    table.add_row("written", str(out))
    Console().print(table)
