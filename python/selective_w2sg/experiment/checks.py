"""The checks of a `RunConfig` that need a registry: the task's name (`tasks`), the models
(`models`), the method and students (`stages`), and optional packages (peft for LoRA).

`config.py` checks what a config alone can tell and imports nothing above it; these names are
checked here, where their registries live, before any work starts (`check_config` runs when the
command line builds a config and again when a seed's context is prepared).
"""

from __future__ import annotations

import importlib.util

from ..config import RunConfig
from ..graph.errors import ConfigError
from .models import check_model_name
from .stages import METHODS, STUDENTS, students_for
from .tasks import check_task


def check_config(cfg: RunConfig) -> RunConfig:
    """`cfg`, once every registry-owned name in it is known; else a `ConfigError` naming it."""
    check_task(cfg.data.task)
    check_model_name(cfg.models.weak)
    check_model_name(cfg.models.strong)
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}; known: {', '.join(METHODS)}")
    for s in cfg.students or ():
        if s not in STUDENTS:
            raise ConfigError(f"unknown student {s!r}; known: {', '.join(STUDENTS)}")
    needs_mix = [s for s in students_for(cfg) if STUDENTS[s].mixture_only]
    if needs_mix and not cfg.data.is_mixture:
        raise ConfigError(f"student(s) {needs_mix} need a mixture task (e.g. --task sciq+boolq), "
                          f"not {cfg.data.task!r}")
    if cfg.train.mode == "lora" and importlib.util.find_spec("peft") is None:
        raise ConfigError("--mode lora needs peft: pip install 'selective-w2sg[lora]'")
    return cfg


__all__ = ["check_config"]
