"""`--shard full`: FSDP2 (`fully_shard`) training over 2 CPU processes (gloo) takes the same steps
as one process (per-step training losses, validation history, predictions), holds about half the
parameter and optimiser bytes per rank, and is refused where it cannot apply."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import torch

from selective_w2sg.experiment.dist import shutdown
from selective_w2sg.graph.errors import ConfigError
from selective_w2sg.experiment.models import Classifier, load_backbone, pick_device, tokenize, transformer_blocks
from selective_w2sg.config import TrainConfig
from selective_w2sg.experiment.training import TokenInputs, predict_proba, train_classifier

torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared 2-core machine

CPU = pick_device("cpu")
# fp32 on the CPU; what differs is only the order of additions (a reduce-scatter of two ranks'
# partial gradients instead of one sum), as for the DDP tests.
ATOL_PRED = 1e-4
RTOL_LOSS = 1e-4


COLLECTIVES = {"all_gather_single": 0, "reduce_scatter_single": 0}


def _count_collectives() -> None:
    """Count FSDP2's all-gathers and reduce-scatters (it calls them through torch.distributed)."""
    import torch.distributed as tdist

    for name in COLLECTIVES:
        inner = getattr(tdist, name)

        def counted(*a, _inner=inner, _name=name, **kw):  # noqa: ANN002, ANN003
            COLLECTIVES[_name] += 1
            return _inner(*a, **kw)

        setattr(tdist, name, counted)


def _record(log: dict[int, float], gathers: dict[int, list[int]]):
    """Wrap train.make_loss so that every step's summed per-example loss (this rank's part) lands
    in `log`, and the all-gathers counted so far at each micro-batch's loss in `gathers`."""
    import selective_w2sg.experiment.training as T

    inner_make = T.make_loss

    class Recorded:
        def __init__(self, inner) -> None:  # noqa: ANN001
            self.inner = inner

        def __call__(self, logits, y, step):  # noqa: ANN001
            out = self.inner(logits, y, step)
            log[step] = log.get(step, 0.0) + float(out.detach().sum())
            gathers.setdefault(step, []).append(COLLECTIVES["all_gather_single"])
            return out

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    T.make_loss = lambda *a, **kw: Recorded(inner_make(*a, **kw))  # type: ignore[assignment]
    return inner_make


def _fit(model: str, shard: str, mode: str = "full", ckpt: bool = False) -> dict[str, object]:
    """Full (or LoRA) training of a tiny model with validation (early stopping keeps the best
    weights), `ckpt`: with gradient checkpointing; returns predictions, per-step loss sums,
    validation history and state bytes."""
    import selective_w2sg.experiment.training as T

    bb = load_backbone(model)
    texts = [f"t{i % 5} which\nAnswer: w{i % 7}" for i in range(37)]  # odd: uneven shares per rank
    y = np.array([float(i % 7 < 3) for i in range(37)], dtype=np.float32)
    inp = TokenInputs(tokenize(bb, texts, 32), bb.tokenizer.pad_token_id, bb.tokenizer.padding_side)
    torch.manual_seed(0)  # every rank builds the same weights
    clf = Classifier(bb, gradient_checkpointing=ckpt)
    if mode == "lora":
        from selective_w2sg.experiment.models import apply_lora

        clf = apply_lora(clf, r=4, dropout=0.0)
    for m in clf.modules():  # dropout masks are drawn per process: off, so the runs can agree
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    # 9-example steps over 2 ranks in micro-batches of 2: ranks with 3 and 2 micro-batches, the
    # last step 1 example (one rank idle); a small clipping norm, so clipping is active.
    cfg = TrainConfig(mode=mode, epochs=2, batch_size=9, micro_batch_size=2, lr=1e-3, aux_window=20,
                      max_grad_norm=0.05, evals_per_epoch=2, patience=10, shard=shard)
    log: dict[int, float] = {}
    gathers: dict[int, list[int]] = {}
    inner = _record(log, gathers)
    scatters = COLLECTIVES["reduce_scatter_single"]
    try:
        res = train_classifier(clf, inp, y, inp.subset(np.arange(20)), y[:20], cfg, loss="aux_conf", device=CPU)
    finally:
        T.make_loss = inner  # type: ignore[assignment]
    pred = predict_proba(res.model, inp, device=CPU)
    if shard != "none":  # after training and predicting, a rank holds only its shards (nothing left gathered)
        from torch.distributed.tensor import DTensor

        assert all(isinstance(p, DTensor) for p in res.model.parameters())
    return {"pred": pred, "losses": np.array([log.get(k, 0.0) for k in range(res.steps)]),
            "val": np.array([[h["val_acc"], h["val_loss"]] for h in res.history]), "best": res.best_eval,
            "bytes": res.state_bytes, "steps": res.steps,
            "gathers_within_step": max(g[-1] - g[0] for g in gathers.values()),
            "micro_batches": max(len(g) for g in gathers.values()),
            "scatters_per_step": (COLLECTIVES["reduce_scatter_single"] - scatters) / res.steps,
            "units": sum(1 for m in res.model.modules() if type(m).__name__.startswith("FSDP"))}


