"""One configuration, declared once, at the bottom of the package.

A run is a frozen `RunConfig` made of its parts: `DataConfig` (the task and its splits),
`ModelsConfig` (weak and strong model), `TrainConfig` (how every model is trained:
`experiment/training.py`) and `SelectiveConfig` (the selective method: `experiment/selection.py`,
`experiment/pik.py`, whose probe takes `SelectiveConfig.pik_config`). `KnnConfig` and
`SpreadConfig` are the settings of `sw2s knn` / `sw2s smooth`. Each part checks what it alone can
tell, once, in `__post_init__`; the names that registries own (tasks, models, methods, students)
are checked where those live (`experiment.checks.check_config`). This module imports only the
graph half (its errors and the core's alpha rule), so building a config never loads torch.

Every field carries its help text in `field(metadata=opt(...))`; the CLI builds its options from
these fields (`cli/options.py`), so an option is declared exactly here. A setting has one name:
the field's, which is also its flag (`n_weak` -> `--n-weak`, `pik_c` -> `--pik-c`), its keyword in
`RunConfig.create(**flat)` and its key in config.json (older names are read through `RENAMED`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .graph._core import check_alpha
from .graph.errors import ConfigError, DataError, ParameterError


def opt(help: str, *, short: str | None = None, parse: Callable[[str], Any] | None = None,
        cli: bool = True) -> dict[str, Any]:
    """Field metadata for a config field: its help text, an optional short flag, and `parse` for
    a field whose command-line form is text (e.g. seeds "0,1,2" -> (0, 1, 2)). `cli=False`: a
    field with no command-line option. The flag is always the field's name (`n_weak` ->
    `--n-weak`): one name per setting, in code, on the command line and in config.json."""
    return {"help": help, "short": short, "parse": parse, "cli": cli}


def flag_of(f: dataclasses.Field[Any]) -> str:
    return "--" + f.name.replace("_", "-")


def parse_ints(text: str, what: str = "value") -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); a clear ConfigError otherwise."""
    try:
        vals = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{what} is empty")
    return vals


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in str(text).split(",") if s.strip())


def is_mixture(task: str) -> bool:
    """True for a mixture task name ("sciq+boolq")."""
    return "+" in task


def task_sources(task: str) -> list[str]:
    """The sources of a task name: "sciq+boolq" -> ["sciq", "boolq"]; a plain task -> [task].
    Only the form is checked here (distinct, non-empty parts); the names themselves are checked
    against the task registry by `experiment.tasks.check_task`."""
    parts = [p.strip() for p in task.split("+")]
    if len(parts) > 1 and (not all(parts) or len(set(parts)) != len(parts)):
        raise ConfigError(f"mixture {task!r}: its parts must be distinct dataset task names joined by '+'")
    return parts


def parse_shard(shard: str) -> tuple[int, int]:
    """'K/N' -> (K, N), with N >= 2 and 0 <= K < N (`--question-shard`)."""
    try:
        k, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise ConfigError(f"--question-shard must be K/N (e.g. 0/2), got {shard!r}") from None
    if not (n >= 2 and 0 <= k < n):
        raise ConfigError(f"--question-shard {shard!r}: need N >= 2 and 0 <= K < N")
    return k, n


