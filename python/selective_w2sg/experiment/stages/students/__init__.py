"""Students: each is one module in this folder defining `STUDENT = Student(...)`: a name, a loss,
every stage it needs, and a label function `(ctx, deps) -> (w2s_train labels, w2s_val labels)`
(float32 P(y=1)). Every module here is found by `discover()`; adding a student is adding a file.
Nothing registers itself at import time.

Every student trains the same way (one model-selection rule, `tune`): anchored probe heads are
fitted with the head and correction strength C chosen on weak_train, whatever the labels; other
heads early-stop on w2s_val with their own weak-derived labels. So every student's `needs` names
`encode` (its anchor) and `tune` (its head and C) beside its label source: the stage runs with
exactly the needs its module declares, nothing added.

Selection students (`selection_student`) take, per question, the strong model's self-labels
where a P(IK) score beats the threshold of the rule, and a fallback weak label elsewhere:
    rule compare: P(IK)_q > calibrated P(the fallback label is right)_q (question means)
    rule tau:     P(IK)_q > tau
Those decisions are made once, by a stage of their own, `decide-<student>` (it needs `select`,
the stage of the fallback labels, and whatever the student's P(IK) reads), for w2s_train and
w2s_val:
    use_self_<split>.npy  bool (n,): True where the example trains on its self-label
    labels_<split>.npy    float32 (n,): the training labels (the self-label there, the fallback elsewhere)
    decision.json         the rule, its threshold, the fallback kind, the coverage per split
The student trains on labels_<split>; the analysis, `sw2s select` and `random_select` read the
same files (`decisions`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...cache import StageDir, run_cached
from ...selection import Selection, select_labels
from ..base import Stage, StageContext
from ..encode import anchor_for
from ..smooth import W2S_SPLITS
from ..fitting import run_student
from ..tune import chosen_budget

LabelFn = Callable[[StageContext, Mapping[str, StageDir]], tuple[np.ndarray, np.ndarray]]
PikFn = Callable[[StageContext, Mapping[str, StageDir], str], np.ndarray]

FITTED_WITH = ("encode", "tune")  # every student's fit reads its anchor (encode) and its head and C (tune)


@dataclass(frozen=True)
class Student:
    name: str
    loss: str  # xent | aux_conf
    needs: tuple[str, ...]  # every stage its stage reads: its label source(s), and encode and tune (FITTED_WITH)
    labels: LabelFn
    description: str = ""
    # True where the labels use hidden w2s ground truth: an upper bound, never a method (marked in every output)
    oracle: bool = False
    decision: Stage | None = None  # selection students: the stage that makes their decisions (`decide-<name>`)
    mixture_only: bool = False  # needs a mixture task (A+B): left out of --method all elsewhere

    def __post_init__(self) -> None:
        missing = [n for n in FITTED_WITH if n not in self.needs]
        if missing:
            raise ValueError(f"student {self.name!r} must declare {missing} in its needs: every student is "
                             "fitted with encode's anchor and tune's head")

    def stage(self) -> Stage:
        """The student as a stage: its labels, fitted like every student; needs exactly `needs`."""

        def run(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
            tr, va = self.labels(ctx, deps)
            return run_student(ctx, self.name, tr, va, loss=self.loss, anchor=anchor_for(ctx, deps["encode"]),
                               budget=chosen_budget(deps["tune"]))

        return Stage(self.name, self.needs, run, self.description)


def given_labels_stage(name: str, labels: LabelFn, loss: str = "xent") -> Stage:
    """A student on labels from outside the graph (`sw2s student --labels`): it needs no stage, and
    fits as such students always have, a head without the anchor or tune's C that early-stops on
    w2s_val with the given w2s_val labels."""

    def run(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
        tr, va = labels(ctx, deps)
        return run_student(ctx, name, tr, va, loss=loss)

    return Stage(name, (), run, "a student on given labels")


def weak_soft_labels(ctx: StageContext, deps: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
    """The weak model's soft predictions on w2s_train and w2s_val."""
    weak = deps["weak"]
    return weak.npy("preds_w2s_train"), weak.npy("preds_w2s_val")


