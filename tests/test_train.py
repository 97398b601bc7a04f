"""Training loop: convergence, early stopping, gradient accumulation, and DDP (2 CPU processes,
gloo) giving the same model as one process."""

from __future__ import annotations

import datetime
import os

import numpy as np
import pytest
import torch

from selective_w2sg.experiment.dist import shutdown
from selective_w2sg.graph.errors import ConfigError
from selective_w2sg.experiment.models import Classifier, LinearHead, load_backbone, pick_device, tokenize
from selective_w2sg.experiment.training import (
    FeatureInputs, TokenInputs, TrainConfig, epoch_batches, predict_proba, train_classifier, val_score,
)

torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared 2-core machine

CPU = pick_device("cpu")


def _data(n: int = 200, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    return x, y


def _fit(x, y, cfg, loss="xent", seed=0):
    head = LinearHead(x.shape[1], torch.from_numpy(x.mean(0)), torch.from_numpy(x.std(0)))
    res = train_classifier(head, FeatureInputs(x[:150]), y[:150], FeatureInputs(x[150:]), y[150:], cfg, loss=loss,
                           seed=seed, device=CPU)
    return res, predict_proba(res.model, FeatureInputs(x), device=CPU)


def test_resolved_defaults() -> None:
    p = TrainConfig().resolved()
    assert (p.epochs, p.lr, p.micro_batch_size) == (40, 1e-2, 32)
    f = TrainConfig(mode="full").resolved()
    assert (f.epochs, f.lr, f.micro_batch_size) == (2, 5e-5, 8)
    with pytest.raises(ConfigError, match="mode"):
        TrainConfig(mode="qlora").resolved()
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0).resolved()


def test_probe_head_learns_and_is_deterministic() -> None:
    x, y = _data()
    res, p = _fit(x, y, TrainConfig(epochs=20))
    assert np.mean((p > 0.5) == y) > 0.9
    assert res.history and res.best_eval >= 0
    _, p2 = _fit(x, y, TrainConfig(epochs=20))
    np.testing.assert_array_equal(p, p2)


def test_early_stopping_keeps_best() -> None:
    x, y = _data()
    res, _ = _fit(x, y, TrainConfig(epochs=200, patience=2, lr=0.5))
    assert res.stopped_early
    best = max(h["val_acc"] for h in res.history)
    assert res.history[res.best_eval]["val_acc"] == best
    acc, _ = val_score(predict_proba(res.model, FeatureInputs(x[150:]), device=CPU), y[150:])
    assert acc == best


def test_gradient_accumulation_matches_one_big_batch() -> None:
    x, y = _data()
    _, a = _fit(x, y, TrainConfig(epochs=3, batch_size=16, micro_batch_size=16), loss="aux_conf")
    _, b = _fit(x, y, TrainConfig(epochs=3, batch_size=16, micro_batch_size=16), loss="aux_conf")
    _, c = _fit(x, y, TrainConfig(epochs=3, batch_size=16, micro_batch_size=4))
    _, d = _fit(x, y, TrainConfig(epochs=3, batch_size=16, micro_batch_size=16))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(c, d, atol=1e-5)


def test_bad_labels_refused() -> None:
    x, y = _data()
    with pytest.raises(ConfigError, match="shape"):
        train_classifier(LinearHead(8), FeatureInputs(x), y[:10], None, None, TrainConfig(), device=CPU)
    with pytest.raises(ConfigError, match="probabilities"):
        train_classifier(LinearHead(8), FeatureInputs(x), y + 1, None, None, TrainConfig(), device=CPU)


def test_epoch_batches_length_grouped() -> None:
    lengths = np.arange(100)
    batches = epoch_batches(100, 10, np.random.default_rng(0), lengths)
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    assert all(lengths[b].max() - lengths[b].min() == 9 for b in batches)  # one chunk: perfectly grouped
    assert [b.min() for b in batches] != sorted(b.min() for b in batches)  # but the batch order is shuffled


def test_full_mode_trains_tiny_model() -> None:
    bb = load_backbone("tiny-random-bert")
    texts = [f"t{i % 4} which\nAnswer: w{i % 7}" for i in range(48)]
    y = np.array([float(i % 7 < 3) for i in range(48)], dtype=np.float32)
    inp = TokenInputs(tokenize(bb, texts, 32), bb.tokenizer.pad_token_id, bb.tokenizer.padding_side)
    res = train_classifier(Classifier(bb), inp, y, inp, y, TrainConfig(mode="full", epochs=3, batch_size=16,
                           micro_batch_size=8, lr=1e-3), device=CPU)
    p = predict_proba(res.model, inp, device=CPU)
    assert p.shape == (48,) and np.all((p >= 0) & (p <= 1))
    assert res.steps > 0


# ------------------------------------------------------------------------------------------
# DDP: the same training under 2 gloo processes and under 1.


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as tdist

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))  # a dead peer fails fast
    try:
        x, y = _data(n=203)  # odd sizes: uneven shares per rank
        _, p = _fit(x, y, TrainConfig(epochs=4, batch_size=17, micro_batch_size=4, aux_window=40), loss="aux_conf")
        if rank == 0:
            np.save(out, p)
        shutdown()  # every rank done: leave the group cleanly
    finally:
        if tdist.is_initialized():  # a rank failed: no barrier, just leave
            tdist.destroy_process_group()


