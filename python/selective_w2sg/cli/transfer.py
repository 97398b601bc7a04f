"""`sw2s pik-transfer`: cross-task P(IK) from finished runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..config import RunConfig, parse_ints
from ..graph.errors import ConfigError
from ..graph.io import check_writable, save_json
from ._app import app
from .run import out_console, rich_progress


@app.command("pik-transfer")
def pik_transfer_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `sw2s train --method selective|all`, one per task.")],
    out: Annotated[Path, typer.Option("--out", help="JSON file for the table (per seed and mean ± s.e.).")],
    seeds: Annotated[str | None, typer.Option("--seeds", help="Comma list; default: the seeds every run has.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Cross-task P(IK) from finished runs: a probe trained on run A's weak_train, scored on run B's
    test split, for every pair (the diagonal is in-task). Runs are named by their folders; each
    run's cached encode pass is reused, and every run must share one strong model."""
    from ..experiment.analysis import pik_transfer
    from ..experiment.evaluation import mean_se
    from ..experiment.pipeline import prepare_seed

    if len(runs) < 2:
        raise ConfigError(f"pik-transfer needs at least two run folders, got {len(runs)}")
    check_writable(out, force)
    cfgs = {}
    for r in runs:  # each run is named by its folder (e.g. runs/sciq -> "sciq")
        if r.name in cfgs:
            raise ConfigError(f"two run folders are named {r.name!r}; give folders with distinct names")
        cfgs[r.name] = RunConfig.load(r)
    shared = sorted(set.intersection(*(set(c.seeds) for c in cfgs.values())))
    use = shared if seeds is None else list(parse_ints(seeds, "--seeds"))
    missing = [s for s in use if s not in shared]
    if not use or missing:
        raise ConfigError(f"seeds {missing or use} are not in every run (shared seeds: {shared})")
    tasks = list(cfgs)
    per_seed: dict[int, Any] = {}
    for seed in use:
        with rich_progress() as (progress, _):
            contexts = {t: prepare_seed(c, seed, progress) for t, c in cfgs.items()}
            per_seed[seed] = pik_transfer(contexts, tasks, tasks)
    rows = [a for a in per_seed[use[0]]]  # the tasks, then "others" (a probe pooled over every other task)
    metrics = ("question_auroc", "confidence_question_auroc", "auroc", "confidence_auroc")
    mean = {a: {b: {m: mean_se([per_seed[s][a][b].get(m, float("nan")) for s in use]) for m in metrics}
                for b in per_seed[use[0]][a]} for a in rows}
    save_json(out, {"runs": [str(r) for r in runs], "seeds": use, "tasks": tasks, "mean": mean,
                    "per_seed": {str(s): v for s, v in per_seed.items()}})
    table = Table(title=f"P(IK) question-level test AUROC %, trained on the row's weak_train (others: every other "
                        f"task's), scored on the column's test split; in brackets the column's own zero-shot "
                        f"confidence (mean ± s.e. over seeds {', '.join(map(str, use))})")
    table.add_column("train \\ eval")
    for b in tasks:
        table.add_column(b, justify="right")
    for a in rows:
        cells = []
        for b in tasks:
            m = mean[a].get(b)
            cells.append("-" if m is None else f"{100 * m['question_auroc'][0]:.1f} ± {100 * m['question_auroc'][1]:.1f} "
                                               f"({100 * m['confidence_question_auroc'][0]:.1f})")
        table.add_row(a, *cells)
    out_console.print(table)
    typer.echo(f"saved {out}")
