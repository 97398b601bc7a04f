"""The pipeline as a graph of stages (see `base.py`): one module per stage, one per student
under `students/`. `STAGES` is the whole graph; `resolve` runs what a target needs.

    weak ──────────────┬──────────────► naive, aux_conf
    encode ─► pik ─────┤
    encode, weak ─► smooth ─► select ─► selective, pik_only, smooth_only
    ceiling (reference)
"""

from __future__ import annotations

from . import ceiling, encode, pik, select, smooth, weak
from .base import Progress, Stage, StageContext, StageDone, resolve
from .students import Student, discover

STUDENTS: dict[str, Student] = discover()

STAGES: dict[str, Stage] = {
    s.name: s for s in (weak.STAGE, ceiling.STAGE, encode.STAGE, pik.STAGE, smooth.STAGE, select.STAGE)
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
