"""The whole protocol for one configuration: per seed, splits -> weak -> ceiling -> students ->
evaluation; then the aggregate over seeds.

Run folder layout (`out`):
    config.json                       the PipelineConfig of the last run
    seed<k>/splits.json               question ids per split, the seed, the task
    seed<k>/results.json              test metrics per model, PGR per student, the stage folders used
    results.json, results.png         the aggregate over seeds (mean ± s.e.), and its plot
    cache/<stage>/<key>/...           stage outputs (see stages.py), shared by every run using `out`
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import dist
from .cache import StageDir
from .errors import ConfigError
from .evaluate import evaluate_seed, write_report
from .io import save_json
from .stages import (
    STUDENTS, ModelSpec, Progress, StageContext, run_ceiling, run_named_student, run_weak,
)
from .tasks import TASK_NAMES, Splits, build_splits
from .select import SelectiveConfig
from .selective import analyse
from .train import TrainConfig

# --method -> students trained (weak and ceiling always run)
METHODS: dict[str, tuple[str, ...]] = {
    "w2s": ("naive", "aux_conf"),
    "selective": ("selective",),
    "all": ("naive", "aux_conf", "selective", "pik_only", "smooth_only"),
}


@dataclass
class PipelineConfig:
    """One experiment: a task, a weak and a strong model, how to train, which students, which seeds."""

    task: str = "synthetic"  # a registered task (see tasks.TASK_NAMES)
    weak: str = "tiny-random-bert"  # weak supervisor: built-in name, hub id or local path
    strong: str = "tiny-random-llama"  # strong student
    out: str = "runs/w2s"  # run folder (results, and the stage cache under out/cache)
    data: str | None = None  # local data for the task (save_to_disk folder, .jsonl, .parquet); None: the hub
    data_split: str | None = None  # which split of a local DatasetDict / hub dataset; None: all / the task's default
    weak_gguf: str | None = None  # GGUF file inside the weak model's folder
    strong_gguf: str | None = None  # GGUF file inside the strong model's folder
    seeds: tuple[int, ...] = (0,)  # one full run per seed (splits and training both depend on it)
    n_weak: int | None = None  # weak_train questions; None: a share of what the task has
    n_w2s: int | None = None  # w2s questions (w2s_train + w2s_val)
    n_test: int | None = None  # test questions
    val_frac: float = 0.2  # share of w2s questions held out as w2s_val (weak labels only, early stopping)
    pool_seed: int | None = None  # fix the questions used (drawn with this seed); seeds re-split them. None: per seed
    method: str = "w2s"  # w2s: naive + aux_conf students; selective: the selective student; all: both + ablations
    students: tuple[str, ...] | None = None  # explicit student list (see stages.STUDENTS); None: from `method`
    selective: SelectiveConfig = field(default_factory=SelectiveConfig)  # k, alpha, rule, P(IK) ...
    train: TrainConfig = field(default_factory=TrainConfig)  # how every model is trained
    cache_dir: str | None = None  # stage cache; None: out/cache
    force: bool = False  # recompute stages even if a finished one exists

    def validate(self) -> PipelineConfig:
        if self.task not in TASK_NAMES:
            raise ConfigError(f"unknown task {self.task!r}; known tasks: {', '.join(TASK_NAMES)}")
        if self.data is not None and not Path(self.data).exists():
            from .errors import DataError

            raise DataError(f"data path {self.data!r} does not exist")
        from .models import check_model_name

        check_model_name(self.weak)
        check_model_name(self.strong)
        if not self.seeds:
            raise ConfigError("at least one seed is needed")
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        self.selective.validate()
        for s in self.student_names:
            if s not in STUDENTS:
                raise ConfigError(f"unknown student {s!r}; known: {', '.join(STUDENTS)}")
        if self.train.resolved().mode == "lora":
            try:
                import peft  # noqa: F401
            except ModuleNotFoundError:
                raise ConfigError("--mode lora needs peft: pip install 'selective-w2sg[lora]'") from None
        return self

    @property
    def student_names(self) -> tuple[str, ...]:
        return tuple(self.students) if self.students is not None else METHODS[self.method]

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out) / "cache"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        """The inverse of `to_dict` (a run folder's config.json); unknown keys are refused."""
        from .pik import PikConfig

        def checked(klass: Any, raw: Any, where: str) -> Any:
            if not isinstance(raw, dict):
                raise ConfigError(f"{where} must be an object, got {type(raw).__name__}")
            known = {f for f in klass.__dataclass_fields__}
            extra = sorted(set(raw) - known)
            if extra:
                raise ConfigError(f"{where} has unknown keys {extra}; known: {sorted(known)}")
            return raw

        top = dict(checked(cls, d, "config"))
        sel = dict(checked(SelectiveConfig, top.get("selective", {}), "config.selective"))
        sel["pik"] = PikConfig(**checked(PikConfig, sel.get("pik", {}), "config.selective.pik"))
        top["selective"] = SelectiveConfig(**sel)
        top["train"] = TrainConfig(**checked(TrainConfig, top.get("train", {}), "config.train"))
        top["seeds"] = tuple(top.get("seeds", (0,)))
        if top.get("students") is not None:
            top["students"] = tuple(top["students"])
        return cls(**top)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> PipelineConfig:
        """The config a run folder was last run with (its config.json)."""
        import json

        p = Path(run_dir) / "config.json"
        if not p.is_file():
            from .errors import DataError

            raise DataError(f"{str(run_dir)!r} is not a run folder: {str(p)!r} is missing")
        return cls.from_dict(json.loads(p.read_text()))


def prepare_seed(cfg: PipelineConfig, seed: int, progress: Progress | None = None) -> StageContext:
    """Splits for `seed` (saved as seed<k>/splits.json) and the context stages run in."""
    splits = build_splits(cfg.task, seed=seed, data=cfg.data, data_split=cfg.data_split, n_weak=cfg.n_weak,
                          n_w2s=cfg.n_w2s, n_test=cfg.n_test, val_frac=cfg.val_frac, pool_seed=cfg.pool_seed)
    if dist.is_main():
        splits.save(Path(cfg.out) / f"seed{seed}" / "splits.json")
    return StageContext(splits=splits, cache_root=cfg.cache_root, weak=ModelSpec(cfg.weak, cfg.weak_gguf),
                        strong=ModelSpec(cfg.strong, cfg.strong_gguf), train=cfg.train, seed=seed,
                        progress=progress, force=cfg.force, selective=cfg.selective)


def run_stages(ctx: StageContext, students: Sequence[str], stage_done: Any = None) -> dict[str, StageDir]:
    """weak, the students' prerequisite stages (the selective encode pass first, so the ceiling
    and students reuse its strong features), ceiling, then each student; `stage_done(name,
    StageDir)` after each."""
    stages: dict[str, StageDir] = {}

    def add(name: str, d: StageDir) -> None:
        stages[name] = d
        if stage_done:
            stage_done(name, d)

    add("weak", run_weak(ctx))
    for s in students:
        pre = STUDENTS[s].prerequisites if s in STUDENTS else None
        if pre is not None:
            for name, d in pre(ctx, stages).items():
                add(name, d)
    add("ceiling", run_ceiling(ctx))
    for s in students:
        add(s, run_named_student(ctx, s, stages))
    return stages


def run_seed(cfg: PipelineConfig, seed: int, progress: Progress | None = None, stage_done: Any = None
             ) -> dict[str, Any]:
    ctx = prepare_seed(cfg, seed, progress)
    stages = run_stages(ctx, cfg.student_names, stage_done)
    result = evaluate_seed(ctx.splits, stages)
    analysis = analyse(ctx, stages)
    if analysis:
        result["selective"] = analysis
    if dist.is_main():
        save_json(Path(cfg.out) / f"seed{seed}" / "results.json", result)
    return result


def run_pipeline(cfg: PipelineConfig, progress: Progress | None = None, stage_done: Any = None) -> dict[str, Any]:
    """Every seed, then the aggregate (results.json, results.png). Returns the aggregate summary."""
    cfg.validate()
    dist.init_from_env()
    out = Path(cfg.out)
    if dist.is_main():
        save_json(out / "config.json", cfg.to_dict())
    results = [run_seed(cfg, s, progress, stage_done) for s in cfg.seeds]
    summary: dict[str, Any] = {}
    if dist.is_main():
        summary = write_report(out, results)
    dist.barrier()
    return summary


def load_splits_ids(out: str | os.PathLike[str], seed: int) -> dict[str, Any]:
    import json

    return json.loads((Path(out) / f"seed{seed}" / "splits.json").read_text())


__all__ = ["PipelineConfig", "prepare_seed", "run_stages", "run_seed", "run_pipeline", "Splits"]
