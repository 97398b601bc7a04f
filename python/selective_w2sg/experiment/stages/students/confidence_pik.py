"""`confidence_pik` (baseline): P(IK) replaced by the strong model's own zero-shot confidence in
its answer, with no probe trained (Kadavath et al.): the score a trained P(IK) must beat."""

from . import selection_student

STUDENT = selection_student(
    "confidence_pik", lambda ctx, deps, split: deps["select"].npy(f"confidence_{split}"),
    "baseline: P(IK) = the strong model's zero-shot confidence in its answer")
