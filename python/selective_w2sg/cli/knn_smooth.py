"""`sw2s knn` and `sw2s smooth`: the graph stage on its own, from .npy files."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..graph.errors import DataError, OutputPathError, ParameterError
from ..config import KnnConfig, SpreadConfig
from ..graph.knn import KnnGraph, knn_graph, normalize_metric
from ..graph.io import check_writable, save_npy
from ..graph.smoothing import SmoothResult, smooth_labels
from ._app import app
from .options import config_option

console = Console(stderr=True)


def load_npy(path: Path, what: str) -> np.ndarray:
    """Memory-map a `.npy` file; a missing, empty, truncated or other kind of file (a `.npz`
    archive, text) is a `DataError` naming it and what is wrong."""
    if path.is_dir():
        raise DataError(f"{what} file {str(path)!r} is a folder, not a .npy array")
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"{what} file {str(path)!r} is empty (0 bytes), not a .npy array")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = str(e).split(". ")[0].replace("\n", " ")
        raise DataError(f"{what} file {str(path)!r} is not a readable .npy array ({reason})") from None
    if isinstance(a, np.lib.npyio.NpzFile):
        names = ", ".join(a.files[:5])
        a.close()
        raise DataError(f"{what} file {str(path)!r} is a .npz archive (arrays: {names or 'none'}), "
                        "not a .npy array; save the one array with np.save")
    return a


def check_not_an_input(out: Path, **inputs: Path | None) -> None:
    """Refuse an output that is one of the command's inputs (even with --force: the input
    would be replaced by the result computed from it)."""
    for flag, p in inputs.items():
        if p is None:
            continue
        same = out.exists() and p.exists() and os.path.samefile(out, p)
        if same or out.resolve() == p.resolve():
            raise OutputPathError(f"output {str(out)!r} is the --{flag.replace('_', '-')} input; "
                                  "give another output file")


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
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
# every other option is a field of the graph half's settings (config.KnnConfig, config.SpreadConfig)
K, Metric, Method, Seed, Threads = (config_option(KnnConfig, f) for f in ("k", "metric", "method", "seed", "threads"))
Alpha, MaxIter, Tol = (config_option(SpreadConfig, f) for f in ("alpha", "max_iter", "tol"))
# `sw2s smooth --graph` takes these from the graph: None = not given
KOrGraph, MetricOrGraph, MethodOrGraph, SeedOrGraph = (config_option(KnnConfig, f, unset=True)
                                                       for f in ("k", "metric", "method", "seed"))


@app.command("knn")
def knn_cmd(
    embeddings: Embeddings,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output graph (.npz).")],
    k: K = KnnConfig.k,
    metric: Metric = KnnConfig.metric,
    method: Method = KnnConfig.method,
    seed: Seed = KnnConfig.seed,
    threads: Threads = KnnConfig.threads,
    force: Force = False,
) -> None:
    """Build the k-nearest-neighbour graph of an embeddings file and save it as .npz."""
    check_not_an_input(out, embeddings=embeddings)
    check_writable(out, force)
    x = load_npy(embeddings, "embeddings")
    with _status(f"kNN graph of {x.shape[0]:,} x {x.shape[1] if x.ndim == 2 else '?'} embeddings"):
        graph = knn_graph(x, k, metric=metric, method=method, seed=seed, num_threads=threads)
    graph.save(out, overwrite=force)  # without --force the name is claimed atomically: no race
    table = Table(title="sw2s knn", show_header=False)
    _graph_rows(table, graph)
    table.add_row("written", str(out))
    Console().print(table)


@app.command("smooth")
def smooth_cmd(
    embeddings: Embeddings,
    labels: Annotated[Path, typer.Option("--labels", "-l", help="Weak labels .npy: (n,) P(positive) or (n, c) soft labels.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output smoothed labels (.npy), same shape as --labels.")],
    graph_path: Annotated[Path | None, typer.Option("--graph", help="Reuse a graph saved by `sw2s knn` (checked against --embeddings; -k, --metric, --method and --seed then come from the graph).")] = None,
    k: KOrGraph = None,
    alpha: Alpha = SpreadConfig.alpha,
    max_iter: MaxIter = SpreadConfig.max_iter,
    tol: Tol = SpreadConfig.tol,
    metric: MetricOrGraph = None,
    method: MethodOrGraph = None,
    seed: SeedOrGraph = None,
    threads: Threads = KnnConfig.threads,
    force: Force = False,
) -> None:
    """Smooth weak labels by label spreading over the kNN graph of the embeddings."""
    check_not_an_input(out, embeddings=embeddings, labels=labels, graph=graph_path)
    check_writable(out, force)
    x = load_npy(embeddings, "embeddings")
    y = np.asarray(load_npy(labels, "labels"))
    if x.ndim >= 1 and y.ndim >= 1 and y.shape[0] != x.shape[0]:
        raise DataError(f"labels file {str(labels)!r} has {y.shape[0]} rows but embeddings file "
                        f"{str(embeddings)!r} has {x.shape[0]}")
    if graph_path is not None:
        graph = KnnGraph.load(graph_path)
        _check_graph_flags(graph, graph_path, k=k, metric=metric, method=method, seed=seed)
        graph.check_matches(np.asarray(x))
    else:
        with _status(f"kNN graph of {x.shape[0]:,} embeddings"):
            given = {"k": k, "metric": metric, "method": method, "seed": seed}
            knn = KnnConfig(**{name: v for name, v in given.items() if v is not None})
            graph = knn_graph(x, knn.k, metric=knn.metric, method=knn.method, seed=knn.seed, num_threads=threads)
    with _status("label spreading"):
        res = smooth_labels(graph, y, alpha=alpha, max_iter=max_iter, tol=tol, num_threads=threads, return_info=True)
    assert isinstance(res, SmoothResult)
    save_npy(out, res.labels, overwrite=force)  # without --force the name is claimed atomically: no race
    table = Table(title="sw2s smooth", show_header=False)
    _graph_rows(table, graph)
    table.add_row("alpha", str(alpha))
    table.add_row("iterations", f"{res.iterations} ({'converged' if res.converged else 'max_iter reached'}, residual {res.residual:.2e})")
    before = y if y.ndim == 1 else y[:, -1]
    after = res.labels if res.labels.ndim == 1 else res.labels[:, -1]
    table.add_row("mean |change|", f"{float(np.mean(np.abs(after - before))):.4f}")
    table.add_row("written", str(out))
    Console().print(table)


def _check_graph_flags(graph: KnnGraph, path: Path, *, k: int | None, metric: str | None, method: str | None,
                       seed: int | None) -> None:
    """With --graph, -k and --metric must agree with the graph (they are the graph's), and
    --method / --seed do not apply: refused rather than silently ignored."""
    where = f"--graph {str(path)!r}"
    if k is not None and k != graph.k:
        raise ParameterError(f"-k {k} conflicts with {where}, which has k={graph.k}; drop -k or rebuild the graph")
    if metric is not None and normalize_metric(metric) != graph.metric:
        raise ParameterError(f"--metric {metric} conflicts with {where}, which was built with metric "
                             f"{graph.metric}; drop --metric or rebuild the graph")
    for flag, value in (("--method", method), ("--seed", seed)):
        if value is not None:
            raise ParameterError(f"{flag} does not apply with {where} (the graph is already built); drop {flag}")
