"""One configuration, declared once.

A run is a frozen `RunConfig` made of its parts: `DataConfig` (the task and its splits),
`ModelsConfig` (weak and strong model), `TrainConfig` (how every model is trained, train.py) and
`SelectiveConfig` (the selective method, with its `PikConfig`; select.py / pik.py). Each part
validates itself once, in `__post_init__`, so a config that exists is a valid one.

Every field carries its command-line flag and help text in `field(metadata=opt(...))`; the CLI
builds its options from these fields (`cli/options.py`), so an option is declared exactly here.
A field's *flat name* (the flag without dashes, `-` -> `_`) is how `RunConfig.create(**flat)`
and the CLI address it: `--n-weak` -> `n_weak`, `--pik-c` -> `pik_c`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .graph.errors import ConfigError, DataError


def opt(help: str, flag: str | None = None, *, short: str | None = None, parse: Callable[[str], Any] | None = None,
        cli: bool = True) -> dict[str, Any]:
    """Field metadata for a config field: its help text, its flag (default `--field-name`), an
    optional short flag, and `parse` for a field whose command-line form is text (e.g. seeds
    "0,1,2" -> (0, 1, 2)). `cli=False`: a field with no command-line option."""
    return {"help": help, "flag": flag, "short": short, "parse": parse, "cli": cli}


def flag_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def flat_name(f: dataclasses.Field[Any]) -> str:
    return flag_of(f)[2:].replace("-", "_")


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


@dataclass(frozen=True)
class DataConfig:
    """The task and how its questions are split (by question, seeded)."""

    task: str = field(default="synthetic", metadata=opt(
        "Task: synthetic, sciq, boolq, arc_easy, openbookqa, hellaswag, social_iqa, ... (see README), or a "
        "mixture of dataset tasks, e.g. sciq+boolq (one pool; results per source).", short="-t"))
    path: str | None = field(default=None, metadata=opt(
        "Local task data: a save_to_disk folder, .jsonl or .parquet (default: the hub); for a mixture, one "
        "path per source, comma-separated in the task's order.", "--data"))
    split: str | None = field(default=None, metadata=opt(
        "Split of a local DatasetDict / hub dataset (default: all / the task's default).", "--data-split"))
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
        from .experiment.tasks import is_mixture

        return is_mixture(self.task)

    def __post_init__(self) -> None:
        from .experiment.tasks import mixture_parts, parse_shard

        parts = mixture_parts(self.task)
        if self.per_source is not None and (len(parts) < 2 or self.per_source < 1):
            raise ConfigError(f"--per-source {self.per_source} applies to mixtures (A+B) only, and must be >= 1")
        if self.question_shard is not None:
            if self.task == "synthetic":
                raise ConfigError("--question-shard does not apply to --task synthetic")
            parse_shard(self.question_shard)
        if self.path is not None and len(parts) > 1:
            paths = self.path.split(",")
            if len(paths) != len(parts):
                raise ConfigError(f"mixture {self.task!r} has {len(parts)} sources but --data gives "
                                  f"{len(paths)} comma-separated path(s)")
            for p in paths:
                if not Path(p).exists():
                    raise DataError(f"data path {p!r} does not exist")
        if self.task == "synthetic":  # generated, not loaded: a data flag would be silently ignored
            for flag, v in (("--data", self.path), ("--data-split", self.split)):
                if v is not None:
                    raise ConfigError(f"{flag} {v!r} does not apply to --task synthetic (its questions are "
                                      "generated); drop it, or name the task the data belongs to")
        if self.path is not None and len(parts) == 1 and not Path(self.path).exists():
            raise DataError(f"data path {self.path!r} does not exist")
        if not 0.0 < self.val_frac < 1.0:
            raise ConfigError(f"val_frac must be in (0, 1), got {self.val_frac}")
        for name in ("n_weak", "n_w2s", "n_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


@dataclass(frozen=True)
class ModelSpec:
    """A model by name (built-in, hub id or local path), and a GGUF file inside it if any."""

    name: str
    gguf_file: str | None = None

    @property
    def fingerprint(self) -> str:
        from .experiment.models import model_fingerprint

        return model_fingerprint(self.name, self.gguf_file)


@dataclass(frozen=True)
class ModelsConfig:
    """The weak supervisor and the strong student."""

    weak: str = field(default="tiny-random-bert", metadata=opt(
        "Weak model: tiny-random-bert | tiny-random-llama | hub id | local path."))
    strong: str = field(default="tiny-random-llama", metadata=opt("Strong model (same forms as --weak)."))
    weak_gguf: str | None = field(default=None, metadata=opt("GGUF file inside the weak model folder."))
    strong_gguf: str | None = field(default=None, metadata=opt("GGUF file inside the strong model folder."))

    def __post_init__(self) -> None:
        from .experiment.models import check_model_name

        check_model_name(self.weak)
        check_model_name(self.strong)

    @property
    def weak_spec(self) -> ModelSpec:
        return ModelSpec(self.weak, self.weak_gguf)

    @property
    def strong_spec(self) -> ModelSpec:
        return ModelSpec(self.strong, self.strong_gguf)


def config_parts() -> dict[str, type]:
    from .experiment.selection import SelectiveConfig
    from .experiment.training import TrainConfig

    return {"data": DataConfig, "models": ModelsConfig, "train": TrainConfig, "selective": SelectiveConfig}


@dataclass(frozen=True)
class RunConfig:
    """One experiment: its parts, which students, which seeds, where results go."""

    data: DataConfig = field(default_factory=DataConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    train: Any = field(default=None)  # TrainConfig (train.py); None: its defaults
    selective: Any = field(default=None)  # SelectiveConfig (select.py); None: its defaults
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
        from .experiment.selection import SelectiveConfig
        from .experiment.training import TrainConfig

        if self.train is None:
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
        from .experiment.stages import METHODS, student_names

        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        known = student_names()
        for s in self.student_names:
            if s not in known:
                raise ConfigError(f"unknown student {s!r}; known: {', '.join(known)}")
        from .experiment.stages import STUDENTS

        needs_mix = [s for s in self.student_names if STUDENTS[s].mixture_only]
        if needs_mix and not self.data.is_mixture:
            raise ConfigError(f"student(s) {needs_mix} need a mixture task (e.g. --task sciq+boolq), "
                              f"not {self.data.task!r}")
        if self.train.mode == "lora":
            try:
                import peft  # noqa: F401
            except ModuleNotFoundError:
                raise ConfigError("--mode lora needs peft: pip install 'selective-w2sg[lora]'") from None

    @property
    def student_names(self) -> tuple[str, ...]:
        from .experiment.stages import METHODS, STUDENTS

        if self.students is not None:
            return tuple(self.students)
        return tuple(s for s in METHODS[self.method] if self.data.is_mixture or not STUDENTS[s].mixture_only)

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out) / "cache"

    # ---------------------------------------------------------------- construction

    @classmethod
    def create(cls, **flat: Any) -> RunConfig:
        """A RunConfig from flat names (`task=`, `n_weak=`, `k=`, `pik_c=` ...; see module doc),
        whole parts (`train=TrainConfig(...)`) or both (flat names override the part's field)."""
        parts = config_parts()
        given = {name: flat.pop(name) for name in list(flat) if name in parts and not _is_flat(name)}
        routes = flat_fields()
        built: dict[str, Any] = {}
        for part, klass in parts.items():
            base = given.get(part)
            updates = {fname: flat.pop(key) for key, (p, fname) in list(routes.items()) if p == part and key in flat}
            built[part] = _build_part(klass, base, updates)
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
            top[part] = _from_dict(klass, top.get(part, {}), f"config.{part}")
        return cls(**top)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> RunConfig:
        """The config a run folder was last run with (its config.json)."""
        p = Path(run_dir) / "config.json"
        if not p.is_file():
            raise DataError(f"{str(run_dir)!r} is not a run folder: {str(p)!r} is missing")
        return cls.from_dict(json.loads(p.read_text()))


def _is_flat(name: str) -> bool:
    return name in flat_fields()


def flat_fields() -> dict[str, tuple[str, str]]:
    """flat name -> (part, field name) for every leaf field of the four parts; a nested part
    (SelectiveConfig.pik) routes as `selective` with field `pik.<name>`."""
    out: dict[str, tuple[str, str]] = {}
    for part, klass in config_parts().items():
        for f in dataclasses.fields(klass):
            if f.name == "pik":
                from .experiment.pik import PikConfig

                for g in dataclasses.fields(PikConfig):
                    out[flat_name(g)] = (part, f"pik.{g.name}")
                continue
            out[flat_name(f)] = (part, f.name)
    return out


def _build_part(klass: type, base: Any, updates: dict[str, Any]) -> Any:
    if base is None and not updates:
        return klass()
    if base is None:
        kw = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
              for f in dataclasses.fields(klass)}
    else:
        kw = {f.name: getattr(base, f.name) for f in dataclasses.fields(klass)}
    nested = {k.split(".", 1)[1]: v for k, v in updates.items() if k.startswith("pik.")}
    kw.update({k: v for k, v in updates.items() if not k.startswith("pik.")})
    if nested:
        from .experiment.pik import PikConfig

        kw["pik"] = dataclasses.replace(kw["pik"], **nested) if isinstance(kw["pik"], PikConfig) else PikConfig(**nested)
    return klass(**kw)


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
        if f.name == "pik" and f.name in kw:
            from .experiment.pik import PikConfig

            kw["pik"] = _from_dict(PikConfig, kw["pik"], f"{where}.pik")
        elif f.name in kw and isinstance(kw[f.name], list):
            kw[f.name] = tuple(kw[f.name])
    return klass(**kw)


__all__ = ["RunConfig", "DataConfig", "ModelsConfig", "ModelSpec", "opt", "flat_fields", "parse_ints"]
