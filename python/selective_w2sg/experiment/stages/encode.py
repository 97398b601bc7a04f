"""`encode`: ONE frozen forward pass of the pretrained strong model over every option of every
question (`encode.py`): graph embeddings, P(IK) features, self-labels.

Keyed by the strong model and the set of questions (not the split), so seeds that share
questions share the pass. Its last-layer features also fill the probe-mode feature store, so the
ceiling and the students never run the strong model again.

Outputs: embedding.npy hidden.npy features.npy (n_options, d) float32; option_prob.npy,
is_own_answer.npy, question_confidence.npy, question_entropy.npy (n_options,) float32;
offsets.json {question_id: first row}.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..models import is_causal_model, model_fingerprint
from ..linear import logit
from ..encode import EncodedQuestions, EncodeStats, encode_questions, middle_layer
from ..tasks import SPLITS
from .base import Stage, StageContext
from .fitting import Anchor, guard_oom, store_features

ENCODE_FORMAT = 3  # bump when the encode stage's outputs change, so old cache folders are not reused
CAUSAL_SCORING = 4  # bump when causal option scoring changes (encoder outputs keep their key)


def _all_questions(ctx: StageContext) -> list[Any]:
    qs = [q for s in SPLITS for q in ctx.splits.questions[s]]
    return sorted(qs, key=lambda q: q.question_id)


def run_encode(ctx: StageContext, deps: Mapping[str, StageDir] | None = None) -> StageDir:
    cfg = ctx.train
    questions = _all_questions(ctx)
    config = {"format": ENCODE_FORMAT, "model": model_fingerprint(ctx.strong), "model_name": ctx.strong.name,
              "feature_layer": ctx.selective.feature_layer, "max_length": cfg.max_length, **ctx.numerics}
    if is_causal_model(ctx.strong.name, ctx.strong.gguf_file):
        # 2: answer tokens counted on untruncated texts, an option with none scores lowest; 3: log-probs
        # of answer positions only, means in float64; 4: the vocabulary projection in fp32 on the trunk's
        # final states at answer positions
        config["causal_scoring"] = CAUSAL_SCORING
        config["share_prefix"] = ctx.selective.encode_share_prefix
    h = hashlib.sha256()
    for q in questions:
        h.update(json.dumps([q.question_id, q.question, list(q.options)]).encode())  # no gold: not needed
    inputs = {"questions": h.hexdigest()[:16]}

    def compute(w: Any) -> dict[str, Any]:
        bb = ctx.frozen_backbone(ctx.strong)
        stats = EncodeStats()
        total = sum(len(q.options) for q in questions)
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            ctx.report(f"encode {ctx.strong.name}", done[0], total)

        enc = encode_questions(bb, questions, feature_layer=ctx.selective.feature_layer,
                               batch_size=ctx.selective.encode_batch_size, max_length=cfg.max_length,
                               device=ctx.device, progress=tick, stats=stats,
                               share_prefix=ctx.selective.encode_share_prefix, max_tokens=cfg.max_batch_tokens)
        for name in ("embedding", "hidden", "features", "option_prob", "is_own_answer", "question_confidence",
                     "question_entropy"):
            w.npy(name, getattr(enc, name))
        w.json("offsets", enc.offsets)
        layer = middle_layer(bb) if ctx.selective.feature_layer is None else ctx.selective.feature_layer
        return {"texts": stats.texts, "tokens": stats.tokens, "padded_tokens": stats.padded_tokens,
                "forward_calls": stats.forward_calls, "seconds": stats.wall_s,
                "feature_layer": layer, "is_causal": bb.is_causal}

    d = guard_oom(lambda: run_cached(ctx.cache_root, "encode", config, inputs, compute, force=ctx.force),
                   f"encode pass with {ctx.strong.name}")
    if cfg.mode == "probe" and cfg.pooling in (None, "auto") and cfg.layer == -1:  # probe heads reuse them
        enc = load_encoded(d)
        for split in SPLITS:
            rows = enc.rows(ctx.splits.examples[split])
            store_features(ctx, ctx.strong, split, -1, lambda rows=rows: enc.hidden[rows])
    return d


def load_encoded(d: StageDir) -> EncodedQuestions:
    return EncodedQuestions(
        offsets=d.json("offsets"),
        embedding=d.npy("embedding", mmap=True),
        hidden=d.npy("hidden", mmap=True),
        features=d.npy("features", mmap=True),
        option_prob=d.npy("option_prob"),
        is_own_answer=d.npy("is_own_answer"),
        question_confidence=d.npy("question_confidence"),
        question_entropy=d.npy("question_entropy"),
    )


STAGE = Stage("encode", (), run_encode, "one frozen pass of the strong model: embeddings, P(IK) features, self-labels")


def zero_shot_prob(enc: EncodedQuestions, examples: Any) -> np.ndarray:
    """The strong model's zero-shot P(y=1) per example: its probability of the example's
    candidate, renormalised over the candidates the question's examples present. float32 (n,)."""
    return enc.answers(examples, "presented").prob.astype(np.float32)


def anchor_for(ctx: StageContext, encode: StageDir) -> Anchor | None:
    """The anchor of the strong model's probe heads (its zero-shot log-odds per example), or
    None where heads are not anchored (full / lora mode, or `--head plain`)."""
    if ctx.train.mode != "probe" or ctx.train.head != "anchored":
        return None
    enc = load_encoded(encode)
    return Anchor(f"{encode.path.name}:presented",
                  lambda split: logit(zero_shot_prob(enc, ctx.splits.examples[split])).astype(np.float32))
