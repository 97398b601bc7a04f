"""The pipeline as a graph of stages (see `base.py`): one module per stage, one per student
under `students/`. `STAGES` is the whole graph; `resolve` runs what a target needs.

    weak ─────────────────────────────────► naive, aux_conf
    encode ─► zero_shot, tune, pik, calibrate
    encode, weak ─► smooth
    encode, pik, smooth, weak, calibrate ─► select ─► selective, pik_only, self_only, ...
    encode ─► ceiling (reference);  every student also needs encode and tune
"""

from __future__ import annotations

from . import calibrate, ceiling, encode, pik, select, smooth, tune, weak, weak_fold, zero_shot
from .base import Progress, Stage, StageContext, StageDone, resolve
from .students import Student, discover

STUDENTS: dict[str, Student] = discover()

STAGES: dict[str, Stage] = {
    s.name: s for s in (weak.STAGE, ceiling.STAGE, encode.STAGE, zero_shot.STAGE, tune.STAGE, pik.STAGE, smooth.STAGE,
                        *weak_fold.STAGES, calibrate.STAGE, select.STAGE)
} | {name: st.stage() for name, st in STUDENTS.items()}

# --method -> students trained (weak and ceiling always run)
METHODS: dict[str, tuple[str, ...]] = {
    "w2s": ("naive", "aux_conf"),
    "selective": ("selective",),
    "all": tuple(STUDENTS),
}


def student_names() -> tuple[str, ...]:
    return tuple(STUDENTS)


__all__ = ["STAGES", "STUDENTS", "METHODS", "Stage", "StageContext", "Student", "Progress", "StageDone", "resolve",
           "student_names"]
