"""Binary examples and seeded splits by question."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...config import is_mixture
from ...graph.errors import ConfigError
from ...graph.io import save_json
from .records import MIN_QUESTIONS, SPLITS, Example, Question, hash_seed
from .sources import load_mixture, load_questions, question_shard
from .synthetic import synthetic_questions


def make_examples(questions: Sequence[Question], seed: int) -> list[Example]:
    """Two examples per question, the gold answer and one seeded random wrong option, so every
    split is exactly 50/50 and every question's examples stay together."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for q in questions:
        wrong = [i for i in range(len(q.options)) if i != q.gold]
        neg = int(wrong[rng.integers(len(wrong))])
        pair = [q.gold, neg] if rng.random() < 0.5 else [neg, q.gold]
        out.extend(Example(q.question_id, q.question, q.options, j, q.gold) for j in pair)
    return out


@dataclass(frozen=True)
class Splits:
    """Question-level splits of one task for one seed. `w2s_val` is carved out of the w2s
    questions: it is never trained on, and students see only weak labels there."""

    task: str
    seed: int
    questions: dict[str, list[Question]]  # split name -> questions
    examples: dict[str, list[Example]]  # split name -> balanced binary examples

    def labels(self, split: str) -> np.ndarray:
        """Ground-truth labels of a split, int64 (n,)."""
        return np.array([e.label for e in self.examples[split]], dtype=np.int64)

    def texts(self, split: str) -> list[str]:
        return [e.text for e in self.examples[split]]

    def fingerprint(self, split: str) -> str:
        """Hash of a split's examples (ids, texts, labels): part of every stage key that reads it."""
        h = hashlib.sha256()
        for e in self.examples[split]:
            h.update(json.dumps([e.question_id, e.text, e.label]).encode())
        return h.hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "seed": self.seed,
            "question_ids": {s: [q.question_id for q in qs] for s, qs in self.questions.items()},
            "n_examples": {s: len(e) for s, e in self.examples.items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_json(path, self.to_json())


def make_splits(
    questions: Sequence[Question], *, task: str, seed: int, n_weak: int, n_w2s: int, n_test: int,
    val_frac: float = 0.2, pool_seed: int | None = None, defaulted: Sequence[str] = (),
) -> Splits:
    """Shuffle questions (seeded) and cut `n_weak` / `n_w2s` / `n_test` of them; `val_frac` of the
    w2s questions become `w2s_val`. Refuses splits too small to mean anything.

    `pool_seed`: when given, the `n_weak + n_w2s + n_test` questions used are first drawn with
    that seed, and `seed` only re-splits this fixed pool. Seeds then share every question, so the
    strong model's encode pass (keyed by the question set) runs once for all of them. When None,
    each seed draws its own questions."""
    if not 0.0 < val_frac < 1.0:
        raise ConfigError(f"val_frac must be in (0, 1), got {val_frac}")
    n_val = int(round(n_w2s * val_frac))
    sizes = {"weak_train": n_weak, "w2s_train": n_w2s - n_val, "w2s_val": n_val, "test": n_test}
    # `defaulted`: the sizes the user did not give (named as defaults, never as "got --n-...")
    flags = {"n_weak": n_weak, "n_w2s": n_w2s, "n_test": n_test}
    got = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items() if k not in defaulted)
    dflt = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in flags.items() if k in defaulted)
    how = "; ".join(x for x in (f"got {got}" if got else "", f"defaults {dflt}" if dflt else "") if x)
    total = n_weak + n_w2s + n_test
    if total > len(questions) or any(flags[k] > len(questions) for k in flags if k not in defaulted):
        raise ConfigError(
            f"task {task!r} has {len(questions)} questions but the splits need {max(total, *flags.values())} ({how})"
        )
    for name, size in sizes.items():
        if size < MIN_QUESTIONS[name]:
            raise ConfigError(
                f"split {name!r} would have {size} questions; need at least {MIN_QUESTIONS[name]} "
                f"({how}, val_frac {val_frac})"
            )
    if pool_seed is not None:
        pool = np.sort(np.random.default_rng([pool_seed, 2]).permutation(len(questions))[:total])
        perm = pool[np.random.default_rng([seed, 1]).permutation(total)]
    else:
        perm = np.random.default_rng([seed, 1]).permutation(len(questions))
    qs = {}
    start = 0
    for name in SPLITS:
        qs[name] = [questions[i] for i in perm[start : start + sizes[name]]]
        start += sizes[name]
    examples = {name: make_examples(qs[name], seed=hash_seed(seed, name)) for name in SPLITS}
    return Splits(task, seed, qs, examples)


def default_sizes(n_available: int | None, n_weak: int | None, n_w2s: int | None, n_test: int | None
                  ) -> tuple[int, int, int]:
    """Sizes not given default to 30% / 50% / 20% of the available questions, capped at
    1000 / 2000 / 1000 (None available: the synthetic task, which makes what is asked)."""
    caps = (1000, 2000, 1000)
    fracs = (0.3, 0.5, 0.2)
    given = (n_weak, n_w2s, n_test)
    if n_available is None:
        return tuple(g if g is not None else c // 4 for g, c in zip(given, caps))  # type: ignore[return-value]
    left = n_available - sum(g for g in given if g is not None)
    free = sum(f for g, f in zip(given, fracs) if g is None) or 1.0
    out = []
    for g, f, c in zip(given, fracs, caps):
        out.append(g if g is not None else min(c, int(max(left, 0) * f / free)))
    return tuple(out)  # type: ignore[return-value]


def build_splits(
    task: str, *, seed: int, data: str | os.PathLike[str] | None = None, data_split: str | None = None,
    n_weak: int | None = None, n_w2s: int | None = None, n_test: int | None = None, val_frac: float = 0.2,
    pool_seed: int | None = None, per_source: int | None = None, shard: str | None = None,
) -> Splits:
    """Load a task (or a mixture "A+B", with `data` "PATH_A,PATH_B") and cut its splits: the one
    call the pipeline makes. `shard` "K/N" keeps one of N disjoint parts of the questions."""
    if task == "synthetic":
        nw, n2, nt = default_sizes(None, n_weak, n_w2s, n_test)
        # The question pool does not depend on the seed; the split does.
        questions = synthetic_questions(nw + n2 + nt, seed=0)
    else:
        if is_mixture(task):
            paths = None if data is None else str(data).split(",")
            questions = load_mixture(task, paths, split=data_split, per_source=per_source,
                                     seed=0 if pool_seed is None else pool_seed)
        else:
            questions = load_questions(task, data, split=data_split)
        questions = question_shard(questions, shard)
        nw, n2, nt = default_sizes(len(questions), n_weak, n_w2s, n_test)
    defaulted = [k for k, v in (("n_weak", n_weak), ("n_w2s", n_w2s), ("n_test", n_test)) if v is None]
    return make_splits(questions, task=task, seed=seed, n_weak=nw, n_w2s=n2, n_test=nt, val_frac=val_frac,
                       pool_seed=pool_seed, defaulted=defaulted)
