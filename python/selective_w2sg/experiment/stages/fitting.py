"""Training a model as a cached stage: probe-mode features, `fit_stage`, and `run_student`.

Outputs of a training stage (`weak`, `ceiling`, `student-<name>`), in `<cache>/<stage>/<key>/`:
    config.json                  the stage's full config and input fingerprints (its key's preimage)
    preds_<split>.npy            float32 (n_examples,): P(y = 1) on each predicted split
    train_history.json           validation score per evaluation
    DONE.json                    written last: the files, the run time, a summary
Probe-mode features live in `<cache>/features/<key>/part-*.npy`, float32 rows keyed by text (see
`cache.TextRowStore`): a text is embedded once per model and config, whatever split or seed asks.
No stage reads `test` ground truth: only `evaluation/` and the analysis module do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..cache import StageDir, TextRowStore, array_fingerprint, run_cached
from ..linear import fit_penalised_logistic
from ...config import ModelSpec
from ...graph.errors import ConfigError, DeviceOutOfMemoryError
from ..models import (
    model_fingerprint,
    Classifier, LinearHead, apply_lora, extract_features, load_backbone, tokenize,
)
from ..tasks import Splits, hash_seed
from ..training import (
    FeatureInputs, Inputs, TokenInputs, TrainConfig, TrainResult, predict_proba, train_classifier,
)
from .base import StageContext

# --------------------------------------------------------------------------------------------
# Features (probe mode)


FEATURES_FORMAT = 3  # 2: texts truncated from the left (the answer is never cut off); 3: stored per text


def feature_store(ctx: StageContext, spec: ModelSpec, layer: int) -> TextRowStore:
    """Where `spec`'s pooled features (this pooling, layer, max_length) are kept, one row per
    distinct text: `<cache>/features/<key>/` (see `cache.TextRowStore`)."""
    cfg = ctx.train
    config = {"format": FEATURES_FORMAT, "model": model_fingerprint(spec), "model_name": spec.name,
              "pooling": cfg.pooling or "auto", "layer": layer, "max_length": cfg.max_length, **ctx.numerics}
    return TextRowStore(ctx.cache_root, "features", config)


def features(ctx: StageContext, spec: ModelSpec, split: str, *, layer: int | None = None) -> np.ndarray:
    """Pooled hidden states of `spec` on a split's examples, float32 (n_examples, d). Only texts
    no earlier split, seed or run has embedded with this model are computed (batched,
    length-sorted); the rest come from the feature store."""
    cfg = ctx.train
    layer = cfg.layer if layer is None else layer
    texts = ctx.splits.texts(split)

    def compute(missing: list[str]) -> np.ndarray:
        bb = ctx.frozen_backbone(spec)
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            ctx.report(f"features {spec.name} {split}", done[0], len(missing))

        return extract_features(bb, missing, pooling=cfg.pooling, layers=(layer,), batch_size=cfg.feature_batch_size,
                                max_length=cfg.max_length, device=ctx.device, progress=tick,
                                max_tokens=cfg.max_batch_tokens)[layer]

    rows, _ = guard_oom(lambda: feature_store(ctx, spec, layer).get(texts, compute, force=ctx.force),
                         f"feature extraction with {spec.name}")
    return rows


def store_features(ctx: StageContext, spec: ModelSpec, split: str, layer: int,
                   make: Callable[[], np.ndarray]) -> None:
    """Put features computed elsewhere (the selective encode pass) into the store `features`
    reads, so probe-mode training of `spec` reuses them instead of a second forward pass.
    `make()` gives the split's rows; it is called only when some of its texts are not stored."""
    texts = ctx.splits.texts(split)

    def compute(missing: list[str]) -> np.ndarray:
        rows = np.asarray(make(), dtype=np.float32)
        where = {t: i for i, t in enumerate(texts)}
        return rows[[where[t] for t in missing]]

    feature_store(ctx, spec, layer).get(texts, compute)


# --------------------------------------------------------------------------------------------
# Training stages


def weak_val_mask(splits: Splits, seed: int, frac: float = 0.2) -> np.ndarray:
    """bool (n_weak_train_examples,): a question-level slice of weak_train that the weak model
    early-stops on, so it never sees w2s ground truth."""
    qids = [e.question_id for e in splits.examples["weak_train"]]
    return np.array([hash_seed(seed, "weak-val", q) % 1000 < frac * 1000 for q in qids])


