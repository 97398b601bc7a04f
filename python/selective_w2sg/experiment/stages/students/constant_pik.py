"""`constant_pik` (baseline): P(IK) replaced by its weak_train base rate, the same for every
question: what is left of the selective student when P(IK) tells questions apart not at all."""

import numpy as np

from . import selection_student

STUDENT = selection_student(
    "constant_pik",
    lambda ctx, deps, split: np.full(len(ctx.splits.examples[split]),
                                     deps["select"].json("selection")["pik_base_rate"], np.float32),
    "baseline: P(IK) = its weak_train base rate for every question")
