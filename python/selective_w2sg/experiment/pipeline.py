"""The whole protocol for one configuration: per seed, splits -> the references (weak, zero_shot,
ceiling) and the students, each after the stages it needs -> evaluation; then the aggregate over seeds.

Run folder layout (`out`):
    config.json                       the RunConfig of the last run
    seed<k>/splits.json               question ids per split, the seed, the task
    seed<k>/results.json              test metrics per model, PGR per student, the stage folders used
    results.json, results.png         the aggregate over seeds (mean ± s.e.), and its plot
    cache/<stage>/<key>/...           stage outputs (see stages/), shared by every run using `out`
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import dist
from .analysis import analyse
from .cache import StageDir
from ..config import RunConfig
from .evaluation import evaluate_seed, test_predictions, write_report
from ..graph.io import save_json, save_npz
from .checks import check_config
from .stages import STAGES, STUDENTS, Progress, Stage, StageContext, StageDone, resolve, students_for
from .tasks import Splits, build_splits


def prepare_seed(cfg: RunConfig, seed: int, progress: Progress | None = None) -> StageContext:
    """Splits for `seed` (saved as seed<k>/splits.json) and the context stages run in."""
    check_config(cfg)
    d = cfg.data
    splits = build_splits(d.task, seed=seed, data=d.data, data_split=d.data_split, n_weak=d.n_weak, n_w2s=d.n_w2s,
                          n_test=d.n_test, val_frac=d.val_frac, pool_seed=d.pool_seed, per_source=d.per_source,
                          shard=d.question_shard)
    if dist.is_main():
        splits.save(Path(cfg.out) / f"seed{seed}" / "splits.json")
    return StageContext(cfg=cfg, splits=splits, seed=seed, progress=progress)


# What every seed runs, in this order: the references every table shows, then the students. The
# resolver runs each target's needs before it (depth first), so the encode pass comes before the
# ceiling and the students (who in probe mode reuse its strong features), each stage once.
REFERENCES = ("weak", "zero_shot", "ceiling")


def run_targets(ctx: StageContext, targets: Sequence[str], on_done: StageDone | None = None,
                done: dict[str, StageDir] | None = None, stages: Mapping[str, Stage] | None = None
                ) -> dict[str, StageDir]:
    """Resolve `targets` (stage or student names) in this context, in the graph `stages` (default:
    the package's, `STAGES`); each stage runs once."""
    return resolve(ctx, targets, STAGES if stages is None else stages, done, on_done)


def run_stages(ctx: StageContext, students: Sequence[str], on_done: StageDone | None = None) -> dict[str, StageDir]:
    """The references (`REFERENCES`), then each student, each after what it needs."""
    return run_targets(ctx, [*REFERENCES, *students], on_done)


def run_seed(cfg: RunConfig, seed: int, progress: Progress | None = None, on_done: StageDone | None = None
             ) -> dict[str, Any]:
    ctx = prepare_seed(cfg, seed, progress)
    stages = run_stages(ctx, students_for(cfg), on_done)
    result = evaluate_seed(ctx.splits, stages)
    result["oracle"] = [n for n in students_for(cfg) if STUDENTS[n].oracle]
    analysis = analyse(ctx, stages)
    if analysis:
        result["selective"] = analysis
    if dist.is_main():
        save_npz(Path(cfg.out) / f"seed{seed}" / "test_predictions.npz", **test_predictions(ctx.splits, stages))
        save_json(Path(cfg.out) / f"seed{seed}" / "results.json", result)
    return result


def run_pipeline(cfg: RunConfig, progress: Progress | None = None, on_done: StageDone | None = None) -> dict[str, Any]:
    """Every seed, then the aggregate (results.json, results.png). Returns the aggregate summary."""
    dist.init_from_env()
    out = Path(cfg.out)
    if dist.is_main():
        save_json(out / "config.json", cfg.to_dict())
    results = [run_seed(cfg, s, progress, on_done) for s in cfg.seeds]
    summary: dict[str, Any] = {}
    if dist.is_main():
        summary = write_report(out, results)
    dist.barrier()
    return summary


__all__ = ["RunConfig", "REFERENCES", "prepare_seed", "run_targets", "run_stages", "run_seed", "run_pipeline", "Splits"]