def fit_stage(
    ctx: StageContext, stage: str, spec: ModelSpec, *, train_split: str, train_labels: np.ndarray,
    val_split: str, val_labels: np.ndarray, train_idx: np.ndarray | None = None, val_idx: np.ndarray | None = None,
    loss: str = "xent", predict: tuple[str, ...] = ("w2s_train", "w2s_val", "test"),
    extra: Mapping[str, Any] | None = None, anchor: Anchor | None = None, budget: Budget | None = None,
    early_stop: bool = True,
) -> StageDir:
    """Train `spec` on (`train_split`[`train_idx`], `train_labels`), early-stop on (`val_split`[`val_idx`],
    `val_labels`), write P(y=1) on each of `predict`. Labels: float P(y=1), one per selected example.
    The folder key hashes the config, the split fingerprints and the label arrays.

    `anchor` (probe mode): the head's logit is the anchor's fixed log-odds per example plus a
    learned correction that starts at zero (see `Anchor`). With a `budget` (anchored probe heads:
    `tune`'s or the ceiling's choice) the head is a convex fit instead of SGD (see `Budget`).
    `early_stop=False`: train every epoch and keep the last weights (val is then unused); with an
    anchor and early stopping, the untrained start is also a candidate."""
    cfg = ctx.train.resolved()
    if anchor is not None:
        cfg = replace(cfg, lr=cfg.anchored_lr)
    if budget is not None and (anchor is None or cfg.mode != "probe"):
        raise ConfigError("a Budget applies to anchored probe heads only")
    n_tr = len(ctx.splits.examples[train_split])
    n_va = len(ctx.splits.examples[val_split])
    tr_idx = np.arange(n_tr) if train_idx is None else np.asarray(train_idx)
    va_idx = np.arange(n_va) if val_idx is None else np.asarray(val_idx)
    train_labels = np.asarray(train_labels, dtype=np.float32)
    val_labels = np.asarray(val_labels, dtype=np.float32)
    config = {"stage": stage, "model": model_fingerprint(spec), "model_name": spec.name, "train": cfg.to_dict(),
              "loss": loss, "seed": ctx.seed, **ctx.numerics, **(extra or {})}
    if anchor is not None:
        config["anchor"] = anchor.key
    if budget is not None:  # the convex fit: the SGD settings (epochs, lr ...) do not apply
        config["budget"] = {**budget.to_dict(), "fit": "penalised logistic"}
    if not early_stop:
        config["early_stop"] = False
    inputs = {
        "train": [train_split, ctx.splits.fingerprint(train_split), array_fingerprint(tr_idx),
                  array_fingerprint(train_labels)],
        "val": [val_split, ctx.splits.fingerprint(val_split), array_fingerprint(va_idx), array_fingerprint(val_labels)],
        "predict": {s: ctx.splits.fingerprint(s) for s in predict},
    }

    def compute(w: Any) -> dict[str, Any]:
        model, inputs_of = build_model(ctx, spec, cfg, train_split, tr_idx, anchor)
        tr = inputs_of(train_split).subset(tr_idx)
        va = inputs_of(val_split).subset(va_idx)
        if budget is not None:  # anchored probe head: a convex fit (C None: the anchor itself)
            t0 = time.perf_counter()
            model = fit_anchored_head(model, tr, train_labels, budget, loss, cfg)  # type: ignore[arg-type]
            res = TrainResult(model, -1, 0, False, [], time.perf_counter() - t0)
        else:
            res = train_classifier(model, tr, train_labels, va if early_stop else None,
                                   val_labels if early_stop else None, cfg, loss=loss, seed=ctx.seed,
                                   device=ctx.device, progress=lambda s, t: ctx.report(stage, s, t),
                                   select_start=anchor is not None)
        for s in predict:
            w.npy(f"preds_{s}", predict_proba(res.model, inputs_of(s), batch_size=cfg.eval_batch_size, device=ctx.device,
                                                      max_tokens=cfg.max_batch_tokens))
        w.json("train_history", res.history)
        return {"steps": res.steps, "best_eval": res.best_eval, "stopped_early": res.stopped_early,
                "train_s": res.train_s}

    return guard_oom(lambda: run_cached(ctx.cache_root, stage, config, inputs, compute, force=ctx.force),
                      f"stage {stage} with {spec.name}")


def center_by_question(x: np.ndarray, question_ids: list[str]) -> np.ndarray:
    """Subtract from each example's features the mean over its question's examples. A question's
    examples share their (often long) context, so raw pooled features differ little between the
    right and the wrong answer; what is left after centring is that difference. Uses no labels, and
    a question's examples are always in one split."""
    _, q = np.unique(np.asarray(question_ids), return_inverse=True)
    sums = np.zeros((int(q.max()) + 1, x.shape[1]), dtype=np.float64)
    np.add.at(sums, q, x)
    means = sums / np.bincount(q)[:, None]
    return (x - means[q]).astype(np.float32)


@dataclass(frozen=True)
class Budget:
    """How a probe head on an anchored run is fitted: a penalised logistic regression fitted to
    convergence (a convex problem: no steps, rate or early stopping to choose), with the inverse
    L2 strength `C` of its weights. `anchored`: the zero-shot log-odds are its offset, so small C
    keeps the anchor and large C lets the labels overrule it; False: a plain head that ignores
    the anchor (where the strong model's zero-shot answer is worse than useless, e.g. below
    chance, a correction cannot undo it). C None: the anchor alone."""

    C: float | None
    anchored: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"C": self.C, "anchored": self.anchored}


AUX_ROUNDS = 4  # aux_conf on an anchored head: refits, each with a larger share of hardened own predictions