@dataclass(frozen=True)
class DataConfig:
    """The task and how its questions are split (by question, seeded)."""

    task: str = field(default="synthetic", metadata=opt(
        "Task: synthetic, sciq, boolq, arc_easy, openbookqa, hellaswag, social_iqa, ... (see README), or a "
        "mixture of dataset tasks, e.g. sciq+boolq (one pool; results per source).", short="-t"))
    data: str | None = field(default=None, metadata=opt(
        "Local task data: a save_to_disk folder, .jsonl or .parquet (default: the hub); for a mixture, one "
        "path per source, comma-separated in the task's order."))
    data_split: str | None = field(default=None, metadata=opt(
        "Split of a local DatasetDict / hub dataset (default: all / the task's default)."))
    n_weak: int | None = field(default=None, metadata=opt("weak_train questions (default: 30%, at most 1,000)."))
    n_w2s: int | None = field(default=None, metadata=opt(
        "w2s questions, w2s_train + w2s_val (default: 50%, at most 2,000)."))
    n_test: int | None = field(default=None, metadata=opt("test questions (default: 20%, at most 1,000)."))
    val_frac: float = field(default=0.2, metadata=opt(
        "Share of w2s questions held out as w2s_val (weak labels only, early stopping)."))
    pool_seed: int | None = field(default=None, metadata=opt(
        "Draw the questions used once, with this seed; each seed then re-splits that same pool (so seeds share "
        "the strong model's encode pass). Default: each seed draws its own questions."))
    per_source: int | None = field(default=None, metadata=opt(
        "Mixtures: questions drawn from each source before the splits are cut (default: all of them)."))
    question_shard: str | None = field(default=None, metadata=opt(
        "K/N: keep only the questions whose id hashes to part K of N; disjoint pools of one task "
        "(e.g. a pilot on 0/2, final runs on 1/2)."))

    @property
    def is_mixture(self) -> bool:
        """A mixture task (A+B): one pool from several sources."""
        return is_mixture(self.task)

    def __post_init__(self) -> None:
        # the task's name is checked against the registry where it lives (`experiment.tasks`)
        parts = task_sources(self.task)
        if self.per_source is not None and (len(parts) < 2 or self.per_source < 1):
            raise ConfigError(f"--per-source {self.per_source} applies to mixtures (A+B) only, and must be >= 1")
        if self.question_shard is not None:
            if self.task == "synthetic":
                raise ConfigError("--question-shard does not apply to --task synthetic")
            parse_shard(self.question_shard)
        if self.data is not None and len(parts) > 1:
            paths = self.data.split(",")
            if len(paths) != len(parts):
                raise ConfigError(f"mixture {self.task!r} has {len(parts)} sources but --data gives "
                                  f"{len(paths)} comma-separated path(s)")
            for p in paths:
                if not Path(p).exists():
                    raise DataError(f"data path {p!r} does not exist")
        if self.task == "synthetic":  # generated, not loaded: a data flag would be silently ignored
            for flag, v in (("--data", self.data), ("--data-split", self.data_split)):
                if v is not None:
                    raise ConfigError(f"{flag} {v!r} does not apply to --task synthetic (its questions are "
                                      "generated); drop it, or name the task the data belongs to")
        if self.data is not None and len(parts) == 1 and not Path(self.data).exists():
            raise DataError(f"data path {self.data!r} does not exist")
        if not 0.0 < self.val_frac < 1.0:
            raise ConfigError(f"val_frac must be in (0, 1), got {self.val_frac}")
        for name in ("n_weak", "n_w2s", "n_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


@dataclass(frozen=True)
class ModelSpec:
    """A model by name (built-in, hub id or local path), and a GGUF file inside it if any.
    What identifies its weights is `experiment.models.model_fingerprint(spec)`."""

    name: str
    gguf_file: str | None = None


@dataclass(frozen=True)
class ModelsConfig:
    """The weak supervisor and the strong student."""

    weak: str = field(default="tiny-random-bert", metadata=opt(
        "Weak model: tiny-random-bert | tiny-random-llama | hub id | local path."))
    strong: str = field(default="tiny-random-llama", metadata=opt("Strong model (same forms as --weak)."))
    weak_gguf: str | None = field(default=None, metadata=opt("GGUF file inside the weak model folder."))
    strong_gguf: str | None = field(default=None, metadata=opt("GGUF file inside the strong model folder."))

    @property
    def weak_spec(self) -> ModelSpec:
        return ModelSpec(self.weak, self.weak_gguf)

    @property
    def strong_spec(self) -> ModelSpec:
        return ModelSpec(self.strong, self.strong_gguf)


# ---------------------------------------------------------------- the graph half (sw2s knn, sw2s smooth)


@dataclass(frozen=True)
class KnnConfig:
    """The kNN graph of `sw2s knn` and `sw2s smooth` (the library's `knn_graph`; its defaults are
    these, a test checks). The values are checked by the compiled core when the graph is built."""

    k: int = field(default=10, metadata=opt("Neighbours per point (1 <= k < n).", short="-k"))
    metric: str = field(default="cosine", metadata=opt("cosine | ip | sqeuclidean."))
    method: str = field(default="auto", metadata=opt(
        "auto | exact | approx: auto is exact for small n, else approximate with a recall check."))
    seed: int = field(default=0, metadata=opt("Seed of the approximate search."))
    threads: int | None = field(default=None, metadata=opt("Threads (default: SW2S_NUM_THREADS or all cores)."))


@dataclass(frozen=True)
class SpreadConfig:
    """Label spreading of `sw2s smooth` (the library's `smooth_labels`; its defaults are these, a
    test checks). The values are checked by the compiled core."""

    alpha: float = field(default=0.5, metadata=opt("Weight of the neighbours, in [0, 1)."))
    max_iter: int = field(default=50, metadata=opt("Maximum iterations."))
    tol: float = field(default=1e-6, metadata=opt("Stop when max |F_t - F_t-1| < tol."))


# ---------------------------------------------------------------- training (experiment/training.py)

PRECISIONS = ("auto", "fp32", "bf16")
MODES = ("probe", "full", "lora")
SHARDS = ("none", "full", "full-lowmem")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained. `None` fields take a per-mode default in `resolved()`."""

    mode: str = field(default="probe", metadata=opt(
        "probe (frozen backbone + a head on cached features; CPU) | full (all weights) | lora (adapters)."))
    pooling: str | None = field(default=None, metadata=opt(
        "last | mean (default: last real token for causal LMs, mean for encoders)."))
    layer: int = field(default=-1, metadata=opt("Hidden state the head reads (-1: the last layer)."))
    epochs: int | None = field(default=None, metadata=opt(
        "Passes over the training data (default: 40 probe, 2 full/lora as Burns et al.)."))
    max_steps: int | None = field(default=None, metadata=opt(
        "Optimiser steps in all, overriding --epochs (the last epoch is cut short). Anchored probe students take "
        "the budget `tune` chooses instead."))
    batch_size: int = field(default=32, metadata=opt("Examples per optimiser step, over all ranks and accumulation."))
    micro_batch_size: int | None = field(default=None, metadata=opt(
        "Examples per forward pass on one rank: gradient accumulation (default: batch size in probe mode, else 8)."))
    lr: float | None = field(default=None, metadata=opt(
        "Peak learning rate (default: 1e-2 probe, 5e-5 full, 1e-4 lora); anchored probe heads use --anchored-lr."))
    weight_decay: float = field(default=0.01, metadata=opt("AdamW decoupled weight decay."))
    warmup_frac: float = field(default=0.1, metadata=opt(
        "Share of steps with a linearly rising learning rate, then cosine decay to 0."))
    max_grad_norm: float = field(default=1.0, metadata=opt(
        "Gradient clipping (after the sum over ranks, so every rank clips alike); 0: off."))
    max_length: int = field(default=256, metadata=opt("Tokens per example; longer texts are cut from the left."))
    patience: int | None = field(default=None, metadata=opt(
        "Evaluations without a better validation score before stopping (default: 8 probe, 2 full/lora)."))
    evals_per_epoch: int = field(default=1, metadata=opt("Validation passes per epoch (early-stopping granularity)."))
    aux_weight: float = field(default=0.75, metadata=opt(
        "aux_conf: final weight of the model's own hardened predictions (Burns et al.)."))
    aux_warmup_frac: float = field(default=0.2, metadata=opt("aux_conf: share of steps over which that weight ramps up."))
    aux_window: int = field(default=512, metadata=opt(
        "aux_conf: recent predictions whose quantile sets the hardening threshold."))
    head: str = field(default="anchored", metadata=opt(
        "probe: anchored (the strong model's heads start at its zero-shot answer: logit = its zero-shot log-odds "
        "+ a correction, fitted as a penalised logistic regression whose strength `tune` chooses; a plain head "
        "is among its candidates) | plain (fresh SGD-trained linear heads, early-stopped on w2s_val)."))
    anchored_lr: float = field(default=1e-3, metadata=opt(
        "probe, anchored heads trained by SGD (only a library call of fit_stage/run_student without a budget; "
        "the pipeline fits them in closed form): learning rate of the correction."))
    feature_batch_size: int = field(default=64, metadata=opt("probe: examples per feature-extraction forward pass."))
    center_features: bool = field(default=True, metadata=opt(
        "probe: subtract each question's mean feature (uses no labels)."))
    eval_batch_size: int = field(default=64, metadata=opt("Examples per forward pass when predicting."))
    max_batch_tokens: int | None = field(default=None, metadata=opt(
        "Padded tokens per forward pass of the encode, feature and prediction passes, on top of their example "
        "counts (default: no token limit). Bounds activation memory on long texts."))
    gradient_checkpointing: bool = field(default=False, metadata=opt(
        "full/lora: recompute activations in the backward pass (less memory, ~30% more compute)."))
    lora_r: int = field(default=8, metadata=opt("lora: adapter rank."))
    shard: str = field(default="none", metadata=opt(
        "full/lora under torchrun: none (DDP: every rank holds the whole model, its gradients and AdamW "
        "state) | full (FSDP2: all three sharded over the ranks, each layer gathered only while it runs; "
        "accumulation micro-batches keep weights gathered and gradients unsharded until the step's last, "
        "no communication between) | full-lowmem (as full, but every micro-batch reduce-scatters its gradients "
        "and frees the gathered weights: nothing of the whole model's size is held, more communication)."))
    device: str = field(default="auto", metadata=opt("auto (CUDA if available, else CPU) | cpu | cuda."))
    precision: str = field(default="auto", metadata=opt(
        "auto (bf16 autocast on CUDA, fp32 on the CPU) | fp32 | bf16 (also on the CPU: ~3x faster encoder passes "
        "where it has bf16 instructions; probe heads and option scores stay fp32)."))

    def __post_init__(self) -> None:
        self.resolved()  # validates every field once, at construction

    def resolved(self) -> TrainConfig:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.pooling not in (None, "auto", "last", "mean"):
            raise ConfigError(f"pooling must be last or mean, got {self.pooling!r}")
        if self.head not in ("anchored", "plain"):
            raise ConfigError(f"head must be anchored or plain, got {self.head!r}")
        if not self.anchored_lr > 0:
            raise ConfigError(f"anchored_lr must be > 0, got {self.anchored_lr}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.shard not in SHARDS:
            raise ConfigError(f"shard must be one of {', '.join(SHARDS)}, got {self.shard!r}")
        if self.shard != "none" and self.mode == "probe":
            raise ConfigError(f"--shard {self.shard} shards a backbone's weights; --mode probe trains only a small "
                              "head on cached features: use --shard none, or --mode full / lora")
        probe = self.mode == "probe"
        kw = dict(
            epochs=self.epochs if self.epochs is not None else (40 if probe else 2),
            micro_batch_size=self.micro_batch_size or (self.batch_size if probe else min(8, self.batch_size)),
            lr=self.lr if self.lr is not None else (1e-2 if probe else (5e-5 if self.mode == "full" else 1e-4)),
            patience=self.patience if self.patience is not None else (8 if probe else 2),
        )
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ConfigError(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        for name in ("epochs", "batch_size", "micro_batch_size", "max_length", "evals_per_epoch"):
            v = kw.get(name, getattr(self, name))
            if v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if kw["lr"] <= 0:  # type: ignore[operator]
            raise ConfigError(f"lr must be > 0, got {kw['lr']}")
        if all(getattr(self, k) == v for k, v in kw.items()):
            return self
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The fields (part of stage cache keys). `shard` is left out at its default, so the keys
        of runs from before the option existed stay valid."""
        d = asdict(self)
        if d["shard"] == "none":
            del d["shard"]
        return d


# ---------------------------------------------------------------- the selective method (experiment/selection.py, pik.py)

KINDS = ("anchored", "logreg", "mlp")


@dataclass(frozen=True)
class PikConfig:
    """The P(IK) probe's own settings (`experiment.pik.PikProbe`), built from a run's `pik*`
    settings by `SelectiveConfig.pik_config`."""

    kind: str = "anchored"
    C: float | None = None  # None: chosen by 5-fold cross-validated log-loss (folds by question)
    hidden: int = 64
    max_iter: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"P(IK) kind={self.kind!r} is not one of {', '.join(map(repr, KINDS))}")
        if self.C is not None and not self.C > 0:
            raise ParameterError(f"P(IK) C={self.C} must be > 0")


