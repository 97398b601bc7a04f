"""`sw2s encode`, `sw2s pik`, `sw2s select`: the selective method's stages one at a time (each
runs what it needs first, from the cache when it can) and cross-task P(IK)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import ConfigError
from ._app import app
from .train import (
    Alpha, Data, DataSplit, Device_, FeatureLayer, Force, KNeighbours, MaxLength, Mode, NTest, NW2s, NWeak, Out,
    PikKind, PoolSeed, Rule, Seeds, SelfLabels, Strong, StrongGguf, Task, Tau, ValFrac, Weak, WeakGguf,
    build_config, out_console, parse_ints, rich_progress,
)


def _print_transfer_table(title: str, rows: list[str], cols: list[str], cell: Callable[[str, str], str]) -> None:
    """A cross-task P(IK) table: one row per train task, one column per eval task."""
    table = Table(title=title)
    table.add_column("train \\ eval")
    for b in cols:
        table.add_column(b, justify="right")
    for a in rows:
        table.add_row(a, *[cell(a, b) for b in cols])
    out_console.print(table)


def _stages(cfg: Any, upto: str) -> None:
    """Run the selective stages up to `upto` (encode | pik | select) for every seed."""
    from ..pipeline import prepare_seed
    from ..selective import run_encode, run_selective_stages
    from ..stages import run_weak

    for seed in cfg.seeds:
        with rich_progress() as (progress, stage_done):
            ctx = prepare_seed(cfg, seed, progress)
            if upto == "encode":
                stages = {"encode": run_encode(ctx)}
            else:
                stages = {"weak": run_weak(ctx)}
                stages.update(run_selective_stages(ctx, stages))
            for name in ("weak", "encode", "pik", "smooth", "select"):
                if name in stages:
                    stage_done(name, stages[name])
                if name == upto:
                    break
        if upto == "pik":
            m = stages["pik"].json("metrics").get("heldout", {})
            out_console.print(f"seed {seed}: P(IK) held out on weak_train: AUROC {m.get('auroc', float('nan')):.3f}, "
                              f"ECE {m.get('ece', float('nan')):.3f} (n={m.get('n', 0)})")
        if upto == "select":
            table = Table(title=f"selection, seed {seed}")
            table.add_column("labels")
            table.add_column("coverage (share of self-labels)", justify="right")
            for key, v in stages["select"].json("selection").items():
                table.add_row(key.removeprefix("coverage_"), f"{100 * v:.1f} %")
            out_console.print(table)


@app.command()
def encode(
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), seeds: Seeds = "0", data: Data = None, data_split: DataSplit = None,
    n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None, val_frac: ValFrac = 0.2,
    pool_seed: PoolSeed = None, feature_layer: FeatureLayer = None, max_length: MaxLength = 256, device: Device_ = "auto",
    weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None, force: Force = False,
) -> None:
    """One frozen pass of the strong model: embeddings, P(IK) features, self-labels."""
    _stages(build_config(mode="probe", epochs=None, batch_size=32, micro_batch_size=None, lr=None, pooling=None,
                         **locals()), "encode")


@app.command()
def pik(
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), seeds: Seeds = "0", data: Data = None, data_split: DataSplit = None,
    n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None, val_frac: ValFrac = 0.2,
    pool_seed: PoolSeed = None, pik: PikKind = "logreg", self_labels: SelfLabels = "presented",
    feature_layer: FeatureLayer = None, max_length: MaxLength = 256,
    mode: Mode = "probe", device: Device_ = "auto", weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None,
    force: Force = False,
    train_task: Annotated[str | None, typer.Option("--train-task", help="Cross-task: comma list of tasks to train P(IK) on.")] = None,
    eval_task: Annotated[str | None, typer.Option("--eval-task", help="Cross-task: comma list of tasks to score P(IK) on (their test split).")] = None,
    task_data: Annotated[list[str] | None, typer.Option("--task-data", help="Cross-task: TASK=PATH local data, repeatable.")] = None,
) -> None:
    """Train the P(IK) probe on weak_train and report it; with --train-task/--eval-task, a
    cross-task table (train on A, score on B's test split)."""
    kw = dict(locals())
    train_task, eval_task, task_data = kw.pop("train_task"), kw.pop("eval_task"), kw.pop("task_data")
    common = dict(epochs=None, batch_size=32, micro_batch_size=None, lr=None, pooling=None)
    if train_task is None and eval_task is None:
        _stages(build_config(**common, **kw), "pik")
        return
    if not train_task or not eval_task:
        raise ConfigError("cross-task P(IK) needs both --train-task and --eval-task")
    from ..pipeline import prepare_seed
    from ..selective import pik_transfer

    trains = [t.strip() for t in train_task.split(",") if t.strip()]
    evals = [t.strip() for t in eval_task.split(",") if t.strip()]
    paths: dict[str, str] = {}
    for item in task_data or []:
        if "=" not in item:
            raise ConfigError(f"--task-data {item!r} is not TASK=PATH")
        t, p = item.split("=", 1)
        paths[t] = p
    for seed in build_config(**common, **kw).seeds:
        contexts = {}
        with rich_progress() as (progress, _):
            for t in dict.fromkeys([*trains, *evals]):
                cfg = build_config(**common, **{**kw, "task": t, "data": paths.get(t, kw["data"] if t == task else None)})
                contexts[t] = prepare_seed(cfg, seed, progress)
            table_data = pik_transfer(contexts, trains, evals)
        _print_transfer_table(f"P(IK) AUROC, train task (rows) -> test split of eval task (columns), seed {seed}",
                              trains, evals, lambda a, b: f"{table_data[a][b]['auroc']:.3f}")
        from ..io import save_json

        save_json(Path(kw["out"]) / f"pik_transfer_seed{seed}.json", table_data)


@app.command("select")
def select_cmd(
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), mode: Mode = "probe", seeds: Seeds = "0", data: Data = None,
    data_split: DataSplit = None, n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None,
    val_frac: ValFrac = 0.2, pool_seed: PoolSeed = None, k: KNeighbours = 10, alpha: Alpha = 0.5,
    rule: Rule = "compare", tau: Tau = 0.5, pik: PikKind = "logreg", self_labels: SelfLabels = "presented",
    feature_layer: FeatureLayer = None, max_length: MaxLength = 256,
    device: Device_ = "auto", weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None, force: Force = False,
) -> None:
    """weak -> encode -> P(IK) -> smooth -> select: the labels of the selective students, with coverage."""
    _stages(build_config(epochs=None, batch_size=32, micro_batch_size=None, lr=None, pooling=None, **locals()),
            "select")


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
    from ..evaluate import mean_se
    from ..io import check_writable, save_json
    from ..pipeline import PipelineConfig, prepare_seed
    from ..selective import pik_transfer

    if len(runs) < 2:
        raise ConfigError(f"pik-transfer needs at least two run folders, got {len(runs)}")
    check_writable(out, force)
    cfgs = {}
    for r in runs:  # each run is named by its folder (e.g. runs/sciq -> "sciq")
        if r.name in cfgs:
            raise ConfigError(f"two run folders are named {r.name!r}; give folders with distinct names")
        cfgs[r.name] = PipelineConfig.load(r)
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
    mean = {a: {b: dict(zip(("auroc", "se"), mean_se([per_seed[s][a][b]["auroc"] for s in use]))) for b in tasks}
            for a in tasks}
    save_json(out, {"runs": [str(r) for r in runs], "seeds": use, "tasks": tasks, "mean": mean,
                    "per_seed": {str(s): v for s, v in per_seed.items()}})
    _print_transfer_table(f"P(IK) test AUROC %, trained on the row's weak_train, scored on the column's test split "
                          f"(mean ± s.e. over seeds {', '.join(map(str, use))})", tasks, tasks,
                          lambda a, b: f"{100 * mean[a][b]['auroc']:.1f} ± {100 * mean[a][b]['se']:.1f}")
    typer.echo(f"saved {out}")