def _clip(model: str, sharded: bool) -> tuple[float, np.ndarray]:
    """One backward of a tiny model on a fixed batch (the same on every rank), then
    clip_grad_norm_: (the total norm it saw, every clipped gradient flattened in parameter
    order). Sharded: the gradients are DTensor shards, their norm must be the whole model's."""
    from selective_w2sg.experiment import dist
    from selective_w2sg.experiment.training import _local

    bb = load_backbone(model)
    torch.manual_seed(0)
    clf = Classifier(bb)
    if sharded:
        dist.fully_shard_model(clf, transformer_blocks(clf), CPU.device, bf16=False)
    ids = tokenize(bb, [f"t{i} which\nAnswer: w{i}" for i in range(6)], 16)
    batch = TokenInputs(ids, bb.tokenizer.pad_token_id, bb.tokenizer.padding_side).batch(np.arange(6), CPU.device)
    clf(**batch).square().sum().backward()
    norm = torch.nn.utils.clip_grad_norm_(list(clf.parameters()), 0.01)
    grads = []
    for p in clf.parameters():
        g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
        grads.append(_local(g).reshape(-1))
    full = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    return float(full), torch.cat(grads).numpy()


def _worker(rank: int, world: int, init_file: str, out: str, model: str, mode: str, shard: str, ckpt: bool) -> None:
    """`mode` full / lora: `_fit` with `shard`; clip: `_clip` sharded."""
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))  # a dead peer fails fast
    try:
        _count_collectives()
        if mode == "clip":
            norm, grads = _clip(model, sharded=True)
            r: dict[str, object] = {"clip_norm": norm, "clip_grads": grads}
        else:
            r = _fit(model, shard, mode, ckpt)
        np.savez(f"{out}.{rank}.npz", **{k: np.asarray(v) for k, v in r.items()})
        shutdown()  # every rank done: leave the group cleanly
    finally:
        if tdist.is_initialized():  # a rank failed: no barrier, just leave
            tdist.destroy_process_group()


def _two_ranks(tmp_path, model: str, mode: str = "full", shard: str = "full", ckpt: bool = False
               ) -> list[dict[str, np.ndarray]]:
    import torch.multiprocessing as mp

    out = str(tmp_path / "fsdp")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), out, model, mode, shard, ckpt), nprocs=2, join=True)
    return [dict(np.load(f"{out}.{r}.npz")) for r in range(2)]


@pytest.mark.parametrize("model,shard,ckpt", [("tiny-random-llama", "full", False), ("tiny-random-bert", "full", False),
                                              ("tiny-random-llama", "full-lowmem", True)])
def test_fsdp_two_processes_match_one(tmp_path, model, shard, ckpt) -> None:
    """FSDP2 over 2 ranks (gradient accumulation without communication, or with it under
    full-lowmem; an idle rank; active clipping of sharded gradients; evaluations between steps;
    the best weights restored; gradient checkpointing in the layers FSDP gathers) takes the same
    optimiser steps as one unsharded process, to fp32 rounding; each rank holds about half of the
    parameter and AdamW bytes."""
    single = _fit(model, "none", ckpt=ckpt)
    ranks = _two_ranks(tmp_path, model, shard=shard, ckpt=ckpt)
    for r in ranks:  # predictions are gathered: every rank has all of them
        np.testing.assert_allclose(r["pred"], single["pred"], atol=ATOL_PRED)
        np.testing.assert_allclose(r["val"], single["val"], rtol=RTOL_LOSS, atol=1e-6)
        assert int(r["best"]) == single["best"] and int(r["steps"]) == single["steps"]
    # each rank computed its examples' share of every step's loss
    np.testing.assert_allclose(ranks[0]["losses"] + ranks[1]["losses"], single["losses"], rtol=RTOL_LOSS)
    assert np.ptp(single["pred"]) > 1e-3  # the models did learn something to compare
    # Per rank: its shard of every weight and of AdamW's two moments (+ the replicated step
    # counters, a few bytes): about half, and the two halves add up to the whole.
    one, per_rank = int(single["bytes"]), [int(r["bytes"]) for r in ranks]
    assert all(0.45 * one <= b <= 0.55 * one for b in per_rank), (one, per_rank)
    assert abs(sum(per_rank) - one) <= 0.01 * one, (one, per_rank)
    # Gradient accumulation without communication: one reduce-scatter per FSDP unit (2 blocks +
    # the root) per step, whatever the micro-batch count (up to 3 on rank 0, 2 on rank 1: the
    # ranks' collectives still pair up), and no all-gather between the first micro-batch's
    # forward and the last one's.
    assert [int(r["micro_batches"]) for r in ranks] == [3, 2]
    for r in ranks:
        assert int(r["units"]) == 3
        if shard == "full":
            assert float(r["scatters_per_step"]) == 3.0 and int(r["gathers_within_step"]) == 0
        else:  # full-lowmem: every micro-batch gathers and reduce-scatters (rank 1 pads with zero-loss ones)
            assert float(r["scatters_per_step"]) > 3.0 and int(r["gathers_within_step"]) > 0