RULES = ("tau", "compare")
GRAPH_EMBEDDINGS = ("last", "features")
# The smoothing settings `calibrate` chooses among when --k / --alpha / --graph-embedding are not given.


@dataclass(frozen=True)
class SelectiveConfig:
    """Settings of the selective method (encode -> P(IK) -> smooth -> select). Any tuning is
    done on weak_train or weak-labelled w2s_val, never on test."""

    k: int | None = field(default=None, metadata=opt(
        "Neighbours in the kNN graph over strong embeddings (default: chosen on weak_train, with --alpha)."))
    alpha: float | None = field(default=None, metadata=opt(
        "Label-spreading weight of the neighbours, [0, 1); 0 = no smoothing (default: chosen on weak_train by the "
        "question-level accuracy of the spread out-of-fold weak labels; 0 unless spreading beats it)."))
    graph_embedding: str | None = field(default=None, metadata=opt(
        "Embedding the graph is built on: last (the last layer, pooled) | features (the P(IK) feature layer) "
        "(default: chosen on weak_train with --k and --alpha)."))
    smoothed_output: str = field(default="rescaled", metadata=opt(
        "soft (labels as spread: flattened towards the mean) | rescaled (spread labels' log-odds scaled so their "
        "mean confidence equals the weak labels'; the same hard labels, no ground truth used)."))
    smooth_iters: int = field(default=SpreadConfig.max_iter, metadata=opt(
        "Label-spreading iterations, as `sw2s smooth --max-iter` (alpha=0.5 converges to 1e-6 in ~20)."))
    graph_method: str = field(default=KnnConfig.method, metadata=opt(
        "kNN search, as `sw2s knn --method`: exact | approx | auto."))
    # A question's two examples share their context and have opposite labels, so uncentred they
    # would be each other's nearest neighbour.
    graph_center: bool = field(default=True, metadata=opt("Build the graph on question-centred embeddings."))
    rule: str = field(default="compare", metadata=opt(
        "compare: self-label where P(IK) > the calibrated probability that the other label is right | tau."))
    tau: float = field(default=0.5, metadata=opt("P(IK) threshold for --rule tau."))
    feature_layer: int | None = field(default=None, metadata=opt("Hidden layer of the P(IK) features (default: middle)."))
    pik_confidence_inputs: bool = field(default=True, metadata=opt(
        "Also feed P(IK) the strong model's own answer confidence."))
    self_labels: str = field(default="presented", metadata=opt(
        "The strong model's own answer among the candidates a question's examples present (presented) or among "
        "all its options (all)."))
    encode_batch_size: int = field(default=32, metadata=opt("Texts per forward pass of the encode stage."))
    encode_share_prefix: bool = field(default=True, metadata=opt(
        "Causal LMs: compute a question's context once and score every option from its key/value cache "
        "(equal to whole-text passes up to float rounding)."))
    pik: str = field(default="anchored", metadata=opt(
        "P(IK) probe: anchored (the strong model's confidence unpenalised + an L2-penalised correction from "
        "hidden states; base rate and confidence alone are candidates) | logreg (standardised logistic "
        "regression on everything) | mlp (one hidden layer)."))
    pik_c: float | None = field(default=None, metadata=opt(
        "P(IK) inverse L2 strength of the hidden-state weights (default: cross-validated on weak_train)."))
    pik_hidden: int = field(default=64, metadata=opt("P(IK) MLP hidden width."))
    pik_max_iter: int = field(default=2000, metadata=opt("P(IK) optimiser iterations."))
    pik_seed: int = field(default=0, metadata=opt("P(IK) initialisation seed."))

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise ParameterError(f"k={self.k} must be at least 1")
        if self.alpha is not None:
            check_alpha(self.alpha)  # the core's rule, checked before any work starts
        if self.graph_embedding not in (None, *GRAPH_EMBEDDINGS):
            raise ParameterError(f"graph_embedding={self.graph_embedding!r} is not one of {', '.join(GRAPH_EMBEDDINGS)}")
        if self.smoothed_output not in ("soft", "rescaled"):
            raise ParameterError(f"smoothed_output={self.smoothed_output!r} is not 'soft' or 'rescaled'")
        if self.rule not in RULES:
            raise ParameterError(f"selection rule={self.rule!r} is not one of {', '.join(map(repr, RULES))}")
        if not 0.0 <= self.tau <= 1.0:
            raise ParameterError(f"tau={self.tau} must be in [0, 1]")
        if self.self_labels not in ("presented", "all"):
            raise ParameterError(f"self_labels={self.self_labels!r} is not 'presented' or 'all'")
        self.pik_config  # the probe's settings checked once, here
        if self.graph_method not in ("exact", "approx", "auto"):
            raise ParameterError(f"graph_method={self.graph_method!r} is not exact, approx or auto")
        if self.smooth_iters < 0 or self.encode_batch_size < 1:
            raise ParameterError("smooth_iters must be >= 0 and encode_batch_size >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def pik_config(self) -> PikConfig:
        """The P(IK) probe's settings: --pik, --pik-c, --pik-hidden, --pik-max-iter, --pik-seed."""
        return PikConfig(kind=self.pik, C=self.pik_c, hidden=self.pik_hidden, max_iter=self.pik_max_iter,
                         seed=self.pik_seed)


def config_parts() -> dict[str, type]:
    return {"data": DataConfig, "models": ModelsConfig, "train": TrainConfig, "selective": SelectiveConfig}


@dataclass(frozen=True)
class RunConfig:
    """One experiment: its parts, which students, which seeds, where results go."""

    data: DataConfig = field(default_factory=DataConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    selective: SelectiveConfig = field(default_factory=SelectiveConfig)
    out: str = field(default="runs/w2s", metadata=opt(
        "Run folder: results, plots, and the stage cache (out/cache).", short="-o"))
    seeds: tuple[int, ...] = field(default=(0,), metadata=opt(
        "Comma-separated seeds, e.g. 0,1,2 (splits and training both depend on the seed).",
        parse=lambda s: parse_ints(s, "--seeds")))
    resplits: int | None = field(default=None, metadata=opt(
        "Paired re-splits: seeds 0..N-1 over one question pool (--pool-seed, default 0), sharing one encode pass; "
        "results get paired contrasts with bootstrap CIs. Overrides --seeds."))
    method: str = field(default="all", metadata=opt(
        "w2s (naive + aux_conf) | selective | all (w2s + selective + ablations and baselines)."))
    students: tuple[str, ...] | None = field(default=None, metadata=opt(
        "Comma-separated students, overriding --method (see README: students).", parse=parse_names))
    cache_dir: str | None = field(default=None, metadata=opt("Stage cache folder (default: OUT/cache)."))
    force: bool = field(default=False, metadata=opt("Recompute stages even if finished ones exist."))

    def __post_init__(self) -> None:
        """Checks what the config alone can tell. Names owned by a registry (tasks, models,
        methods, students) are checked where the registry lives: `experiment.check_config`."""
        if self.train is None:  # an explicit None: the part's defaults
            object.__setattr__(self, "train", TrainConfig())
        if self.selective is None:
            object.__setattr__(self, "selective", SelectiveConfig())
        if self.resplits is not None:
            if self.resplits < 1:
                raise ConfigError(f"--resplits must be >= 1, got {self.resplits}")
            object.__setattr__(self, "seeds", tuple(range(self.resplits)))
            if self.data.pool_seed is None:
                object.__setattr__(self, "data", dataclasses.replace(self.data, pool_seed=0))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.students is not None:
            object.__setattr__(self, "students", tuple(self.students))
        if not self.seeds:
            raise ConfigError("at least one seed is needed")
        for s in self.seeds:
            if not 0 <= s < 2**32:
                raise ConfigError(f"seed {s} must be in [0, 2**32)")

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out) / "cache"

    # ---------------------------------------------------------------- construction

    @classmethod
    def create(cls, **flat: Any) -> RunConfig:
        """A RunConfig from flat names (`task=`, `n_weak=`, `k=`, `pik_c=` ...; see module doc),
        whole parts (`train=TrainConfig(...)`) or both (flat names override the part's field)."""
        parts = config_parts()
        # a whole part (`data=DataConfig(...)`) by its type: `data` is also a setting (--data)
        given = {name: flat.pop(name) for name in list(flat) if name in parts and isinstance(flat[name], parts[name])}
        part_of = setting_parts()
        built: dict[str, Any] = {}
        for part, klass in parts.items():
            updates = {name: flat.pop(name) for name in list(flat) if part_of.get(name) == part}
            built[part] = _build_part(klass, given.get(part), updates)
        own = {f.name for f in dataclasses.fields(cls) if f.name not in parts}
        unknown = sorted(set(flat) - own)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}")
        return cls(**built, **flat)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """The inverse of `to_dict` (a run folder's config.json); unknown keys are refused."""
        top = dict(_checked(cls, d, "config"))
        for part, klass in config_parts().items():
            top[part] = _from_dict(klass, _renamed(part, top.get(part, {})), f"config.{part}")
        return cls(**top)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> RunConfig:
        """The config a run folder was last run with (its config.json)."""
        p = Path(run_dir) / "config.json"
        if not p.is_file():
            raise DataError(f"{str(run_dir)!r} is not a run folder: {str(p)!r} is missing")
        return cls.from_dict(json.loads(p.read_text()))


