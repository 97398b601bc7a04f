"""Losses, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from selective_w2sg.graph.errors import ConfigError
from selective_w2sg.experiment.losses import AuxConfLoss, XentLoss, make_loss, soft_cross_entropy

torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared 2-core machine

LN3 = math.log(3.0)


def test_soft_cross_entropy_hand_checked() -> None:
    # logits (0, ln 3) -> q1 = 3/4
    logits = torch.tensor([[0.0, LN3]] * 3)
    target = torch.tensor([1.0, 0.0, 0.5])
    got = soft_cross_entropy(logits, target)
    want = [-math.log(0.75), -math.log(0.25), -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))]
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    assert XentLoss()(logits, target, step=0).tolist() == pytest.approx(want, abs=1e-6)


def test_aux_weight_ramps_linearly() -> None:
    loss = AuxConfLoss(aux_weight=0.8, warmup_steps=10)
    assert [loss.weight(s) for s in (0, 5, 10, 20)] == pytest.approx([0.0, 0.4, 0.8, 0.8])
    assert AuxConfLoss(aux_weight=0.8, warmup_steps=0).weight(0) == 0.8
    assert make_loss("aux_conf", total_steps=100, aux_warmup_frac=0.2).warmup_steps == 20  # type: ignore[union-attr]


def test_aux_conf_hand_checked() -> None:
    # probs q1 = 3/4 and 1/4; window is this batch: median threshold 0.5 -> hardened (1, 0)
    loss = AuxConfLoss(aux_weight=0.5, warmup_steps=0, window=100)
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0]])
    weak = torch.tensor([0.0, 0.0])
    got = loss(logits, weak, step=0)
    # targets: 0.5 * 0 + 0.5 * hard = (0.5, 0)
    want = [-(0.5 * math.log(0.75) + 0.5 * math.log(0.25)), -math.log(0.75)]
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    # at step 0 of a warm-up the aux term is off: plain cross-entropy against the weak labels
    ramp = AuxConfLoss(aux_weight=0.5, warmup_steps=4)
    assert ramp(logits, weak, step=0).tolist() == pytest.approx(soft_cross_entropy(logits, weak).tolist())


def test_threshold_comes_from_the_window_not_the_batch() -> None:
    loss = AuxConfLoss(aux_weight=1.0, warmup_steps=0, window=8)
    loss(torch.log(torch.tensor([[0.1, 0.9]] * 6)), torch.zeros(6), step=0)  # an earlier, confident step
    loss.end_step()
    # this batch alone has median 0.6; the window (six 0.9s of the previous step) says 0.9
    logits = torch.log(torch.tensor([[0.3, 0.7], [0.5, 0.5]]))
    got = loss(logits, torch.zeros(2), step=0)
    assert loss.threshold() == pytest.approx(0.9)
    # q1 = 0.7 is not above 0.9 -> hardened to 0, so the loss is -ln(1 - q1)
    assert got.tolist() == pytest.approx([-math.log(0.3), -math.log(0.5)], abs=1e-6)


def test_window_drops_whole_old_batches() -> None:
    loss = AuxConfLoss(window=4)
    for v in (0.1, 0.2, 0.3):
        loss.observe(torch.full((3,), v))
    # the newest batches that still hold >= 4 predictions: (0.2 x3, 0.3 x3)
    assert sorted(torch.cat(list(loss.window)).tolist()) == pytest.approx([0.2] * 3 + [0.3] * 3)


def test_loss_arguments_checked() -> None:
    with pytest.raises(ConfigError):
        AuxConfLoss(aux_weight=1.5)
    with pytest.raises(ConfigError):
        AuxConfLoss(window=0)
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss("hinge", total_steps=1)
