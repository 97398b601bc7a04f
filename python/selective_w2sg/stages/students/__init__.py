"""Students: each is one module in this folder defining `STUDENT = Student(...)`: a name, a loss,
the stages its labels need, and a label function `(ctx, deps) -> (w2s_train labels, w2s_val
labels)` (float32 P(y=1)). Every module here is found by `discover()`; adding a student is
adding a file. Nothing registers itself at import time.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ...cache import StageDir
from ..base import Stage, StageContext
from ..training import run_student

LabelFn = Callable[[StageContext, Mapping[str, StageDir]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Student:
    name: str
    loss: str  # xent | aux_conf
    needs: tuple[str, ...]  # stages whose folders `labels` reads
    labels: LabelFn
    description: str = ""
    # True where the labels use hidden w2s ground truth: an upper bound, never a method (marked in every output)
    oracle: bool = False

    def stage(self) -> Stage:
        def run(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
            tr, va = self.labels(ctx, deps)
            return run_student(ctx, self.name, tr, va, loss=self.loss)

        return Stage(self.name, self.needs, run, self.description)


def weak_soft_labels(ctx: StageContext, deps: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
    """The weak model's soft predictions on w2s_train and w2s_val."""
    weak = deps["weak"]
    return weak.npy("preds_w2s_train"), weak.npy("preds_w2s_val")


def selected_labels(name: str) -> LabelFn:
    """The labels the `select` stage wrote for student `name`."""

    def labels(ctx: StageContext, deps: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
        d = deps["select"]
        return d.npy(f"labels_{name}_w2s_train"), d.npy(f"labels_{name}_w2s_val")

    return labels


def discover() -> dict[str, Student]:
    """Every `STUDENT` defined by a module of this package, by name, in a fixed order (the
    order of ORDER, then any others alphabetically)."""
    found: dict[str, Student] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        st = getattr(mod, "STUDENT", None)
        if isinstance(st, Student):
            found[st.name] = st
    first = [n for n in ORDER if n in found]
    return {n: found[n] for n in [*first, *sorted(set(found) - set(first))]}


ORDER = ("naive", "aux_conf", "selective", "pik_only", "smooth_only")
