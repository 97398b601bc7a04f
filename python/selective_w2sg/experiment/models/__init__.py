"""Models: a Hugging Face causal LM or encoder (hub id, local folder, GGUF file) or a built-in tiny
random one, by concern:

    devices   where and in what precision models run (`pick_device`)
    tiny      the built-in tiny random models and their word-level tokenizer
    loading   `load_backbone`, model names, availability checks and fingerprints
    forward   pooling, the trunk without its LM head, hidden states
    batching  length-sorted batches, padding, tokenising, `extract_features`
    heads     `LinearHead`, `Classifier` (backbone + pooled head), LoRA

Nothing here touches CUDA at import time: the device is picked by `pick_device()` when asked.
"""

from __future__ import annotations

from .batching import (
    ExtractStats,
    extract_features,
    length_sorted_batches,
    pad_batch,
    tokenize,
)
from .devices import (
    Device,
    pick_device,
)
from .forward import (
    POOLINGS,
    forward_accepts,
    hidden_states,
    pool,
    position_ids_from_mask,
    split_lm,
)
from .heads import (
    Classifier,
    LinearHead,
    apply_lora,
    transformer_blocks,
)
from .loading import (
    Backbone,
    check_model_available,
    check_model_name,
    is_causal_model,
    load_backbone,
    model_fingerprint,
)
from .tiny import (
    BUILTIN_MODELS,
    tiny_tokenizer,
)

__all__ = [
    "Device",
    "pick_device",
    "BUILTIN_MODELS",
    "tiny_tokenizer",
    "Backbone",
    "check_model_available",
    "check_model_name",
    "is_causal_model",
    "load_backbone",
    "model_fingerprint",
    "POOLINGS",
    "forward_accepts",
    "hidden_states",
    "pool",
    "position_ids_from_mask",
    "split_lm",
    "ExtractStats",
    "extract_features",
    "length_sorted_batches",
    "pad_batch",
    "tokenize",
    "Classifier",
    "LinearHead",
    "apply_lora",
    "transformer_blocks",
]