def question_ids(ctx: StageContext, split: str) -> np.ndarray:
    return np.array([e.question_id for e in ctx.splits.examples[split]])


FALLBACK_STAGE = {"smoothed": "smooth", "raw": "weak"}  # fallback kind -> the stage whose labels it is


def fallback_labels(deps: Mapping[str, StageDir], split: str, kind: str) -> np.ndarray:
    """The weak label a selection student falls back to: `smoothed` or `raw`."""
    return deps["smooth"].npy(f"smoothed_{split}") if kind == "smoothed" else deps["weak"].npy(f"preds_{split}")


def decision_rule(ctx: StageContext, chosen: bool) -> tuple[str, float]:
    """(rule, tau) a selection student decides by: the run's, or for `chosen` scores (already the
    decision, 1 = take the self-label) "tau" at 0.5."""
    return ("tau", 0.5) if chosen else (ctx.selective.rule, ctx.selective.tau)


def select_with(ctx: StageContext, deps: Mapping[str, StageDir], split: str, pik: np.ndarray,
                fallback: str = "smoothed", chosen: bool = False) -> Selection:
    """Self-labels on the questions whose P(IK) `pik` (n,) beats the rule's threshold, the
    `fallback` weak labels elsewhere; one decision per question. `chosen=True`: `pik` is already
    the decision (1 = take the self-label), no rule applied."""
    d = deps["select"]
    rule, tau = decision_rule(ctx, chosen)
    return select_labels(d.npy(f"self_{split}"), fallback_labels(deps, split, fallback), pik, rule=rule,
                         tau=tau, weak_conf=d.npy(f"cal_{fallback}_{split}"), groups=question_ids(ctx, split))


def decisions(decide: StageDir, split: str) -> Selection:
    """A selection student's decisions on `split` (w2s_train or w2s_val), as its `decide-<name>`
    stage wrote them: the training labels and where they are self-labels."""
    return Selection(labels=decide.npy(f"labels_{split}"), use_self=decide.npy(f"use_self_{split}"))


def selection_student(name: str, pik: PikFn, description: str, *, fallback: str = "smoothed",
                      pik_needs: tuple[str, ...] = (), oracle: bool = False, chosen: bool = False,
                      mixture_only: bool = False) -> Student:
    """A student trained on the decisions of its own stage `decide-<name>`: `select_with` the
    P(IK) scores `pik(ctx, deps, split)`, which may read `select` and the stages `pik_needs`."""
    decide = f"decide-{name}"
    decide_needs = ("select", FALLBACK_STAGE[fallback], *pik_needs)

    def run_decide(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
        rule, tau = decision_rule(ctx, chosen)
        # The P(IK) source is the student's code (its name); the seed draws random_select's questions.
        config = {"format": 1, "student": name, "rule": rule, "tau": tau if rule == "tau" else None,
                  "fallback": fallback, "seed": ctx.seed}
        inputs = {**{n: deps[n].path.name for n in decide_needs}, **{s: ctx.splits.fingerprint(s) for s in W2S_SPLITS}}

        def compute(w: Any) -> dict[str, Any]:
            info: dict[str, Any] = {"rule": config["rule"], "tau": config["tau"], "fallback": fallback}
            for s in W2S_SPLITS:
                made = select_with(ctx, deps, s, pik(ctx, deps, s), fallback, chosen)
                w.npy(f"use_self_{s}", made.use_self)
                w.npy(f"labels_{s}", made.labels)
                info[f"coverage_{s}"] = made.coverage
            w.json("decision", info)
            return info

        return run_cached(ctx.cache_root, decide, config, inputs, compute, force=ctx.force)

    def labels(ctx: StageContext, deps: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
        tr, va = (decisions(deps[decide], s).labels for s in W2S_SPLITS)
        return tr, va

    stage = Stage(decide, decide_needs, run_decide,
                  f"{name}'s decisions: self-labels or {fallback} weak labels, per question of w2s_train and w2s_val")
    return Student(name, "xent", (decide, "encode", "tune"), labels, description, oracle=oracle, decision=stage,
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
