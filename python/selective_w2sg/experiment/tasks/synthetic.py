"""The synthetic task: generated questions whose answers follow a hidden word-goodness world."""

from __future__ import annotations

import numpy as np

from ...graph.errors import ConfigError
from .records import Question

SYNTH_WORDS = tuple(f"w{i}" for i in range(96))


SYNTH_TOPICS = tuple(f"t{i}" for i in range(16))


SYNTH_FILLER = tuple(f"f{i}" for i in range(16))


SYNTH_VOCAB = (*SYNTH_WORDS, *SYNTH_TOPICS, *SYNTH_FILLER, "which", "option", "is", "best", "answer")


_SYNTH_WORLD_SEED = 20240607  # fixed: the word weights are the task, not the run


def synthetic_word_goodness() -> np.ndarray:
    """The hidden goodness of each of `SYNTH_WORDS`, float64 (96,). Fixed for the task."""
    return np.random.default_rng(_SYNTH_WORLD_SEED).standard_normal(len(SYNTH_WORDS))


def synthetic_questions(n: int, *, seed: int = 0, easy_frac: float = 0.3, n_options: int = 4) -> list[Question]:
    """`n` synthetic questions; about `easy_frac` of them easy (meta['easy'] = True)."""
    if n < 1:
        raise ConfigError(f"synthetic task needs n >= 1 questions, got {n}")
    good = synthetic_word_goodness()
    order = np.argsort(good)
    best, worst = order[-24:], order[:24]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        easy = bool(rng.random() < easy_frac)
        if easy:
            opts = [rng.choice(best, 3, replace=False)] + [rng.choice(worst, 3, replace=False) for _ in range(n_options - 1)]
        else:
            opts = [rng.choice(len(SYNTH_WORDS), 3, replace=False) for _ in range(n_options)]
        scores = [good[o].sum() for o in opts]
        perm = rng.permutation(n_options)
        opts = [opts[j] for j in perm]
        gold = int(np.argmax([scores[j] for j in perm]))
        filler = " ".join(rng.choice(SYNTH_FILLER, rng.integers(0, 12)))
        topic = rng.choice(SYNTH_TOPICS)
        question = f"{topic} {filler} which option is best".replace("  ", " ")
        options = tuple(" ".join(SYNTH_WORDS[w] for w in o) for o in opts)
        qid = f"synthetic-{seed}-{i}"
        out.append(Question(qid, question, options, gold, {"easy": easy}))
    return out
