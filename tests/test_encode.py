"""The encode pass: one forward per distinct text, self-labels from option scores."""

from __future__ import annotations

import datetime
from dataclasses import replace

import numpy as np
import pytest
import torch

from selective_w2sg.experiment.dist import shutdown
from selective_w2sg.experiment.encode import COSINE_TEMPERATURE, EncodeStats, encode_questions
from selective_w2sg.experiment.models import Backbone, load_backbone, pick_device
from selective_w2sg.experiment.tasks import build_splits, format_example

from conftest import count_rows


@pytest.fixture(scope="module")
def splits():
    return build_splits("synthetic", seed=0, n_weak=20, n_w2s=60, n_test=20)


def encode_splits(backbone, examples, questions, among="presented", **kw):
    """Encode every split's questions in one pass; per-example arrays per split."""
    enc = encode_questions(backbone, [q for qs in questions.values() for q in qs], **kw)
    return {split: enc.for_examples(exs, among) for split, exs in examples.items()}


@torch.inference_mode()
def reference_option_ll(backbone, question: str, option: str) -> float:
    """Mean log-likelihood of the option's tokens, one unpadded example at a time."""
    tok = backbone.tokenizer
    full = tok(format_example(question, option))["input_ids"]
    prefix = tok(format_example(question, "").rstrip())["input_ids"]
    start = next((i for i, (a, b) in enumerate(zip(full, prefix)) if a != b), len(prefix))
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    dev = next(backbone.model.parameters()).device  # the encode pass may have moved it to a GPU
    logits = backbone.model(input_ids=torch.tensor([full], device=dev)).logits[0].float().cpu()
    logp = torch.log_softmax(logits, -1)
    return float(np.mean([logp[p - 1, full[p]].item() for p in range(start, len(full)) if full[p] not in special]))


def test_causal_self_labels_match_one_at_a_time_reference(splits):
    bb = load_backbone("tiny-random-llama")
    out_all = encode_splits(bb, splits.examples, splits.questions, among="all", batch_size=7)
    out = encode_splits(bb, splits.examples, splits.questions, batch_size=7)  # among the presented pair
    for split in ("weak_train", "test"):
        exs = splits.examples[split]
        for i, e in list(enumerate(exs))[:6]:
            lls = np.array([reference_option_ll(bb, e.question, o) for o in e.options])
            probs = np.exp(lls - lls.max()) / np.exp(lls - lls.max()).sum()
            assert out_all[split].self_prob[i] == pytest.approx(probs[e.option_index], abs=2e-4)
            assert out_all[split].self_label[i] == float(np.argmax(probs) == e.option_index)
            partner = next(f for j, f in enumerate(exs) if f.question_id == e.question_id and j != i)
            pair = probs[[e.option_index, partner.option_index]]
            assert out[split].self_prob[i] == pytest.approx(pair[0] / pair.sum(), abs=2e-4)
            assert out[split].self_label[i] == float(pair[0] > pair[1])
        # among the presented candidates, each question has exactly one own answer
        assert (out[split].self_label.reshape(-1, 2).sum(1) == 1).all()


def test_encoder_self_labels_are_question_answer_cosine(splits):
    bb = load_backbone("tiny-random-bert")
    out = encode_splits(bb, splits.examples, splits.questions, among="all")
    from selective_w2sg.experiment.models import extract_features

    e = splits.examples["w2s_train"][3]
    vecs = extract_features(bb, [e.question, *e.options])[-1]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cos = vecs[1:] @ vecs[0]
    z = np.exp((cos - cos.max()) / COSINE_TEMPERATURE)
    assert out["w2s_train"].self_prob[3] == pytest.approx(z[e.option_index] / z.sum(), abs=1e-4)


@pytest.mark.parametrize("model", ["tiny-random-llama", "tiny-random-bert"])
def test_one_pass_per_distinct_text(splits, model):
    bb = load_backbone(model)
    seen = count_rows(bb)
    stats = EncodeStats()
    out = encode_splits(bb, splits.examples, splits.questions, stats=stats)
    qs = [q for s in splits.questions.values() for q in s]
    distinct = {format_example(q.question, o) for q in qs for o in q.options}
    if not bb.is_causal:
        distinct |= {q.question for q in qs} | {o for q in qs for o in q.options}
    assert seen["rows"] == len(distinct) == stats.texts
    for split, exs in splits.examples.items():
        o = out[split]
        assert o.embedding.shape == (len(exs), bb.hidden_size) and o.features.shape == o.embedding.shape
        np.testing.assert_allclose(np.linalg.norm(o.embedding, axis=1), 1.0, atol=1e-5)
        assert set(np.unique(o.self_label)) <= {0.0, 1.0}
        # every question has exactly one own answer among its options; a pair of examples holds at most one
        pairs = o.self_label.reshape(-1, 2).sum(1)
        assert pairs.max() <= 1


