"""What a stage is, the context it runs in, and the resolver that runs what a target needs.

A `Stage` declares its `name`, the stages it `needs` and how it `run`s: `run(ctx, deps)` gets
the finished folders of its needs and returns its own folder. Its cache key is the hash of the
config and input fingerprints it passes to `cache.run_cached` (see each stage's module), so a
finished stage is reused and an interrupted one is redone. `resolve(ctx, targets)` runs the
targets and everything they need, depth first in the order given, each stage once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import StageDir
from ...config import ModelSpec, RunConfig, SelectiveConfig, TrainConfig
from ...graph.errors import ConfigError
from ..models import Backbone, Device, load_backbone, pick_device
from ..tasks import Splits

Progress = Callable[[str, int, int], None]  # (what, done, total)
StageDone = Callable[[str, StageDir], None]


@dataclass
class StageContext:
    """Everything a stage reads: the run's config, the splits of one seed, the seed; plus the
    device and the frozen backbones, loaded at most once per context."""

    cfg: RunConfig
    splits: Splits
    seed: int
    progress: Progress | None = None
    _device: Device | None = field(default=None, repr=False)
    _frozen: dict[ModelSpec, Backbone] = field(default_factory=dict, repr=False)

    @property
    def train(self) -> TrainConfig:
        return self.cfg.train

    @property
    def selective(self) -> SelectiveConfig:
        return self.cfg.selective

    @property
    def weak(self) -> ModelSpec:
        return self.cfg.models.weak_spec

    @property
    def strong(self) -> ModelSpec:
        return self.cfg.models.strong_spec

    @property
    def cache_root(self) -> Path:
        return self.cfg.cache_root

    @property
    def force(self) -> bool:
        return self.cfg.force

    @property
    def device(self) -> Device:
        if self._device is None:
            self._device = pick_device(self.train.device, self.train.precision)
        return self._device

    @property
    def numerics(self) -> dict[str, str]:
        """Where and in what precision stages compute: part of every cache key that runs a model,
        so CPU-fp32 and GPU-bf16 outputs are never mixed."""
        return {"device": self.device.device.type, "precision": "bf16" if self.device.bf16 else "fp32"}

    def frozen_backbone(self, spec: ModelSpec) -> Backbone:
        """The pretrained model, loaded once per context (probe mode never changes its weights)."""
        if spec not in self._frozen:
            self._frozen[spec] = load_backbone(spec.name, gguf_file=spec.gguf_file)
        return self._frozen[spec]

    def report(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)


RunFn = Callable[[StageContext, Mapping[str, StageDir]], StageDir]


@dataclass(frozen=True)
class Stage:
    """A node of the pipeline graph: its name, the stages whose folders `run` reads, and `run`."""

    name: str
    needs: tuple[str, ...]
    run: RunFn
    description: str = ""


def resolve(ctx: StageContext, targets: Iterable[str], stages: Mapping[str, Stage],
            done: dict[str, StageDir] | None = None, on_done: StageDone | None = None) -> dict[str, StageDir]:
    """Run `targets` and what they need (depth first, in order), each once; `done` holds stages
    already finished in this context and is filled in. Returns every finished stage by name."""
    finished: dict[str, StageDir] = {} if done is None else done
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in finished:
            return
        if name not in stages:
            raise ConfigError(f"unknown stage {name!r}; known: {', '.join(stages)}")
        if name in visiting:
            raise ConfigError(f"stage {name!r} needs itself")
        visiting.add(name)
        stage = stages[name]
        for need in stage.needs:
            visit(need)
        d = stage.run(ctx, {n: finished[n] for n in stage.needs})
        visiting.discard(name)
        finished[name] = d
        if on_done is not None:
            on_done(name, d)

    for t in targets:
        visit(t)
    return finished
