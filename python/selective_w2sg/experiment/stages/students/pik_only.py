"""`pik_only` (ablation): the selective student without smoothing: self-labels where the trained
P(IK) says so, raw weak labels elsewhere (compared with the raw labels' own calibration)."""

from . import selection_student

STUDENT = selection_student(
    "pik_only", lambda ctx, deps, split: deps["select"].npy(f"pik_{split}"),
    "ablation: self-labels where P(IK) says so, raw weak labels elsewhere", fallback="raw")