def setting_parts() -> dict[str, str]:
    """setting (a field's name, its flag without dashes) -> the part holding it, for every field
    of the four parts."""
    return {f.name: part for part, klass in config_parts().items() for f in dataclasses.fields(klass)}


def _build_part(klass: type, base: Any, updates: dict[str, Any]) -> Any:
    return klass(**updates) if base is None else replace(base, **updates)


# Settings renamed since, as config.json files of older runs name them: part -> old key -> new key.
# (`selective.pik` was a nested object of the probe's settings.)
RENAMED = {
    "data": {"path": "data", "split": "data_split"},
    "selective": {"self_label_among": "self_labels"},
}
_OLD_PIK = {"kind": "pik", "C": "pik_c", "hidden": "pik_hidden", "max_iter": "pik_max_iter", "seed": "pik_seed"}


def _renamed(part: str, raw: Any) -> Any:
    """An older config.json's part with its settings under their current names."""
    if not isinstance(raw, Mapping):
        return raw
    out = {RENAMED.get(part, {}).get(k, k): v for k, v in raw.items()}
    if part == "selective" and isinstance(out.get("pik"), Mapping):
        old = out.pop("pik")
        unknown = sorted(set(old) - set(_OLD_PIK))
        if unknown:
            raise ConfigError(f"config.selective.pik has unknown keys {unknown}; known: {sorted(_OLD_PIK)}")
        out.update({_OLD_PIK[k]: v for k, v in old.items()})
    return out


def _checked(klass: Any, raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(klass)}
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"{where} has unknown keys {extra}; known: {sorted(known)}")
    return raw


def _from_dict(klass: Any, raw: Any, where: str) -> Any:
    kw = dict(_checked(klass, raw, where))
    for f in dataclasses.fields(klass):
        if f.name in kw and isinstance(kw[f.name], list):
            kw[f.name] = tuple(kw[f.name])
    return klass(**kw)


__all__ = ["RunConfig", "DataConfig", "ModelsConfig", "ModelSpec", "TrainConfig", "SelectiveConfig", "PikConfig",
           "KnnConfig", "SpreadConfig", "opt", "setting_parts", "parse_ints"]
