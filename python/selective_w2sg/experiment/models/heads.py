"""Heads over a backbone: the standardised linear head, the classifier for full / LoRA training."""

from __future__ import annotations

import torch
from torch import nn

from ...graph.errors import ConfigError
from .forward import hidden_states, pool, split_lm
from .loading import Backbone


class LinearHead(nn.Module):
    """Standardise features (fixed mean/std from the training features), then a linear layer to
    2 logits. The probe-mode model, and the head of `Classifier`."""

    def __init__(self, dim: int, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim) if mean is None else mean.float().clone())
        self.register_buffer("std", torch.ones(dim) if std is None else std.float().clamp(min=1e-6).clone())
        self.linear = nn.Linear(dim, 2)
        nn.init.zeros_(self.linear.weight)  # start from "no opinion": p = 0.5 everywhere
        nn.init.zeros_(self.linear.bias)
        # 1: the anchor is added as given; 0: the head ignores it (a fitted head may choose that:
        # `stages.fitting.fit_anchored_head` with a plain budget)
        self.register_buffer("anchor_scale", torch.ones(()))

    def forward(self, x: torch.Tensor, anchor: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (b, 2); with `anchor` (b,), a fixed log-odds offset (times `anchor_scale`) added
        to the positive class, so a zero-initialised head predicts exactly the anchor."""
        logits = self.linear((x.float() - self.mean) / self.std)
        if anchor is None:
            return logits
        return logits + torch.stack([torch.zeros_like(anchor), self.anchor_scale * anchor.float()], dim=1)


class Classifier(nn.Module):
    """Backbone + pooling + linear head: input_ids, attention_mask -> logits (b, 2)."""

    def __init__(self, backbone: Backbone, pooling: str | None = None, layer: int = -1,
                 gradient_checkpointing: bool = False) -> None:
        super().__init__()
        # A causal LM's vocabulary projection is not part of the classifier: never run, never
        # trained (and no unused parameters for DDP to wait for).
        self.backbone = split_lm(backbone.model)[0]
        if gradient_checkpointing:
            enable = getattr(self.backbone, "gradient_checkpointing_enable", None)
            if not callable(enable) or not getattr(self.backbone, "supports_gradient_checkpointing", False):
                raise ConfigError(f"model {backbone.name!r} does not support gradient checkpointing")
            enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.pooling = pooling or backbone.default_pooling
        self.layer = layer
        self.head = LinearHead(backbone.hidden_size)
        nn.init.normal_(self.head.linear.weight, std=0.02)  # full training: break symmetry

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hs = hidden_states(self.backbone, input_ids, attention_mask)
        return self.head(pool(hs[self.layer], attention_mask, self.pooling))


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated layers of a transformer, found without knowing its architecture: the
    children of the `nn.ModuleList` with the most parameters whose children are all of one class
    (`model.layers` of a decoder, `encoder.layer` of BERT; under a peft wrapper too). FSDP shards
    and gathers one such block at a time. [] when there is none."""
    best: list[nn.Module] = []
    best_n = 0
    for m in model.modules():
        if not isinstance(m, nn.ModuleList) or len(m) == 0 or len({type(c) for c in m}) != 1:
            continue
        n = sum(p.numel() for p in m.parameters())
        if n > best_n:
            best, best_n = list(m), n
    return best


def apply_lora(classifier: Classifier, r: int = 8, alpha: int = 16, dropout: float = 0.05) -> Classifier:
    """Wrap the backbone with LoRA adapters (peft); the head stays fully trainable."""
    try:
        import peft
    except ModuleNotFoundError:
        raise ConfigError("--mode lora needs peft: pip install 'selective-w2sg[lora]'") from None
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear")
    classifier.backbone = peft.get_peft_model(classifier.backbone, cfg)
    return classifier
