"""Models: built-in tiny models, pooling under both padding sides, batched feature extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selective_w2sg.graph.errors import ConfigError
from selective_w2sg.experiment.models import (
    Classifier, ExtractStats, apply_lora, extract_features, length_sorted_batches, load_backbone,
    pad_batch, pick_device, pool, position_ids_from_mask, tokenize,
)
from selective_w2sg.experiment.models.loading import _ensure_pad_token

torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared 2-core machine

TEXTS = ["t1 f2 f3 which option is best\nAnswer: w1 w2 w3", "t2 which\nAnswer: w5", "t3 f1 f1 f1 f1 f1 f1 f1 x",
         "w9"]


@pytest.fixture(scope="module", params=["tiny-random-bert", "tiny-random-llama"])
def backbone(request):
    return load_backbone(request.param)


def test_builtin_models(backbone) -> None:
    tok = backbone.tokenizer
    assert tok.pad_token_id is not None
    assert tok.padding_side == ("left" if backbone.is_causal else "right")
    a, b = load_backbone(backbone.name), load_backbone(backbone.name)  # fixed init: same "pretrained" weights
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_pool_hand_checked() -> None:
    h = torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1)  # rows [0,1,2], [3,4,5]
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert pool(h, right, "last").flatten().tolist() == [1.0, 5.0]
    assert pool(h, left, "last").flatten().tolist() == [2.0, 5.0]
    assert pool(h, right, "mean").flatten().tolist() == [0.5, 4.0]
    assert position_ids_from_mask(left).tolist() == [[0, 0, 1], [0, 1, 2]]
    with pytest.raises(ConfigError):
        pool(h, right, "max")


def test_pad_batch_uses_pad_id_and_side() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=9, side="left")
    assert ids.tolist() == [[5, 6, 7], [9, 9, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=9, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_left_and_right_padding_pool_the_same(backbone, pooling) -> None:
    tok = backbone.tokenizer
    side = tok.padding_side
    out = {}
    try:
        for s in ("left", "right"):
            tok.padding_side = s
            out[s] = extract_features(backbone, TEXTS, pooling=pooling, batch_size=4, device=pick_device("cpu"))[-1]
    finally:
        tok.padding_side = side
    alone = np.stack([extract_features(backbone, [t], pooling=pooling, device=pick_device("cpu"))[-1][0] for t in TEXTS])
    np.testing.assert_allclose(out["left"], out["right"], atol=1e-5)
    np.testing.assert_allclose(out["left"], alone, atol=1e-5)  # and the same as without any padding


def test_extract_features_layers_and_order(backbone) -> None:
    stats = ExtractStats()
    feats = extract_features(backbone, TEXTS * 5, layers=(0, -1), batch_size=3, stats=stats, device=pick_device("cpu"))
    assert set(feats) == {0, -1}
    assert feats[-1].shape == (20, backbone.hidden_size) and feats[-1].dtype == np.float32
    np.testing.assert_allclose(feats[-1][:4], feats[-1][4:8], atol=1e-5)  # rows back in input order
    assert stats.n == 20 and 0 < stats.forward_s <= stats.wall_s


def test_length_sorted_batches() -> None:
    lengths = [3, 9, 1, 7, 5]
    batches = length_sorted_batches(lengths, 2)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]
    assert sorted(np.concatenate(batches).tolist()) == list(range(5))
    assert all(len(b) * 9 <= 10 for b in length_sorted_batches(lengths, 8, max_tokens=10)[:1])



def test_length_sorted_batches_cheapest_cuts() -> None:
    """With a per-call cost, batches minimise calls x cost + padded tokens: no contiguous cut of
    the longest-first order does better (brute force on small cases), limits still hold."""
    import itertools

    rng = np.random.default_rng(0)

    def cost(lengths, batches, call):
        return sum(call + len(b) * max(lengths[i] for i in b) for b in batches)

    for trial in range(20):
        lengths = rng.integers(1, 30, size=int(rng.integers(1, 9))).tolist()
        call = float(rng.choice([0.0, 5.0, 28.0, 200.0]))
        got = length_sorted_batches(lengths, 4, call_cost=call)
        assert sorted(np.concatenate(got).tolist()) == list(range(len(lengths)))
        assert all(len(b) <= 4 for b in got)
        order = np.argsort(-np.asarray(lengths), kind="stable")
        best = min(
            cost(lengths, [order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)))], call)
            for r in range(len(order))
            for cuts in itertools.combinations(range(1, len(order)), r)
            if all(b - a <= 4 for a, b in zip((0, *cuts), (*cuts, len(order))))
        )
        assert cost(lengths, got, call) == pytest.approx(best), (trial, lengths, call)
    # a token budget is kept (a single longer row aside)
    lengths = rng.integers(1, 25, size=200).tolist()
    for b in length_sorted_batches(lengths, 64, max_tokens=50, call_cost=28.0):
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 50

def test_classifier_forward(backbone) -> None:
    model = Classifier(backbone)
    ids, mask = pad_batch(tokenize(backbone, TEXTS, 64), backbone.tokenizer.pad_token_id, backbone.tokenizer.padding_side)
    assert model(ids, mask).shape == (4, 2)


class _Tok:
    def __init__(self, **kw):
        self.pad_token = None
        self.pad_token_id = None
        self.eos_token = kw.get("eos")
        self.unk_token = kw.get("unk")


def test_missing_pad_token() -> None:
    t = _Tok(eos="</s>")
    _ensure_pad_token(t, "m")
    assert t.pad_token == "</s>"
    t = _Tok(unk="<unk>")
    _ensure_pad_token(t, "m")
    assert t.pad_token == "<unk>"
    with pytest.raises(ConfigError, match="no pad, eos or unk"):
        _ensure_pad_token(_Tok(), "m")


def test_load_local_model_folder(tmp_path) -> None:
    bb = load_backbone("tiny-random-bert")
    bb.model.save_pretrained(tmp_path / "m")
    bb.tokenizer.save_pretrained(tmp_path / "m")
    loaded = load_backbone(str(tmp_path / "m"))
    assert not loaded.is_causal and loaded.fingerprint.startswith("hf:")
    a = extract_features(bb, TEXTS, device=pick_device("cpu"))[-1]
    b = extract_features(loaded, TEXTS, device=pick_device("cpu"))[-1]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_model_paths(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_backbone(str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="GGUF file"):
        load_backbone(str(tmp_path / "x.gguf"))


def test_device_cpu_and_lora_needs_peft(backbone) -> None:
    assert pick_device("cpu").device.type == "cpu"
    with pytest.raises(ConfigError):
        pick_device("gpu")
    try:
        import peft  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ConfigError, match="peft"):
            apply_lora(Classifier(backbone))


def test_lora_trains_adapters_and_head_only() -> None:
    pytest.importorskip("peft")
    torch.manual_seed(0)
    bb = load_backbone("tiny-random-llama")
    clf = apply_lora(Classifier(bb))
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in clf.named_parameters() if not p.requires_grad}
    ids = torch.tensor([[4, 10, 11, 12, 5], [4, 13, 14, 15, 5]])
    mask = torch.ones_like(ids)
    opt = torch.optim.SGD([p for p in clf.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(clf(ids, mask), torch.tensor([0, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in clf.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n
    lora_b = [p for n, p in clf.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero; training moved it
