"""One prepared GPU check of the package's model-running paths, for a GPU machine it has never run
on, with no network and no hub (every model is built from a config in code).

    python benches/gpu_check.py --out DIR                              # CUDA (bf16 autocast), < 8 min on an H200
    python benches/gpu_check.py --out DIR --device cpu --tiny          # CPU smoke run (tests/test_gpu_check.py)
    python benches/gpu_check.py --out DIR --only unit,hf_encode        # some sections only

Sections (each timed; each check wrapped, so one failing check does not stop the others):

  unit        (a) padding invariance of `extract_features` (a batch vs each text alone, left vs
              right padding), finite; (b) CPU-fp32 vs device `encode_questions`: features
              (cosine per row) and self-labels (share equal; every disagreement a near-tie);
              (c) `train_classifier` full and LoRA: loss finite, trainable parameters fp32 on the
              device, only the expected weights moving; (d) the DDP path with a world of 1
              (NCCL on CUDA, gloo on CPU) against the plain run.
  fsdp        `train_classifier` with --shard full (FSDP2 `fully_shard`) on a world of 1 (NCCL on
              CUDA, gloo on CPU), full and LoRA: the sharded path is taken, shards stay fp32 (master
              weights; bf16 compute copies on CUDA), predictions near the plain run's, finite
              losses; per-rank state bytes and (CUDA) peak memory of both runs.
  e2e         `python -m selective_w2sg.cli train` (the `sw2s` entry point), --mode full and
              --mode lora, tiny built-in models on the synthetic task: exit 0, results.json with
              finite accuracies for every model.
  hf_encode   a Qwen2.5-0.5B-shaped random model saved with save_pretrained (+ the built-in
              word-level tokenizer), loaded through `load_backbone(path)`, `encode_questions` with
              share_prefix True and False (they must agree); texts/s and tokens.
  throughput  full-mode training of the same shape with `train_classifier` (bf16 autocast):
              tokens/s after warm-up, MFU, peak memory, loss finite.

Every result is written to DIR/gpu_check.json (atomically, after every check), a summary is
printed at the end, and the exit status is 1 if any check failed.

Tolerances. Two computations of the same features that differ only in batch shape, padding side
or prefix sharing round differently. In fp32 we allow a relative row error of 1e-4 (~1e3 fp32
ulps: accumulation order only). Under bf16 autocast every one of the L + 1 stages (embeddings,
L layers) rounds its output to bf16 (unit roundoff u = 2^-8); independent rounding errors add in
quadrature, so we allow a relative L2 error per row of 4 u sqrt(L + 1) (0.027 for the 2-layer
tiny models, 0.078 for 24 layers). Self-labels (an argmax over options) may only differ where the
reference run's top two options are within a log-probability margin of 0.25 (bf16) / 1e-3 (fp32).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

SECTIONS = ("unit", "fsdp", "e2e", "hf_encode", "throughput")
BF16_U = 2.0**-8
FP32_REL_TOL = 1e-4


class CheckFailed(AssertionError):
    pass


def require(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


# --------------------------------------------------------------------------------------------
# The report: every check's result, written atomically after each check.


class Report:
    def __init__(self, path: Path, meta: dict[str, Any], deadline_s: float | None = None) -> None:
        self.path = path
        self.t0 = time.perf_counter()
        self.deadline_s = deadline_s
        self.data: dict[str, Any] = {"ok": None, "finished": False, "meta": meta, "sections": {}}
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=_jsonable, allow_nan=True))
        os.replace(tmp, self.path)

    def remaining(self) -> float:
        """Seconds left before --deadline-s (inf without one)."""
        if self.deadline_s is None:
            return math.inf
        return self.deadline_s - (time.perf_counter() - self.t0)

    def section(self, name: str) -> dict[str, Any]:
        return self.data["sections"].setdefault(name, {"ok": None, "seconds": 0.0, "checks": {}})

    def run(self, section: str, name: str, fn: Callable[[], dict[str, Any] | None]) -> bool:
        sec = self.section(section)
        print(f"[{section}] {name} ...", flush=True)
        t = time.perf_counter()
        entry: dict[str, Any] = {"ok": False}
        try:
            if self.remaining() <= 0:
                entry["skipped"] = True
                raise CheckFailed(f"not run: the --deadline-s of {self.deadline_s:.0f} s had passed")
            entry["figures"] = fn() or {}
            entry["ok"] = True
        except BaseException as e:  # noqa: BLE001 - one failing check must not stop the others
            if isinstance(e, KeyboardInterrupt):
                raise
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()[-4000:]
        entry["seconds"] = round(time.perf_counter() - t, 3)
        sec["checks"][name] = entry
        sec["seconds"] = round(sum(c["seconds"] for c in sec["checks"].values()), 3)
        sec["ok"] = all(c["ok"] for c in sec["checks"].values())
        self.write()
        status = "ok" if entry["ok"] else f"FAIL ({entry['error'][:300]})"
        print(f"[{section}] {name}: {status} in {entry['seconds']:.1f}s", flush=True)
        _free_memory()
        return bool(entry["ok"])

    def finish(self) -> bool:
        ok = all(s["ok"] for s in self.data["sections"].values()) and bool(self.data["sections"])
        self.data["ok"] = ok
        self.data["finished"] = True
        self.data["meta"]["datasets_imported"] = "datasets" in sys.modules and sys.modules["datasets"] is not None
        self.write()
        return ok


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (Path, torch.device, torch.dtype)):
        return str(x)
    return repr(x)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# Helpers


class Ctx:
    """What every check needs: the device, its precision, the sizes, the output folder."""

    def __init__(self, args: argparse.Namespace, rep: Report) -> None:
        from selective_w2sg.experiment.models import pick_device

        self.args = args
        self.rep = rep
        self.tiny: bool = args.tiny
        self.out: Path = args.out
        self.dev = pick_device(args.device)
        if args.device == "cpu" and args.cpu_bf16:  # rehearse the bf16 paths and tolerances on a CPU
            from selective_w2sg.experiment.models import Device

            self.dev = Device(torch.device("cpu"), True)
        self.cpu = pick_device("cpu")
        self.cuda = self.dev.device.type == "cuda"
        self.bf16 = self.dev.bf16

    def rel_tol(self, n_layers: int) -> float:
        """Allowed relative L2 error per row between two computations of the same features."""
        return 4 * BF16_U * math.sqrt(n_layers + 1) if self.bf16 else FP32_REL_TOL

    @property
    def tie_margin(self) -> float:
        return 0.25 if self.bf16 else 1e-3

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.dev.device)


def row_rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: ||a - b|| / ||b||."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a64 - b64, axis=1) / np.maximum(np.linalg.norm(b64, axis=1), 1e-30)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = (a64 * b64).sum(1)
    return num / np.maximum(np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1), 1e-30)


def n_layers_of(backbone: Any) -> int:
    return int(getattr(backbone.model.config, "num_hidden_layers", 2))


def self_label_agreement(ref: Any, other: Any, qids: list[str], margin: float) -> dict[str, Any]:
    """Question-level argmax agreement of two EncodedQuestions; every disagreement must be a
    near-tie of the reference (its top two options within `margin` in log-probability)."""
    agree, flips, non_ties = 0, 0, []
    for qid in qids:
        o1, o2 = ref.offsets[qid], other.offsets[qid]
        n_opt = _n_options(ref, qid)
        p_ref = np.asarray(ref.option_prob[o1 : o1 + n_opt], np.float64)
        p_oth = np.asarray(other.option_prob[o2 : o2 + n_opt], np.float64)
        if int(np.argmax(p_ref)) == int(np.argmax(p_oth)):
            agree += 1
            continue
        flips += 1
        top2 = np.sort(np.log(np.maximum(p_ref, 1e-300)))[-2:]
        gap = float(top2[1] - top2[0])
        if gap >= margin:
            non_ties.append((qid, round(gap, 4)))
    share = agree / max(len(qids), 1)
    require(not non_ties, f"self-labels differ beyond near-ties (log-prob gap >= {margin}): {non_ties[:5]}")
    return {"self_label_share_equal": share, "self_label_flips": flips, "tie_margin": margin}


def _n_options(enc: Any, qid: str) -> int:
    starts = sorted(enc.offsets.values())
    o = enc.offsets[qid]
    i = starts.index(o)
    return (starts[i + 1] if i + 1 < len(starts) else len(enc.option_prob)) - o


@contextlib.contextmanager
def record_losses(store: list[torch.Tensor]):
    """Wrap the training loss so every micro-batch's mean loss is kept on the device (no host
    sync per step); checked for finiteness after the run."""
    import selective_w2sg.experiment.training as T

    orig = T.make_loss

    class _Rec:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __call__(self, logits: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
            per_ex = self.inner(logits, y, step)
            store.append(per_ex.detach().float().mean())
            return per_ex

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    T.make_loss = lambda *a, **k: _Rec(orig(*a, **k))  # type: ignore[assignment]
    try:
        yield
    finally:
        T.make_loss = orig  # type: ignore[assignment]


def loss_figures(store: list[torch.Tensor]) -> dict[str, Any]:
    require(len(store) > 0, "no loss was recorded (training took no step)")
    losses = torch.stack(store).cpu().double().numpy()
    bad = np.flatnonzero(~np.isfinite(losses))[:10].tolist()
    require(not bad, f"non-finite loss at micro-steps {bad}")
    return {"loss_first": float(losses[0]), "loss_last": float(losses[-1]), "loss_micro_steps": len(losses)}


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    from selective_w2sg.experiment.tasks import format_example, synthetic_questions

    qs = synthetic_questions(n, seed=seed)
    return [format_example(q.question, q.options[i % len(q.options)]) for i, q in enumerate(qs)]


# --------------------------------------------------------------------------------------------
# Section 1: unit


def check_padding(ctx: Ctx) -> dict[str, Any]:
    from selective_w2sg.experiment.models import extract_features, load_backbone

    texts = synthetic_texts(12 if ctx.tiny else 32, seed=3)
    figs: dict[str, Any] = {}
    for name in ("tiny-random-llama", "tiny-random-bert"):
        bb = load_backbone(name)
        tol = ctx.rel_tol(n_layers_of(bb))
        tok = bb.tokenizer
        lens = [len(x) for x in tok(texts)["input_ids"]]
        require(len(set(lens)) > 1, "texts of one length: padding would not be exercised")
        native = tok.padding_side
        batch = extract_features(bb, texts, batch_size=len(texts), device=ctx.dev)[-1]
        alone = np.concatenate([extract_features(bb, [t], batch_size=1, device=ctx.dev)[-1] for t in texts])
        tok.padding_side = "right" if native == "left" else "left"
        try:
            flipped = extract_features(bb, texts, batch_size=len(texts), device=ctx.dev)[-1]
        finally:
            tok.padding_side = native
        for label, arr in (("batch", batch), ("alone", alone), ("other_side", flipped)):
            require(bool(np.isfinite(arr).all()), f"{name}: non-finite features ({label})")
        e_alone = float(row_rel_err(batch, alone).max())
        e_side = float(row_rel_err(flipped, batch).max())
        figs[name] = {"native_padding": native, "max_rel_err_batch_vs_alone": e_alone,
                      "max_rel_err_left_vs_right": e_side, "tolerance": tol, "lengths": [min(lens), max(lens)]}
        require(e_alone <= tol, f"{name}: batch vs alone rel err {e_alone:.3g} > {tol:.3g}")
        require(e_side <= tol, f"{name}: left vs right padding rel err {e_side:.3g} > {tol:.3g}")
    return figs


def check_encode_cpu_vs_device(ctx: Ctx) -> dict[str, Any]:
    from selective_w2sg.experiment.encode import encode_questions
    from selective_w2sg.experiment.models import load_backbone
    from selective_w2sg.experiment.tasks import synthetic_questions

    qs = synthetic_questions(16 if ctx.tiny else 64, seed=5)
    qids = [q.question_id for q in qs]
    figs: dict[str, Any] = {}
    for name in ("tiny-random-llama", "tiny-random-bert"):
        bb = load_backbone(name)
        tol = ctx.rel_tol(n_layers_of(bb))
        ref = encode_questions(bb, qs, device=ctx.cpu, batch_size=16)  # CPU fp32 first: encode moves the model
        got = encode_questions(bb, qs, device=ctx.dev, batch_size=16)
        for field in ("features", "hidden", "option_prob"):
            require(bool(np.isfinite(getattr(got, field)).all()), f"{name}: non-finite {field} on {ctx.dev.device}")
        cos_f = row_cosine(got.features, ref.features)
        cos_h = row_cosine(got.hidden, ref.hidden)
        err_f = float(row_rel_err(got.features, ref.features).max())
        err_h = float(row_rel_err(got.hidden, ref.hidden).max())
        f = {"min_cosine_features": float(cos_f.min()), "min_cosine_hidden": float(cos_h.min()),
             "max_rel_err_features": err_f, "max_rel_err_hidden": err_h, "tolerance": tol,
             "max_abs_option_prob_diff": float(np.abs(got.option_prob - ref.option_prob).max())}
        figs[name] = f
        require(err_f <= tol and err_h <= tol, f"{name}: CPU vs {ctx.dev.device} rel err features {err_f:.3g}, "
                                               f"hidden {err_h:.3g} > {tol:.3g}")
        f.update(self_label_agreement(ref, got, qids, ctx.tie_margin))
    return figs


def _train_data(bb: Any, n: int, seed: int) -> tuple[Any, np.ndarray]:
    from selective_w2sg.experiment.models import tokenize
    from selective_w2sg.experiment.training import TokenInputs

    ids = tokenize(bb, synthetic_texts(n, seed=seed), 64)
    y = np.random.default_rng(seed).random(n).astype(np.float32)
    return TokenInputs(ids, bb.tokenizer.pad_token_id, bb.tokenizer.padding_side), y


def check_train(ctx: Ctx, mode: str) -> dict[str, Any]:
    from selective_w2sg.experiment.models import Classifier, apply_lora, load_backbone
    from selective_w2sg.config import TrainConfig
    from selective_w2sg.experiment.training import predict_proba, train_classifier

    bb = load_backbone("tiny-random-llama")
    torch.manual_seed(0)
    clf = Classifier(bb)
    if mode == "lora":
        clf = apply_lora(clf, r=4)
    before = {k: v.detach().to("cpu", copy=True) for k, v in clf.named_parameters()}
    inputs, y = _train_data(bb, 32, seed=7)
    cfg = TrainConfig(mode=mode, epochs=2, batch_size=8, micro_batch_size=4, lr=1e-3, device=ctx.args.device)
    losses: list[torch.Tensor] = []
    with record_losses(losses):
        res = train_classifier(clf, inputs, y, inputs, y, cfg, seed=0, device=ctx.dev)
    figs = loss_figures(losses)
    figs["steps"] = res.steps
    figs["val_loss"] = [h["val_loss"] for h in res.history]
    require(all(math.isfinite(h["val_loss"]) for h in res.history), f"non-finite validation loss {figs['val_loss']}")
    probs = predict_proba(res.model, inputs, device=ctx.dev)
    require(bool(np.isfinite(probs).all()), "non-finite predictions after training")
    trainable = [(k, p) for k, p in clf.named_parameters() if p.requires_grad]
    bad = [(k, str(p.dtype), str(p.device)) for k, p in trainable
           if p.dtype != torch.float32 or p.device.type != ctx.dev.device.type]
    require(not bad, f"trainable parameters not fp32 on {ctx.dev.device.type}: {bad[:5]}")
    after = {k: v.detach().to("cpu") for k, v in clf.named_parameters()}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    head = {k for k in before if k.startswith("head.")}
    lora = {k for k in before if "lora_" in k}
    base = set(before) - head - lora
    figs.update({"parameters": len(before), "trainable": len(trainable), "changed": len(changed),
                 "lora_tensors": len(lora)})
    require(head <= changed, f"head weights did not move: {sorted(head - changed)}")
    if mode == "lora":
        require(len(lora) > 0, "no LoRA adapter weights found")
        lora_b = {k for k in lora if "lora_B" in k}
        require(lora_b <= changed, f"LoRA B weights did not move: {sorted(lora_b - changed)[:5]}")
        require(not (base & changed), f"base weights moved under LoRA: {sorted(base & changed)[:5]}")
        require(all(not p.requires_grad for k, p in clf.named_parameters() if k in base), "base weights trainable")
    else:
        require(not lora, "LoRA weights in a full-mode model")
        unmoved = sorted(base - changed)
        require(not unmoved, f"backbone weights that did not move in full mode: {unmoved[:5]}")
    return figs


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def world_of_one(ctx: Ctx):  # noqa: ANN201
    """A process group of this process alone (NCCL on CUDA, gloo on CPU), left on exit; the
    launcher's environment variables are set meanwhile and restored after."""
    import datetime

    import torch.distributed as tdist

    from selective_w2sg.experiment import dist

    require(tdist.is_available(), "torch.distributed is not available")
    require(not dist.is_distributed(), "a process group is already initialised")
    backend = "nccl" if ctx.cuda else "gloo"
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0", "WORLD_SIZE": "1",
           "LOCAL_RANK": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        if ctx.cuda:
            torch.cuda.set_device(ctx.dev.device)
        # A short timeout: a collective that hangs fails this check instead of eating the device time.
        tdist.init_process_group(backend, rank=0, world_size=1, timeout=datetime.timedelta(seconds=120))
        yield backend
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_fsdp(ctx: Ctx, mode: str) -> dict[str, Any]:
    """--shard full on one rank against the plain run: FSDP2 shards over a mesh of 1, so every
    collective is a copy, yet the whole path (wrapping, mixed precision, DTensor clipping and
    AdamW, accumulation without sync, sharded prediction and best-weight restore) runs."""
    from selective_w2sg.experiment import dist
    from selective_w2sg.experiment.models import Classifier, apply_lora, load_backbone
    from selective_w2sg.config import TrainConfig
    from selective_w2sg.experiment.training import predict_proba, train_classifier

    bb = load_backbone("tiny-random-llama")
    torch.manual_seed(0)
    init = Classifier(bb)
    if mode == "lora":
        init = apply_lora(init, r=4, dropout=0.0)
    inputs, y = _train_data(bb, 32, seed=13)
    cfg = TrainConfig(mode=mode, epochs=1, batch_size=8, micro_batch_size=2, lr=1e-3, evals_per_epoch=2,
                      device=ctx.args.device)

    def run(shard: str) -> tuple[Any, dict[str, Any]]:
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats()
        losses: list[torch.Tensor] = []
        with record_losses(losses):
            res = train_classifier(copy.deepcopy(init), inputs, y, inputs, y, replace(cfg, shard=shard),
                                   loss="aux_conf", seed=0, device=ctx.dev)
        figs = {"state_bytes": res.state_bytes, "steps": res.steps, **loss_figures(losses)}
        if ctx.cuda:
            figs["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return res.model, figs

    plain, plain_figs = run("none")
    p_plain = predict_proba(plain, inputs, device=ctx.dev)
    with world_of_one(ctx) as backend:
        sharded, figs = run("full")
        require(dist.is_sharded(sharded), f"the FSDP path was not taken ({type(sharded).__name__})")
        p_sharded = predict_proba(sharded, inputs, device=ctx.dev)
        from torch.distributed.tensor import DTensor

        trainable = [p for p in sharded.parameters() if p.requires_grad]
        not_dt = sum(not isinstance(p, DTensor) for p in sharded.parameters())
        dtypes = sorted({str(p.to_local().dtype) for p in trainable if isinstance(p, DTensor)})
    require(not_dt == 0, f"{not_dt} parameters are not DTensor shards")
    require(dtypes == ["torch.float32"], f"sharded trainable weights are not fp32 (master weights): {dtypes}")
    diff = float(np.abs(p_plain - p_sharded).max())
    # CPU: fp32 both ways, so float rounding. CUDA: FSDP computes with bf16 copies of every
    # weight (norm weights too, which autocast keeps fp32), and Adam turns tiny gradient
    # differences into lr-sized steps: loosely.
    atol = 1e-5 if not ctx.cuda else 2e-2
    require(bool(np.isfinite(p_sharded).all()), "non-finite predictions from the sharded model")
    require(diff <= atol, f"FSDP vs plain predictions differ by {diff:.3g} > {atol}")
    require(figs["steps"] == plain_figs["steps"], f"steps {figs['steps']} vs {plain_figs['steps']}")
    return {"backend": backend, "mode": mode, "max_abs_pred_diff": diff, "pred_atol": atol,
            "param_dtype": "bfloat16" if ctx.bf16 and ctx.cuda else "float32", "plain": plain_figs, "fsdp": figs}


def section_fsdp(ctx: Ctx, rep: Report) -> None:
    rep.run("fsdp", "fsdp_world1_full", lambda: check_fsdp(ctx, "full"))
    rep.run("fsdp", "fsdp_world1_lora", lambda: check_fsdp(ctx, "lora"))


def check_ddp(ctx: Ctx) -> dict[str, Any]:
    import selective_w2sg.experiment.training as T
    from selective_w2sg.experiment import dist
    from selective_w2sg.experiment.models import Classifier, load_backbone
    from selective_w2sg.config import TrainConfig
    from selective_w2sg.experiment.training import predict_proba, train_classifier

    bb = load_backbone("tiny-random-llama")
    torch.manual_seed(0)
    init = Classifier(bb)
    inputs, y = _train_data(bb, 32, seed=11)
    cfg = TrainConfig(mode="full", epochs=1, batch_size=8, micro_batch_size=4, lr=1e-3, device=ctx.args.device)
    # aux_conf: its hardening window is gathered over ranks every step (an all_gather on the
    # device: NCCL on CUDA), so the collective path of the loss is exercised too.
    loss = "aux_conf"
    plain = train_classifier(copy.deepcopy(init), inputs, y, None, None, cfg, loss=loss, seed=0, device=ctx.dev).model
    engines: list[str] = []
    orig_dp = T._data_parallel

    def spy(model: torch.nn.Module, device: Any, shard: str = "none") -> torch.nn.Module:
        e = orig_dp(model, device, shard)
        engines.append(type(e).__name__)
        return e

    with world_of_one(ctx) as backend:
        T._data_parallel = spy  # type: ignore[assignment]
        try:
            ddp = train_classifier(copy.deepcopy(init), inputs, y, None, None, cfg, loss=loss, seed=0,
                                   device=ctx.dev).model
        finally:
            T._data_parallel = orig_dp  # type: ignore[assignment]
        world = dist.world_size()
    require(engines == ["DistributedDataParallel"], f"the DDP path was not taken (engine: {engines})")
    require(world == 1, f"world size {world}")
    sp, sd = plain.state_dict(), ddp.state_dict()
    diffs = {k: float((sp[k].float() - sd[k].float()).abs().max()) for k in sp}
    p1, p2 = predict_proba(plain, inputs, device=ctx.dev), predict_proba(ddp, inputs, device=ctx.dev)
    pred_diff = float(np.abs(p1 - p2).max())
    # CPU/gloo: the same arithmetic, so equal to float rounding. CUDA: some backward kernels
    # (embedding gradients) accumulate in a non-deterministic order, and Adam normalises tiny
    # gradient differences into lr-sized steps: compare predictions, loosely, and report weights.
    atol_w = 1e-6 if not ctx.cuda else 10 * cfg.lr
    atol_p = 1e-5 if not ctx.cuda else 1e-2
    figs = {"backend": backend, "loss": loss, "max_abs_weight_diff": max(diffs.values()),
            "max_abs_pred_diff": pred_diff,
            "weight_atol": atol_w, "pred_atol": atol_p}
    require(max(diffs.values()) <= atol_w, f"DDP vs plain weights differ by {max(diffs.values()):.3g} > {atol_w}")
    require(pred_diff <= atol_p, f"DDP vs plain predictions differ by {pred_diff:.3g} > {atol_p}")
    return figs


def section_unit(ctx: Ctx, rep: Report) -> None:
    rep.run("unit", "padding_invariance", lambda: check_padding(ctx))
    rep.run("unit", "encode_cpu_vs_device", lambda: check_encode_cpu_vs_device(ctx))
    rep.run("unit", "train_full", lambda: check_train(ctx, "full"))
    rep.run("unit", "train_lora", lambda: check_train(ctx, "lora"))
    rep.run("unit", "ddp_world1", lambda: check_ddp(ctx))


# --------------------------------------------------------------------------------------------
# Section 2: e2e, through the command line (`python -m selective_w2sg.cli`: no console script)


def check_e2e(ctx: Ctx, mode: str) -> dict[str, Any]:
    import selective_w2sg

    out = ctx.out / f"e2e_{mode}"
    if ctx.tiny:
        sizes = ["--n-weak", "20", "--n-w2s", "50", "--n-test", "20", "--epochs", "1", "--students", "naive",
                 "--max-length", "64", "--batch-size", "16", "--micro-batch-size", "16"]
        timeout = 240
    else:
        sizes = ["--n-weak", "40", "--n-w2s", "60", "--n-test", "40", "--epochs", "2", "--method", "all"]
        timeout = 200
    timeout = max(30, int(min(timeout, ctx.rep.remaining())))
    argv = [sys.executable, "-m", "selective_w2sg.cli", "train", "--task", "synthetic", "--weak", "tiny-random-bert",
            "--strong", "tiny-random-llama", "--mode", mode, "--device", ctx.args.device, "--out", str(out),
            "--force", *sizes]
    env = dict(os.environ)
    pkg_root = str(Path(selective_w2sg.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
    if ctx.tiny:
        env.update(OMP_NUM_THREADS="1", SW2S_NUM_THREADS="1")
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    secs = time.perf_counter() - t
    log = out.parent / f"e2e_{mode}.log"
    log.write_text(f"$ {' '.join(argv)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    require(proc.returncode == 0, f"exit status {proc.returncode}; stderr tail: {proc.stderr[-1500:]}")
    res_path = out / "results.json"
    require(res_path.is_file(), f"{res_path} missing")
    results = json.loads(res_path.read_text())
    seed0 = results["seeds"][0]
    models = seed0["models"]
    expected = {"weak", "ceiling", "zero_shot", "naive"}
    if not ctx.tiny:
        expected |= {"aux_conf", "selective", "self_only"}
    require(expected <= set(models), f"models missing from results.json: {sorted(expected - set(models))}")
    accs = {m: v.get("accuracy") for m, v in models.items()}
    bad = {m: a for m, a in accs.items() if a is None or not math.isfinite(a) or not 0.0 <= a <= 1.0}
    require(not bad, f"non-finite or out-of-range accuracies: {bad}")
    require((out / f"seed{seed0['seed']}" / "test_predictions.npz").is_file(), "test_predictions.npz missing")
    return {"seconds_wall": round(secs, 1), "accuracy": accs, "n_test": seed0.get("n_test"),
            "command": " ".join(argv[1:])}


def section_e2e(ctx: Ctx, rep: Report) -> None:
    rep.run("e2e", "train_full", lambda: check_e2e(ctx, "full"))
    rep.run("e2e", "train_lora", lambda: check_e2e(ctx, "lora"))


# --------------------------------------------------------------------------------------------
# Sections 3 and 4: a Qwen2.5-0.5B-shaped random model


def qwen_config(tiny: bool, vocab: int = 151936) -> Any:
    from transformers import Qwen2Config

    from selective_w2sg.experiment.models import tiny_tokenizer

    tok = tiny_tokenizer("left")
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if tiny:
        return Qwen2Config(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, intermediate_size=128, max_position_embeddings=1024,
                           tie_word_embeddings=True, **ids)
    return Qwen2Config(vocab_size=vocab, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=4096,
                       tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6, **ids)


def build_qwen(ctx: Ctx, on: torch.device) -> Any:
    from transformers import Qwen2ForCausalLM

    cfg = qwen_config(ctx.tiny)
    torch.manual_seed(0)
    with torch.device(on):
        model = Qwen2ForCausalLM(cfg)
    return model


def param_counts(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    emb = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return {"parameters": total, "non_embedding_parameters": total - emb}


def check_hf_encode(ctx: Ctx) -> dict[str, Any]:
    from selective_w2sg.experiment.encode import EncodeStats, encode_questions
    from selective_w2sg.experiment.models import load_backbone, tiny_tokenizer
    from selective_w2sg.experiment.tasks import synthetic_questions

    with tempfile.TemporaryDirectory(prefix="sw2s-qwen-") as tmp:
        t = time.perf_counter()
        model = build_qwen(ctx, ctx.dev.device)
        tok = tiny_tokenizer("left")
        require(len(tok) <= model.config.vocab_size, f"tokenizer ({len(tok)}) larger than the vocabulary")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        counts = param_counts(model)
        del model
        _free_memory()
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        bb = load_backbone(tmp)
        load_s = time.perf_counter() - t
    require(bb.is_causal, "the saved Qwen2 model did not load as a causal LM")
    require(type(bb.model).__name__ == "Qwen2ForCausalLM", f"loaded as {type(bb.model).__name__}")
    require(bb.tokenizer.padding_side == "left", "decoder tokenizer not left-padded")
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    qs = synthetic_questions(ctx.args.encode_questions, seed=9)
    qids = [q.question_id for q in qs]
    bs = 16 if ctx.tiny else 128
    encode_questions(bb, qs[:4], device=ctx.dev, batch_size=bs)  # warm-up: moves the model, first kernels
    runs: dict[bool, Any] = {}
    figs: dict[str, Any] = {**counts, "save_s": round(save_s, 2), "load_s": round(load_s, 2),
                            "questions": len(qs), "batch_size": bs}
    for share in (True, False):
        st = EncodeStats()
        ctx.sync()
        t = time.perf_counter()
        runs[share] = encode_questions(bb, qs, device=ctx.dev, batch_size=bs, share_prefix=share, stats=st)
        ctx.sync()
        secs = time.perf_counter() - t
        key = "shared" if share else "whole"
        figs[key] = {"texts": st.texts, "tokens": st.tokens, "padded_tokens": st.padded_tokens,
                     "forward_calls": st.forward_calls, "seconds": round(secs, 3),
                     "texts_per_s": round(st.texts / secs, 1), "tokens_per_s": round(st.tokens / secs, 1)}
        for field in ("features", "hidden", "option_prob"):
            require(bool(np.isfinite(getattr(runs[share], field)).all()), f"non-finite {field} (share_prefix={share})")
    a, b = runs[True], runs[False]
    tol = ctx.rel_tol(n_layers_of(bb))
    err_f = float(row_rel_err(a.features, b.features).max())
    err_h = float(row_rel_err(a.hidden, b.hidden).max())
    figs.update({"max_rel_err_features": err_f, "max_rel_err_hidden": err_h, "tolerance": tol,
                 "min_cosine_hidden": float(row_cosine(a.hidden, b.hidden).min()),
                 "max_abs_option_prob_diff": float(np.abs(a.option_prob - b.option_prob).max())})
    if ctx.cuda:
        figs["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    require(err_f <= tol and err_h <= tol, f"share_prefix True vs False: rel err features {err_f:.3g}, "
                                           f"hidden {err_h:.3g} > {tol:.3g}")
    figs.update(self_label_agreement(b, a, qids, ctx.tie_margin))
    return figs


class _TimeUp(Exception):
    pass


def check_throughput(ctx: Ctx) -> dict[str, Any]:
    from selective_w2sg.experiment.models import Backbone, Classifier, tiny_tokenizer
    from selective_w2sg.config import TrainConfig
    from selective_w2sg.experiment.training import TokenInputs, train_classifier

    a = ctx.args
    seq, batch, micro = a.seq, a.batch_size, a.micro_batch_size
    warmup, budget = a.warmup_steps, a.throughput_seconds
    budget = max(5.0, min(budget, ctx.rep.remaining() - 45))  # leave time for the build, warm-up and report
    max_steps = a.max_steps
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    model = build_qwen(ctx, ctx.dev.device)  # built on the device: no 2 GB host copy
    clf = Classifier(Backbone("qwen2-0.5b-shape-random", model, tiny_tokenizer("left"), True, "random:v1"))
    counts = param_counts(clf)
    cfg_m = model.config
    rng = np.random.default_rng(0)
    distinct = [rng.integers(1, cfg_m.vocab_size, size=seq).tolist() for _ in range(min(256, batch * max_steps))]
    n = batch * max_steps
    ids = [distinct[i % len(distinct)] for i in range(n)]  # references: every example exactly `seq` tokens
    labels = rng.random(n).astype(np.float32)
    cfg = TrainConfig(mode="full", epochs=1, batch_size=batch, micro_batch_size=micro, lr=5e-5, max_length=seq,
                      warmup_frac=0.01, device=a.device)
    marks: dict[str, float] = {}

    def progress(step: int, total: int) -> None:
        if step == warmup:
            ctx.sync()
            marks["t0"] = time.perf_counter()
            marks["s0"] = step
        elif step > warmup and (time.perf_counter() - marks["t0"] >= budget or step == total):
            ctx.sync()
            marks["t1"] = time.perf_counter()
            marks["s1"] = step
            raise _TimeUp

    losses: list[torch.Tensor] = []
    t_start = time.perf_counter()
    try:
        with record_losses(losses):
            train_classifier(clf, TokenInputs(ids, 0, "left"), labels, None, None, cfg, seed=0, device=ctx.dev,
                             progress=progress)
    except _TimeUp:
        pass
    total_s = time.perf_counter() - t_start
    require("t1" in marks, f"training ended before the timed window (warm-up {warmup} steps, {max_steps} planned)")
    steps = int(marks["s1"] - marks["s0"])
    secs = marks["t1"] - marks["t0"]
    tokens = steps * batch * seq
    tps = tokens / secs
    peak = a.peak_tflops * 1e12
    n_ne, n_all = counts["non_embedding_parameters"], counts["parameters"]
    attn = 12 * cfg_m.num_hidden_layers * cfg_m.hidden_size * seq  # attention scores + values, fwd+bwd, per token
    figs: dict[str, Any] = {
        **counts,
        "device_name": torch.cuda.get_device_name(ctx.dev.device) if ctx.cuda else platform.processor() or "cpu",
        "seq": seq, "batch_size": batch, "micro_batch_size": micro, "warmup_steps": warmup, "timed_steps": steps,
        "timed_seconds": round(secs, 2), "total_seconds": round(total_s, 2), "tokens": tokens,
        "tokens_per_s": round(tps, 1), "peak_tflops": a.peak_tflops,
        "mfu": 6 * n_ne * tps / peak, "mfu_all_params": 6 * n_all * tps / peak,
        "mfu_with_attention": (6 * n_ne + attn) * tps / peak,
        "model_tflops_per_s": 6 * n_ne * tps / 1e12,
    }
    if ctx.cuda:
        figs["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    figs.update(loss_figures(losses))
    bad = [k for k, p in clf.named_parameters() if not bool(torch.isfinite(p).all())]
    require(not bad, f"non-finite weights after training: {bad[:5]}")
    return figs


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output folder (gpu_check.json, e2e runs)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny models and sizes: a CPU smoke run in seconds")
    ap.add_argument("--cpu-bf16", action="store_true", help="with --device cpu: bf16 autocast on the CPU (a rehearsal "
                    "of the GPU run's bf16 paths and tolerances)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--deadline-s", type=float, default=None, help="checks not started within this many seconds "
                    "fail as skipped, and the throughput window shrinks to fit (default 450; tiny: none)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H200/H100 SXM: 989)")
    ap.add_argument("--throughput-seconds", type=float, default=None, help="timed window (default 120; tiny 3)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per example (default 512; tiny 32)")
    ap.add_argument("--batch-size", type=int, default=None, help="examples per optimiser step (default 64; tiny 4)")
    ap.add_argument("--micro-batch-size", type=int, default=None, help="examples per forward (default 32; tiny 2)")
    ap.add_argument("--encode-questions", type=int, default=None, help="hf_encode: synthetic questions, 4 texts each "
                    "(default 512; tiny 16)")
    ap.add_argument("--warmup-steps", type=int, default=None, help="untimed steps first (default 5; tiny 2)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="planned steps; the timed window stops earlier (default 2000; tiny 8)")
    args = ap.parse_args(argv)
    d = dict(throughput_seconds=(3.0, 120.0), seq=(32, 512), batch_size=(4, 64), micro_batch_size=(2, 32),
             warmup_steps=(2, 5), encode_questions=(16, 512), max_steps=(8, 2000))
    for k, (tiny, full) in d.items():
        if getattr(args, k) is None:
            setattr(args, k, tiny if args.tiny else full)
    if args.deadline_s is None and not args.tiny:
        args.deadline_s = 450.0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown or not only:
        ap.error(f"--only: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    args.only = only
    if args.max_steps <= args.warmup_steps:
        ap.error("--max-steps must be larger than --warmup-steps")
    return args


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "peft", "accelerate", "selective_w2sg"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
            if mod == "selective_w2sg":
                out["selective_w2sg_file"] = m.__file__
        except Exception as e:  # noqa: BLE001
            out[mod] = f"unavailable: {type(e).__name__}: {e}"
    return out


def print_summary(rep: Report) -> None:
    d = rep.data
    print("\n==== gpu_check summary ====")
    m = d["meta"]
    print(f"device {m['device']} ({m.get('device_name')}), bf16 autocast {m.get('bf16')}, tiny {m['tiny']}, "
          f"torch {m['versions'].get('torch')}, transformers {m['versions'].get('transformers')}")
    for sname, sec in d["sections"].items():
        print(f"{'PASS' if sec['ok'] else 'FAIL'}  {sname}  ({sec['seconds']:.1f}s)")
        for cname, c in sec["checks"].items():
            line = f"   {'ok  ' if c['ok'] else 'FAIL'} {cname} ({c['seconds']:.1f}s)"
            if not c["ok"]:
                line += f": {c['error'][:400]}"
            print(line)
    tp = d["sections"].get("throughput", {}).get("checks", {}).get("train_qwen2_0.5b_shape", {}).get("figures")
    if tp:
        mem = f", peak memory {tp['peak_memory_gib']} GiB" if "peak_memory_gib" in tp else ""
        print(f"throughput: {tp['tokens_per_s']:.0f} tokens/s, MFU {100 * tp['mfu']:.1f}% (6N, N = "
              f"{tp['non_embedding_parameters'] / 1e6:.0f}M non-embedding; all {tp['parameters'] / 1e6:.0f}M: "
              f"{100 * tp['mfu_all_params']:.1f}%){mem}")
    he = d["sections"].get("hf_encode", {}).get("checks", {}).get("encode_qwen2_0.5b_shape", {}).get("figures")
    if he:
        print(f"hf_encode: shared prefix {he['shared']['texts_per_s']} texts/s, whole texts "
              f"{he['whole']['texts_per_s']} texts/s")
    print(f"overall: {'PASS' if d['ok'] else 'FAIL'}  ({rep.path})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"device": args.device, "tiny": args.tiny, "only": args.only, "argv": argv or sys.argv[1:],
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": _versions(),
                            "datasets_importable": importlib.util.find_spec("datasets") is not None}
    rep = Report(args.out / "gpu_check.json", meta, args.deadline_s)
    threads = torch.get_num_threads()
    if args.tiny and args.device == "cpu":
        torch.set_num_threads(1)  # tiny models on a shared machine: extra threads only spin
    try:
        if args.device == "cuda" and not torch.cuda.is_available():
            rep.run("setup", "cuda_available", lambda: require(False, "--device cuda but torch sees no CUDA device "
                                                                      "(use --device cpu for a CPU run)"))
        else:
            ctx = Ctx(args, rep)
            meta.update(bf16=ctx.bf16, device_name=torch.cuda.get_device_name(ctx.dev.device) if ctx.cuda else "cpu",
                        torch_threads=torch.get_num_threads())
            if ctx.cuda:
                meta["cuda"] = torch.version.cuda
                meta["memory_gib"] = round(torch.cuda.get_device_properties(ctx.dev.device).total_memory / 2**30, 1)
            steps: dict[str, Callable[[], None]] = {
                "unit": lambda: section_unit(ctx, rep),
                "fsdp": lambda: section_fsdp(ctx, rep),
                "e2e": lambda: section_e2e(ctx, rep),
                "hf_encode": lambda: rep.run("hf_encode", "encode_qwen2_0.5b_shape", lambda: check_hf_encode(ctx)),
                "throughput": lambda: rep.run("throughput", "train_qwen2_0.5b_shape", lambda: check_throughput(ctx)),
            }
            for name in SECTIONS:
                if name in args.only:
                    steps[name]()
        ok = rep.finish()
    finally:
        torch.set_num_threads(threads)
    print_summary(rep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
