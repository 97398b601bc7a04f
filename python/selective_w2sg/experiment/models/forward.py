"""Pooling and the forward pass: the trunk without its vocabulary projection, hidden states."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from torch import nn

from ...graph.errors import ConfigError

POOLINGS = ("last", "mean")


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so a left-padded row sees the same positions as
    the same text right-padded (HF decoders otherwise count pads)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden (b, t, d), attention_mask (b, t) -> (b, d). `last`: the last real token, found from
    the mask, so it is right for left and right padding and never assumes a pad id; `mean`: the
    mean over real tokens."""
    if pooling == "last":
        t = attention_mask.shape[1]
        last = t - 1 - attention_mask.long().flip(-1).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "mean":
        m = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def forward_accepts(model: nn.Module, arg: str) -> bool:
    """Whether the model's forward takes `arg` (looked up on its class, so an instance whose
    forward is wrapped still answers; a peft wrapper forwards **kwargs to its base)."""
    base = getattr(model, "get_base_model", None)
    if callable(base):
        model = base()
    return _class_forward_accepts(type(model), arg)


@functools.lru_cache(maxsize=256)
def _class_forward_accepts(cls: type, arg: str) -> bool:
    """Signature lookup once per class (it runs before every training forward)."""
    try:
        return arg in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


# Config fields by which a causal LM's logits are more than `lm_head(last hidden state)`.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def split_lm(model: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """(trunk, lm_head) of a causal LM: the transformer without its vocabulary projection, and the
    projection, such that logits = lm_head(trunk(...).last_hidden_state). Features need only the
    trunk (the projection is ~40% of a 0.5B model's compute at a 152k vocabulary); option scores
    need the projection at answer positions only. A peft wrapper is looked through (its adapters
    live inside the trunk). Any other model, or a causal LM whose logits are post-processed
    (soft-capping, scaling): (model, None)."""
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    getter = getattr(base, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    trunk = getattr(base, "base_model", base)
    config = getattr(base, "config", None)
    post = any(getattr(config, a, None) not in (None, 1, 1.0) for a in _LOGIT_POSTPROCESSING)
    if head is None or trunk is base or post:
        return model, None
    return trunk, head


def hidden_states(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All hidden states (embeddings first, then one per layer), each (b, t, d). A causal LM runs
    without its vocabulary projection (`split_lm`)."""
    trunk, _ = split_lm(model)
    kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": True}
    if forward_accepts(trunk, "position_ids"):
        kw["position_ids"] = position_ids_from_mask(attention_mask)
    if forward_accepts(trunk, "use_cache"):
        kw["use_cache"] = False  # a decoder would otherwise build a key/value cache nobody reads
    out = trunk(**kw)
    return tuple(out.hidden_states)
