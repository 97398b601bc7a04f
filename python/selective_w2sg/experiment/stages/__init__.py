"""The pipeline as a graph of stages (see `base.py`): one module per stage, one per student
under `students/`. `STAGES` is the whole graph; `resolve` runs what a target needs.

    weak ─────────────────────────────────► naive, aux_conf
    weak-fold-0..4 (calibrate's cross-fitted weak models), encode ─► calibrate
    encode ─► zero_shot, pik;  encode, calibrate ─► tune
    encode, weak, calibrate ─► smooth
    encode, pik, smooth, weak, calibrate ─► select ─► self_only
    select, smooth (pik_only: weak) ─► decide-<student> ─► <student>: selective, pik_only, ...
    encode ─► ceiling (reference);  every student also needs encode and tune (declared by each)
"""

from __future__ import annotations

from ...config import RunConfig
from . import calibrate, ceiling, encode, pik, select, smooth, tune, weak, weak_fold, zero_shot
from .base import Progress, Stage, StageContext, StageDone, resolve
from .students import Student, discover

STUDENTS: dict[str, Student] = discover()

STAGES: dict[str, Stage] = {
    s.name: s for s in (weak.STAGE, ceiling.STAGE, encode.STAGE, zero_shot.STAGE, tune.STAGE, pik.STAGE, smooth.STAGE,
                        *weak_fold.STAGES, calibrate.STAGE, select.STAGE)
} | {name: st.stage() for name, st in STUDENTS.items()} | {
    st.decision.name: st.decision for st in STUDENTS.values() if st.decision is not None}

# --method -> students trained (weak and ceiling always run)
METHODS: dict[str, tuple[str, ...]] = {
    "w2s": ("naive", "aux_conf"),
    "selective": ("selective",),
    "all": tuple(STUDENTS),
}


def students_for(cfg: RunConfig) -> tuple[str, ...]:
    """The students a run trains: `--students` if given, else its `--method`'s (a mixture-only
    student only on a mixture task)."""
    if cfg.students is not None:
        return tuple(cfg.students)
    return tuple(s for s in METHODS[cfg.method] if cfg.data.is_mixture or not STUDENTS[s].mixture_only)


__all__ = ["STAGES", "STUDENTS", "METHODS", "Stage", "StageContext", "Student", "Progress", "StageDone", "resolve",
           "students_for"]
