"""`zero_shot`: the strong model's own zero-shot answer as a model of its own (a baseline every
table shows): P(y=1) of each example = the strong model's probability of its candidate among
the candidates its question's examples present. No training; read from the encode pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..cache import StageDir, run_cached
from ..tasks import SPLITS
from .base import Stage, StageContext
from .encode import load_encoded, zero_shot_prob


def run_zero_shot(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode = deps["encode"]
    inputs = {"encode": encode.path.name, **{s: ctx.splits.fingerprint(s) for s in SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        enc = load_encoded(encode)
        for s in SPLITS:
            w.npy(f"preds_{s}", zero_shot_prob(enc, ctx.splits.examples[s]))
        return {}

    return run_cached(ctx.cache_root, "zero_shot", {"among": "presented"}, inputs, compute, force=ctx.force)


STAGE = Stage("zero_shot", ("encode",), run_zero_shot, "the strong model's zero-shot answer (no training)")