def test_clipping_sharded_gradients_uses_the_whole_norm(tmp_path) -> None:
    """clip_grad_norm_ on FSDP2's DTensor gradient shards: the norm over all ranks' shards (not
    each rank's own), so the clipped gradients equal one process's."""
    norm, grads = _clip("tiny-random-llama", sharded=False)
    assert norm > 0.01  # clipping is active
    for r in _two_ranks(tmp_path, "tiny-random-llama", "clip"):
        np.testing.assert_allclose(float(r["clip_norm"]), norm, rtol=1e-5)
        np.testing.assert_allclose(r["clip_grads"], grads, rtol=1e-4, atol=1e-9)


def test_fsdp_lora_matches_one_process(tmp_path) -> None:
    """LoRA under FSDP2 (frozen and trainable weights in one sharded unit) also takes one process's steps."""
    pytest.importorskip("peft")
    single = _fit("tiny-random-llama", "none", "lora")
    for r in _two_ranks(tmp_path, "tiny-random-llama", "lora"):
        np.testing.assert_allclose(r["pred"], single["pred"], atol=ATOL_PRED)


def test_transformer_blocks_found_generically() -> None:
    for name, n in (("tiny-random-llama", 2), ("tiny-random-bert", 2)):
        blocks = transformer_blocks(Classifier(load_backbone(name)))
        assert len(blocks) == n and len({type(b) for b in blocks}) == 1
        assert "Layer" in type(blocks[0]).__name__
    assert transformer_blocks(torch.nn.Linear(2, 2)) == []


def test_shard_full_refused_where_it_cannot_apply() -> None:
    with pytest.raises(ConfigError, match="probe"):
        TrainConfig(mode="probe", shard="full")
    with pytest.raises(ConfigError, match="shard"):
        TrainConfig(mode="full", shard="zero3")
    bb = load_backbone("tiny-random-bert")
    inp = TokenInputs(tokenize(bb, ["a b", "c d"], 8), bb.tokenizer.pad_token_id, bb.tokenizer.padding_side)
    with pytest.raises(ConfigError, match="distributed run"):  # one process: nothing to shard over
        train_classifier(Classifier(bb), inp, np.array([0.0, 1.0], np.float32), None, None,
                         TrainConfig(mode="full", shard="full", epochs=1), device=CPU)
    # the default leaves cache keys as they were; full is part of them
    assert "shard" not in TrainConfig(mode="full").to_dict()
    assert TrainConfig(mode="full", shard="full").to_dict()["shard"] == "full"


@pytest.mark.slow
def test_cli_under_torchrun_shard_full_matches_ddp(tmp_path) -> None:
    """`torchrun --nproc_per_node 2 -m selective_w2sg.cli train --mode full --shard full` runs
    end to end (weak, ceiling and a student, all sharded) and its test predictions equal the
    DDP run's (`--shard none`) to fp32 rounding. (Against one process they differ by the dropout
    masks each process draws, in DDP alike: ~2e-3 here.)"""
    import os
    import subprocess
    import sys

    preds = {}
    for shard in ("full", "none"):
        out = tmp_path / shard
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "selective_w2sg.cli", "train", "--task", "synthetic", "--weak", "tiny-random-bert",
                "--strong", "tiny-random-llama", "--mode", "full", "--shard", shard, "--device", "cpu",
                "--n-weak", "20", "--n-w2s", "50", "--n-test", "20", "--epochs", "1", "--students", "naive",
                "--max-length", "64", "--batch-size", "16", "--micro-batch-size", "4", "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SW2S_NUM_THREADS": "1"}
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        preds[shard] = np.load(out / "seed0" / "test_predictions.npz")["preds"]
    np.testing.assert_allclose(preds["full"], preds["none"], atol=1e-5)


@pytest.mark.parametrize("args,needle", [(["--shard", "full"], "--mode probe"),  # probe is the default mode
                                         (["--mode", "full", "--shard", "full"], "needs a distributed run")])
def test_cli_refuses_shard_full_where_it_cannot_apply(tmp_path, args, needle) -> None:
    """A ConfigError, one line, exit 1: with probe heads at once; in one process at the first training."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "from selective_w2sg.cli import main; main()", "train", "--task",
                        "synthetic", "--weak", "tiny-random-bert", "--strong", "tiny-random-bert", "--n-weak", "20",
                        "--n-w2s", "50", "--n-test", "20", "--device", "cpu", "--out", str(tmp_path / "run"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