def fit_anchored_head(head: LinearHead, train: FeatureInputs, labels: np.ndarray, budget: Budget, loss: str,
                      cfg: TrainConfig) -> LinearHead:
    """`head` fitted to soft `labels` (n,) on `train` (features + anchor) by penalised logistic
    regression with the anchor as offset, or with none (`budget.anchored`;
    `linear.fit_penalised_logistic`). loss "aux_conf" (Burns et al.'s auxiliary confidence, made convex): `AUX_ROUNDS` refits on
    (1 - a_r) * labels + a_r * 1[own prediction above its median], a_r rising to `aux_weight`."""
    if loss not in ("xent", "aux_conf"):
        raise ConfigError(f"unknown loss {loss!r} for an anchored head")
    if budget.C is None:
        return head
    y = np.asarray(labels, dtype=np.float64)
    x = train.features
    off = train.anchor if budget.anchored else None
    ones = np.ones((len(x), 1))

    def fit(t: np.ndarray) -> Any:
        return fit_penalised_logistic(x, t, C=budget.C, offset=off)

    m = fit(y)
    if loss == "aux_conf":
        for r in range(1, AUX_ROUNDS + 1):
            p = m.predict(x, ones, off)
            a = cfg.aux_weight * r / AUX_ROUNDS
            m = fit((1 - a) * y + a * (p > np.quantile(p, 0.5)))
    with torch.no_grad():
        head.mean.copy_(torch.from_numpy(m.mean.astype(np.float32)))
        head.std.copy_(torch.from_numpy(m.std.astype(np.float32)))
        head.linear.weight.zero_()
        head.linear.bias.zero_()
        head.linear.weight[1] = torch.from_numpy(m.w.astype(np.float32))
        head.linear.bias[1] = float(m.a[0])
        head.anchor_scale.fill_(1.0 if budget.anchored else 0.0)
    return head


@dataclass(frozen=True)
class Anchor:
    """A fixed per-example logit offset for a probe head: `log_odds(split)` float32 (n,) of the
    split's examples; `key` identifies it in cache keys (the encode folder it comes from)."""

    key: str
    log_odds: Callable[[str], np.ndarray]


def build_model(
    ctx: StageContext, spec: ModelSpec, cfg: TrainConfig, train_split: str, tr_idx: np.ndarray,
    anchor: Anchor | None = None,
) -> tuple[torch.nn.Module, Callable[[str], Inputs]]:
    torch.manual_seed(ctx.seed)
    if cfg.mode == "probe":
        feats: dict[str, FeatureInputs] = {}

        def feature_inputs(split: str) -> Inputs:
            if split not in feats:
                x = features(ctx, spec, split)
                if cfg.center_features:
                    x = center_by_question(x, [e.question_id for e in ctx.splits.examples[split]])
                feats[split] = FeatureInputs(x, None if anchor is None else anchor.log_odds(split))
            return feats[split]

        f = feature_inputs(train_split).features[tr_idx]  # type: ignore[attr-defined]
        head = LinearHead(f.shape[1], torch.from_numpy(f.mean(0)), torch.from_numpy(f.std(0)))
        return head, feature_inputs
    bb = load_backbone(spec.name, gguf_file=spec.gguf_file)  # fresh weights: training changes them
    model = Classifier(bb, cfg.pooling, cfg.layer, gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.mode == "lora":
        model = apply_lora(model, r=cfg.lora_r)
    toks: dict[str, TokenInputs] = {}

    def token_inputs(split: str) -> Inputs:
        if split not in toks:
            toks[split] = TokenInputs(tokenize(bb, ctx.splits.texts(split), cfg.max_length),
                                      bb.tokenizer.pad_token_id, bb.tokenizer.padding_side)
        return toks[split]

    return model, token_inputs


def guard_oom(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except torch.OutOfMemoryError as e:
        raise DeviceOutOfMemoryError(
            f"out of memory during {what}: lower --batch-size / --micro-batch-size / --max-length, or use --mode probe "
            f"({str(e).splitlines()[0]})"
        ) from None


def run_student(
    ctx: StageContext, name: str, train_labels: np.ndarray, val_labels: np.ndarray, *, loss: str = "xent",
    extra: Mapping[str, Any] | None = None, anchor: Anchor | None = None, budget: Budget | None = None,
) -> StageDir:
    """A strong student trained on w2s_train with `train_labels` (float32 P(y=1), one per w2s_train
    example, from anywhere: weak predictions, selected labels ...). With a `budget` (anchored heads,
    chosen by `tune`) it is the convex fit with that head and C; otherwise it early-stops on
    w2s_val with `val_labels` (weak-derived: never ground truth)."""
    return fit_stage(ctx, f"student-{name}", ctx.strong, train_split="w2s_train", train_labels=train_labels,
                     val_split="w2s_val", val_labels=val_labels, loss=loss, extra={"student": name, **(extra or {})},
                     anchor=anchor, budget=budget, early_stop=budget is None)