def test_ddp_two_processes_match_one(tmp_path) -> None:
    import torch.multiprocessing as mp

    x, y = _data(n=203)
    _, single = _fit(x, y, TrainConfig(epochs=4, batch_size=17, micro_batch_size=4, aux_window=40), loss="aux_conf")
    out = str(tmp_path / "ddp.npy")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    np.testing.assert_allclose(np.load(out), single, atol=1e-4)


def _token_fit(mode: str, causal: bool):
    """Full or LoRA training of a tiny random model (a causal LM: the classifier drops its
    vocabulary projection) on token inputs; returns the predictions."""
    bb = load_backbone("tiny-random-llama" if causal else "tiny-random-bert")
    texts = [f"t{i % 5} which\nAnswer: w{i % 7}" for i in range(37)]  # odd: uneven shares per rank
    y = np.array([float(i % 7 < 3) for i in range(37)], dtype=np.float32)
    inp = TokenInputs(tokenize(bb, texts, 32), bb.tokenizer.pad_token_id, bb.tokenizer.padding_side)
    torch.manual_seed(0)
    clf = Classifier(bb)
    if mode == "lora":
        from selective_w2sg.experiment.models import apply_lora

        clf = apply_lora(clf, r=4, dropout=0.0)
    for m in clf.modules():  # dropout masks are drawn per process: off, so the runs can agree
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    cfg = TrainConfig(mode=mode, epochs=2, batch_size=9, micro_batch_size=2, lr=1e-3, aux_window=20)
    res = train_classifier(clf, inp, y, None, None, cfg, loss="aux_conf", device=CPU)
    return predict_proba(res.model, inp, device=CPU)


def _ddp_token_worker(rank: int, world: int, init_file: str, out: str, mode: str, causal: bool) -> None:
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))  # a dead peer fails fast
    try:
        p = _token_fit(mode, causal)
        if rank == 1:
            np.save(out, p)
        shutdown()  # every rank done: leave the group cleanly
    finally:
        if tdist.is_initialized():  # a rank failed: no barrier, just leave
            tdist.destroy_process_group()


@pytest.mark.parametrize("mode,causal", [("full", False), ("lora", True)])
def test_ddp_full_and_lora_match_one_process(tmp_path, mode, causal) -> None:
    """torch DDP (gradient accumulation under no_sync, a sync in the last micro-batch's backward;
    9-example steps over 2 ranks in micro-batches of 2, the last step 1 example: one rank idle)
    takes the same optimiser steps as one process."""
    import torch.multiprocessing as mp

    if mode == "lora":
        pytest.importorskip("peft")
    single = _token_fit(mode, causal)
    out = str(tmp_path / "ddp.npy")
    mp.spawn(_ddp_token_worker, args=(2, str(tmp_path / "init"), out, mode, causal), nprocs=2, join=True)
    np.testing.assert_allclose(np.load(out), single, atol=1e-4)
    assert np.ptp(single) > 1e-3  # the models did learn something to compare


def test_anchored_head_fit_is_the_penalised_logistic_regression(rng) -> None:
    """The convex anchored head: C -> 0 keeps the anchor exactly; a large C on clean labels
    overrules a wrong anchor; the head's predictions equal the fitted model's."""
    from selective_w2sg.experiment.linear import fit_penalised_logistic
    from selective_w2sg.experiment.models import LinearHead
    from selective_w2sg.experiment.stages.fitting import Budget, fit_anchored_head
    from selective_w2sg.config import TrainConfig
    from selective_w2sg.experiment.training import FeatureInputs, predict_proba

    n, d = 400, 12
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    wrong = np.where(y == 1, -2.0, 2.0).astype(np.float32)  # an anchor that is always wrong
    inputs = FeatureInputs(x, wrong)
    cfg = TrainConfig(device="cpu")
    keep = fit_anchored_head(LinearHead(d), inputs, y, Budget(1e-8), "xent", cfg)
    p_keep = predict_proba(keep, inputs)
    assert np.mean((p_keep > 0.5) == (y == 1)) < 0.05  # still (nearly) the anchor: wrong everywhere
    free = fit_anchored_head(LinearHead(d), inputs, y, Budget(10.0), "xent", cfg)
    p_free = predict_proba(free, inputs)
    assert np.mean((p_free > 0.5) == (y == 1)) > 0.95
    m = fit_penalised_logistic(x, y, C=10.0, offset=wrong)
    np.testing.assert_allclose(p_free, m.predict(x, np.ones((n, 1)), wrong), atol=1e-4)
    # a plain head ignores the anchor: the same fit as a logistic regression without offset
    plain = fit_anchored_head(LinearHead(d), inputs, y, Budget(10.0, anchored=False), "xent", cfg)
    m0 = fit_penalised_logistic(x, y, C=10.0)
    np.testing.assert_allclose(predict_proba(plain, inputs), m0.predict(x, np.ones((n, 1))), atol=1e-4)
    aux = fit_anchored_head(LinearHead(d), inputs, y, Budget(10.0), "aux_conf", cfg)
    assert np.mean((predict_proba(aux, inputs) > 0.5) == (y == 1)) > 0.9


def test_max_steps_is_a_step_count_whatever_the_data_size() -> None:
    """--max-steps: the same number of optimiser steps on 100 or 1,000 examples (the last epoch
    cut short), where --epochs would scale with the data."""
    rng = np.random.default_rng(0)
    for n in (100, 1000):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.float32)
        cfg = TrainConfig(max_steps=7, batch_size=32, device="cpu")
        res = train_classifier(LinearHead(8), FeatureInputs(x), y, None, None, cfg, device=CPU)
        assert res.steps == 7
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig(max_steps=0)