@torch.inference_mode()
def test_causal_scores_under_left_truncation_are_the_answer_tokens():
    """Texts longer than max_length are cut from the left: the score is still the mean
    log-likelihood of the answer's own tokens (counted on the untruncated text), and an option
    none of whose tokens survive scores lowest, never 0 (the best possible)."""
    from selective_w2sg.experiment.encode import _forward, _softmax_rows
    from selective_w2sg.experiment.models import pick_device, tokenize

    bb = load_backbone("tiny-random-llama")
    long_q = " ".join(["f1", "f2", "f3"] * 12)
    texts = [format_example(long_q, "w1 w2 w3"), format_example("short", "w4")]
    prefixes = [format_example(long_q, "").rstrip(), format_example("short", "").rstrip()]
    max_length = 12
    _, ll = _forward(bb, texts, prefixes, [-1], batch_size=4, max_length=max_length, device=pick_device("cpu"),
                     stats=EncodeStats(), progress=None)
    ids = tokenize(bb, texts, max_length)
    full = bb.tokenizer(texts)["input_ids"]
    pre = bb.tokenizer(prefixes)["input_ids"]
    for i in range(2):
        n_answer = len(full[i]) - next(k for k, (a, b) in enumerate(zip(full[i] + [-1], pre[i] + [-2])) if a != b)
        dev = next(bb.model.parameters()).device
        logp = torch.log_softmax(bb.model(input_ids=torch.tensor([ids[i]], device=dev)).logits[0].float().cpu(), -1)
        start = len(ids[i]) - n_answer
        special = set(bb.tokenizer.all_special_ids) - {bb.tokenizer.unk_token_id}
        want = np.mean([logp[p - 1, ids[i][p]].item() for p in range(start, len(ids[i])) if ids[i][p] not in special])
        assert ll[i] == pytest.approx(want, abs=1e-4)
    assert len(full[0]) > max_length  # the first text really was cut
    # an option with no scored token: probability 0 beside a scored one; uniform when none is scored
    p = _softmax_rows([np.array([-2.0, np.nan, -3.0]), np.array([np.nan, np.nan])], 1.0)
    assert p[0][1] == 0.0 and p[0][0] > p[0][2] and p[1].tolist() == [0.5, 0.5]


def _questions(splits):
    return [q for qs in splits.questions.values() for q in qs]


@pytest.mark.parametrize("max_length,pooling", [(256, "last"), (12, "last"), (256, "mean")])
def test_shared_prefix_equals_whole_texts(splits, max_length, pooling, monkeypatch):
    """A question's context computed once (options continue from its key/value cache) gives the
    whole-text numbers up to float rounding, with fewer tokens computed; also when texts are cut
    from the left (max_length 12: the options' cuts differ, so little or nothing is shared) and for
    mean pooling (the prefix's states count in every option's mean)."""
    monkeypatch.setattr(Backbone, "default_pooling", property(lambda self: pooling))
    bb = load_backbone("tiny-random-llama")
    qs = _questions(splits)
    # a question whose options repeat, and that shares an option text with another question
    dup = replace(qs[0], question_id="dup", options=(qs[0].options[0], qs[0].options[0], "w1 w2"), gold=0)
    qs = [*qs, dup]
    plain, shared = EncodeStats(), EncodeStats()
    a = encode_questions(bb, qs, batch_size=7, max_length=max_length, share_prefix=False, stats=plain)
    b = encode_questions(bb, qs, batch_size=7, max_length=max_length, share_prefix=True, stats=shared)
    for name in ("embedding", "hidden", "features", "option_prob"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=2e-5, rtol=1e-5, err_msg=name)
    np.testing.assert_array_equal(b.is_own_answer, a.is_own_answer)
    assert plain.texts == shared.texts
    if max_length == 256:
        assert shared.tokens < 0.7 * plain.tokens  # the question is most of every option's text
    else:
        assert shared.tokens <= plain.tokens


def _sharded_worker(rank: int, world: int, init_file: str, out: str, share: bool) -> None:
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))  # a dead peer fails fast
    try:
        sp = build_splits("synthetic", seed=0, n_weak=20, n_w2s=60, n_test=20)
        enc = encode_questions(load_backbone("tiny-random-llama"), _questions(sp), batch_size=7, share_prefix=share,
                               device=pick_device("cpu"))
        if rank == 1:  # a rank that computed only its share: it must hold every row after the gather
            np.savez(out, features=enc.features, embedding=enc.embedding, option_prob=enc.option_prob)
        shutdown()  # every rank done: leave the group cleanly
    finally:
        if tdist.is_initialized():  # a rank failed: no barrier, just leave
            tdist.destroy_process_group()


@pytest.mark.parametrize("share", [True, False])
def test_sharded_encode_is_bit_identical_to_one_process(splits, tmp_path, share):
    import torch.multiprocessing as mp

    torch.set_num_threads(1)
    one = encode_questions(load_backbone("tiny-random-llama"), _questions(splits), batch_size=7, share_prefix=share,
                           device=pick_device("cpu"))
    out = str(tmp_path / "sharded.npz")
    mp.spawn(_sharded_worker, args=(2, str(tmp_path / "init"), out, share), nprocs=2, join=True)
    got = np.load(out)
    for name in ("features", "embedding", "option_prob"):
        np.testing.assert_array_equal(got[name], getattr(one, name), err_msg=name)


@pytest.mark.parametrize("model", ["tiny-random-llama", "tiny-random-bert"])
def test_token_budget_changes_batches_not_results(splits, model):
    """max_tokens caps every forward pass's padded tokens; the outputs are the same numbers."""
    bb = load_backbone(model)
    qs = _questions(splits)
    seen = count_rows(bb)
    a = encode_questions(bb, qs, batch_size=64)
    calls_a = seen["rows"]
    st = EncodeStats()
    b = encode_questions(bb, qs, batch_size=64, max_tokens=40, stats=st)
    for name in ("embedding", "features", "option_prob"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=2e-5, rtol=1e-5, err_msg=name)
    np.testing.assert_array_equal(b.is_own_answer, a.is_own_answer)
    assert seen["rows"] == 2 * calls_a  # every text once per pass
    assert st.padded_tokens / st.forward_calls <= 40
