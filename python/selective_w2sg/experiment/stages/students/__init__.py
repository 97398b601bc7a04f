"""Students: each is one module in this folder defining `STUDENT = Student(...)`: a name, a loss,
the stages its labels need, and a label function `(ctx, deps) -> (w2s_train labels, w2s_val
labels)` (float32 P(y=1)). Every module here is found by `discover()`; adding a student is
adding a file. Nothing registers itself at import time.

Every student trains the same way (one model-selection rule, `tune`): anchored probe heads are
fitted with the head and correction strength C chosen on weak_train, whatever the labels; other
heads early-stop on w2s_val with their own weak-derived labels.

Selection students (`selection_student`) take, per question, the strong model's self-labels
where a P(IK) score beats the threshold of the rule, and a fallback weak label elsewhere:
    rule compare: P(IK)_q > calibrated P(the fallback label is right)_q (question means)
    rule tau:     P(IK)_q > tau
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ...cache import StageDir
from ...selection import Selection, select_labels
from ..base import Stage, StageContext
from ..encode import anchor_for
from ..smooth import W2S_SPLITS
from ..fitting import run_student
from ..tune import chosen_budget

LabelFn = Callable[[StageContext, Mapping[str, StageDir]], tuple[np.ndarray, np.ndarray]]
SelectFn = Callable[[StageContext, Mapping[str, StageDir], str], Selection]
PikFn = Callable[[StageContext, Mapping[str, StageDir], str], np.ndarray]


@dataclass(frozen=True)
class Student:
    name: str
    loss: str  # xent | aux_conf
    needs: tuple[str, ...]  # stages whose folders `labels` reads
    labels: LabelFn
    description: str = ""
    # True where the labels use hidden w2s ground truth: an upper bound, never a method (marked in every output)
    oracle: bool = False
    select: SelectFn | None = None  # selection students: which examples took self-labels, per split
    mixture_only: bool = False  # needs a mixture task (A+B): left out of --method all elsewhere

    def stage(self) -> Stage:
        def run(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
            tr, va = self.labels(ctx, deps)
            return run_student(ctx, self.name, tr, va, loss=self.loss, anchor=anchor_for(ctx, deps["encode"]),
                               budget=chosen_budget(deps["tune"]))

        return Stage(self.name, tuple(dict.fromkeys([*self.needs, "encode", "tune"])), run, self.description)


def weak_soft_labels(ctx: StageContext, deps: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
    """The weak model's soft predictions on w2s_train and w2s_val."""
    weak = deps["weak"]
    return weak.npy("preds_w2s_train"), weak.npy("preds_w2s_val")


def question_ids(ctx: StageContext, split: str) -> np.ndarray:
    return np.array([e.question_id for e in ctx.splits.examples[split]])


def fallback_labels(deps: Mapping[str, StageDir], split: str, kind: str) -> np.ndarray:
    """The weak label a selection student falls back to: `smoothed` or `raw`."""
    return deps["smooth"].npy(f"smoothed_{split}") if kind == "smoothed" else deps["weak"].npy(f"preds_{split}")


def select_with(ctx: StageContext, deps: Mapping[str, StageDir], split: str, pik: np.ndarray,
                fallback: str = "smoothed", chosen: bool = False) -> Selection:
    """Self-labels on the questions whose P(IK) `pik` (n,) beats the rule's threshold, the
    `fallback` weak labels elsewhere; one decision per question. `chosen=True`: `pik` is already
    the decision (1 = take the self-label), no rule applied."""
    sel, d = ctx.selective, deps["select"]
    rule, tau = ("tau", 0.5) if chosen else (sel.rule, sel.tau)
    return select_labels(d.npy(f"self_{split}"), fallback_labels(deps, split, fallback), pik, rule=rule,
                         tau=tau, weak_conf=d.npy(f"cal_{fallback}_{split}"), groups=question_ids(ctx, split))


def selection_student(name: str, pik: PikFn, description: str, *, fallback: str = "smoothed",
                      oracle: bool = False, chosen: bool = False, mixture_only: bool = False) -> Student:
    """A student whose labels are `select_with` the P(IK) scores `pik(ctx, deps, split)`."""

    def select(ctx: StageContext, deps: Mapping[str, StageDir], split: str) -> Selection:
        return select_with(ctx, deps, split, pik(ctx, deps, split), fallback, chosen)

    def labels(ctx: StageContext, deps: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
        tr, va = (select(ctx, deps, s).labels for s in W2S_SPLITS)
        return tr, va

    return Student(name, "xent", ("select", "smooth", "weak"), labels, description, oracle=oracle, select=select,
                   mixture_only=mixture_only)


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


ORDER = ("naive", "aux_conf", "self_only", "selective", "pik_only", "smooth_only", "random_select", "constant_pik",
         "confidence_pik", "transfer_pik", "oracle_pik")
