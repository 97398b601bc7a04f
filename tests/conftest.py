from __future__ import annotations

import numpy as np
import pytest


def brute_force_knn(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference kNN in float64: (indices, scores), best first, ties to the smaller index."""
    x64 = x.astype(np.float64)
    if metric == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    if metric == "sqeuclidean":
        sq = (x64**2).sum(1)
        s = sq[:, None] + sq[None, :] - 2 * x64 @ x64.T
        key = s.copy()
    else:
        s = x64 @ x64.T
        key = -s
    np.fill_diagonal(key, np.inf)
    n = x.shape[0]
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), key), axis=1)[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def clustered(n: int, d: int, centres: int, seed: int = 0, spread: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    lab = rng.integers(0, centres, n)
    return (c[lab] + spread * rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def knower(tmp_path_factory) -> str:
    """tiny-random-llama after a short language-model fit on the gold answers of *easy* synthetic
    questions (from a question pool the experiments never use): it then knows the easy subset --
    the word-goodness of easy options -- and not the rest. Saved as a local model folder."""
    import torch

    from selective_w2sg.experiment.models import load_backbone
    from selective_w2sg.experiment.tasks import format_example, synthetic_questions

    torch.manual_seed(0)
    bb = load_backbone("tiny-random-llama")
    qs = [q for q in synthetic_questions(2000, seed=777) if q.meta["easy"]]
    enc = bb.tokenizer([format_example(q.question, q.options[q.gold]) for q in qs], padding=True, return_tensors="pt")
    model = bb.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(120):
        idx = torch.randint(0, len(qs), (32,))
        ids, mask = enc["input_ids"][idx], enc["attention_mask"][idx]
        loss = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                     labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("knower") / "model"
    model.save_pretrained(path)
    bb.tokenizer.save_pretrained(path)
    return str(path)


def count_rows(backbone):
    """Wrap the forward of the part of the model the encode pass runs (a causal LM's trunk) to
    count the rows (texts) it sees; a shared-prefix pass (it caches keys and values for the
    options that follow) holds no whole text and is not counted."""
    seen = {"rows": 0}
    from selective_w2sg.experiment.models import split_lm

    trunk = split_lm(backbone.model)[0]
    orig = trunk.forward

    def forward(*args, **kw):
        continues = any(kw.get(k) is not None for k in ("cache", "past_key_values"))
        if kw.get("use_cache") is not True or continues:
            seen["rows"] += int(kw["input_ids"].shape[0])
        return orig(*args, **kw)

    trunk.forward = forward
    return seen
