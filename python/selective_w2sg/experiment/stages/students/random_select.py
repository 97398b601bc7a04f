"""`random_select` (baseline): self-labels on randomly chosen questions, as many as the selective
student chose (per split), smoothed weak labels elsewhere: does P(IK) pick better than chance?"""

from __future__ import annotations

import numpy as np

from ...tasks import hash_seed
from . import question_ids, selection_student
from .selective import STUDENT as SELECTIVE

SELECTIVE_DECISIONS = SELECTIVE.decision.name  # type: ignore[union-attr]


def random_pik(ctx, deps, split: str) -> np.ndarray:
    """1 on a seeded random set of questions of the selective student's coverage (as many
    questions as its decisions, `decide-selective`, put on self-labels), else 0."""
    qids = question_ids(ctx, split)
    uniq, q = np.unique(qids, return_inverse=True)
    chosen_q = np.zeros(len(uniq), bool)
    chosen_q[q[deps[SELECTIVE_DECISIONS].npy(f"use_self_{split}")]] = True
    rng = np.random.default_rng(hash_seed(ctx.seed, "random_select", split))
    pick = np.zeros(len(uniq), bool)
    pick[rng.permutation(len(uniq))[: int(chosen_q.sum())]] = True
    return pick[q].astype(np.float32)


STUDENT = selection_student("random_select", random_pik,
                            "baseline: self-labels on random questions at the selective student's coverage",
                            chosen=True, pik_needs=(SELECTIVE_DECISIONS,))
