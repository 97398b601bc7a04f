"""The stage commands, one per stage: `sw2s weak | encode | pik | select | ceiling | student`. Each
resolves its target and what it needs for every seed (from the cache when it can) and prints the
stage folder or a summary. Options come from the config fields (`options.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..config import RunConfig
from ..graph.errors import ConfigError
from ._app import app
from .knn_smooth import load_npy
from .options import config_command
from .run import NOT_FOR_STAGES, STAGE_PARTS, out_console, resolve_for_seeds


@config_command(app, parts=STAGE_PARTS, exclude=NOT_FOR_STAGES)
def weak(cfg: RunConfig) -> None:
    """Train the weak supervisor on weak_train; write its P(y=1) on every split. Prints the stage folder."""
    resolve_for_seeds(cfg, ["weak"])


@config_command(app, exclude=NOT_FOR_STAGES)
def encode(cfg: RunConfig) -> None:
    """One frozen pass of the strong model: embeddings, P(IK) features, self-labels. Prints the stage folder."""
    resolve_for_seeds(cfg, ["encode"])


@config_command(app, exclude=NOT_FOR_STAGES)
def pik(cfg: RunConfig) -> None:
    """Train the P(IK) probe on weak_train and report its held-out AUROC. Prints the stage folder."""
    for seed, stages in zip(cfg.seeds, resolve_for_seeds(cfg, ["pik"])):
        m = stages["pik"].json("metrics").get("heldout", {})
        num = {k: float("nan") if m.get(k) is None else m[k] for k in ("auroc", "ece")}  # null: NaN (strict JSON)
        out_console.print(f"seed {seed}: P(IK) held out on weak_train: AUROC {num['auroc']:.3f}, "
                          f"ECE {num['ece']:.3f} (n={m.get('n', 0)})")


@config_command(app, name="select", exclude=NOT_FOR_STAGES)
def select_cmd(cfg: RunConfig) -> None:
    """weak, encode -> P(IK), calibrate -> smooth -> select -> each selection student's decisions (decide-<name>),
    and its coverage (share of questions on self-labels)."""
    from ..experiment.stages import STUDENTS
    from ..experiment.stages.students import decisions

    # the oracle reads w2s ground truth: only in full runs; mixture-only students need a mixture
    shown = {name: st.decision.name for name, st in STUDENTS.items()
             if st.decision is not None and not st.oracle and (cfg.data.is_mixture or not st.mixture_only)}
    for seed, stages in zip(cfg.seeds, resolve_for_seeds(cfg, [*shown.values(), "select"])):
        table = Table(title=f"selection, seed {seed} (rule {cfg.selective.rule})")
        table.add_column("student")
        for split in ("w2s_train", "w2s_val"):
            table.add_column(f"coverage, {split}", justify="right")
        for name, decide in shown.items():
            table.add_row(name, *[f"{100 * decisions(stages[decide], s).coverage:.1f} %" for s in ("w2s_train", "w2s_val")])
        out_console.print(table)


@config_command(app, parts=STAGE_PARTS, exclude=NOT_FOR_STAGES)
def ceiling(cfg: RunConfig) -> None:
    """Train the strong model on w2s_train ground truth (the reference). Prints the stage folder."""
    resolve_for_seeds(cfg, ["ceiling"])


@config_command(app, exclude=NOT_FOR_STAGES)
def student(
    cfg: RunConfig,
    name: Annotated[str, typer.Option("--name", help="Student (see README: students), or any name with --labels.")] = "naive",
    labels: Annotated[Path | None, typer.Option("--labels", help="float .npy P(y=1) per w2s_train example; default: the student's own labels.")] = None,
    val_labels: Annotated[Path | None, typer.Option("--val-labels", help="float .npy P(y=1) per w2s_val example (with --labels).")] = None,
) -> None:
    """Train one strong student on w2s_train (and the stages its labels need). Prints the stage folder."""
    from ..experiment.stages import STAGES, STUDENTS

    if labels is None:
        if name not in STUDENTS:
            raise ConfigError(f"unknown student {name!r}; known: {', '.join(STUDENTS)} (or give --labels)")
        resolve_for_seeds(cfg, [name])
        return
    if val_labels is None:
        raise ConfigError("--labels needs --val-labels (weak-derived labels for w2s_val)")
    import numpy as np

    from ..experiment.stages.students import given_labels_stage

    tr = np.array(load_npy(labels, "labels"), dtype=np.float32)
    va = np.array(load_npy(val_labels, "val labels"), dtype=np.float32)

    def given(ctx: Any, deps: Any) -> tuple[Any, Any]:
        for arr, split, flag in ((tr, "w2s_train", "--labels"), (va, "w2s_val", "--val-labels")):
            n = len(ctx.splits.examples[split])
            if arr.shape != (n,):
                raise ConfigError(f"{flag} has shape {arr.shape}; {split} has {n} examples")
        return tr, va

    loss = STUDENTS[name].loss if name in STUDENTS else "xent"
    resolve_for_seeds(cfg, [name], {**STAGES, name: given_labels_stage(name, given, loss)})
