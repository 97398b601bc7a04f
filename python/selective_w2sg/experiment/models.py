"""Models: load a Hugging Face causal LM or encoder (hub id, local folder, GGUF file) or a built-in
tiny random one; pool hidden states; extract features in batched, length-sorted passes; a
classifier (backbone + pooled linear head) for `full` and `lora` training.

Nothing here touches CUDA at import time: the device is picked by `pick_device()` when asked.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import PRECISIONS, ModelSpec
from ..graph.errors import ConfigError
from . import dist
from .tasks import SYNTH_VOCAB, offline_reason

POOLINGS = ("last", "mean")

# Encoder model types: everything else with a causal-LM mapping is loaded as a causal LM.
_ENCODER_TYPES = {
    "bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "deberta", "deberta-v2", "electra",
    "albert", "camembert", "modernbert", "nomic_bert",
}


# --------------------------------------------------------------------------------------------
# Device


@dataclass(frozen=True)
class Device:
    """Where to run, and whether to autocast to bf16 there."""

    device: torch.device
    bf16: bool

    def autocast(self, enabled: bool = True) -> Any:
        """bf16 autocast where supported; `enabled=False` (a probe head: tiny, and its logits
        decide near-ties) keeps fp32 everywhere."""
        if self.bf16 and enabled:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()


def pick_device(prefer: str = "auto", precision: str = "auto") -> Device:
    """CUDA if available, else CPU. Under DDP each rank takes cuda:LOCAL_RANK. `prefer` = "cpu"
    forces the CPU. `precision`: auto (bf16 autocast on a CUDA device that supports it, fp32 on
    the CPU) | fp32 | bf16 (also on the CPU: faster where it has bf16 instructions, results
    differ from fp32 by bf16 rounding)."""
    if prefer not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {prefer!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if prefer != "cpu" and torch.cuda.is_available():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        supported = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not supported:
            raise ConfigError("precision bf16 requested but this CUDA device does not support bf16")
        return Device(dev, supported and precision != "fp32")
    if prefer == "cuda":
        raise ConfigError("device cuda requested but torch sees no CUDA device")
    return Device(torch.device("cpu"), precision == "bf16")


# --------------------------------------------------------------------------------------------
# Built-in tiny random models (no hub): a word-level tokenizer built in code.


def tiny_tokenizer(padding_side: str) -> Any:
    """A word-level tokenizer over the synthetic vocabulary (+ digits and punctuation); every
    other word is [UNK]. Enough for smoke runs; built in code, so no download."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[BOS]", "[EOS]"]
    words = [*specials, *SYNTH_VOCAB, *[str(i) for i in range(10)], *list(".,:;?!'\"()-"), "question", "no", "yes"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if padding_side == "right":  # encoder style
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
    else:  # decoder style: the last real token is [EOS]
        tok.post_processor = processors.TemplateProcessing(
            single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        bos_token="[BOS]", eos_token="[EOS]", padding_side=padding_side, truncation_side="left", model_max_length=512,
    )


def _tiny_bert(vocab_size: int, pad_id: int) -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=pad_id,
    )
    return BertModel(cfg, add_pooling_layer=False)


def _tiny_llama(vocab_size: int, pad_id: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=256, max_position_embeddings=512, pad_token_id=pad_id,
        bos_token_id=4, eos_token_id=5, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


# name -> (builder, padding side, is causal). Weights are initialised from a fixed seed, so the
# "pretrained" model is the same in every run and its cache key can be its name.
BUILTIN_MODELS: dict[str, tuple[Callable[[int, int], nn.Module], str, bool]] = {
    "tiny-random-bert": (_tiny_bert, "right", False),
    "tiny-random-llama": (_tiny_llama, "left", True),
}


# --------------------------------------------------------------------------------------------
# Loading


@dataclass
class Backbone:
    """A pretrained model and its tokenizer. `model` returns hidden states; for a causal LM it is
    the *ForCausalLM model (its LM head scores options in later stages)."""

    name: str
    model: nn.Module
    tokenizer: Any
    is_causal: bool
    fingerprint: str  # identifies the weights: part of every cache key that uses this model
    hidden_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.hidden_size = int(self.model.config.hidden_size)

    @property
    def default_pooling(self) -> str:
        """Last real token for causal LMs (it has seen the whole text); mean for encoders."""
        return "last" if self.is_causal else "mean"


def load_backbone(name: str, *, gguf_file: str | None = None, dtype: torch.dtype | None = None) -> Backbone:
    """Load a built-in tiny model by name, or any HF model by hub id / local folder (`gguf_file`:
    a GGUF file inside it, or a path to one). Sets a missing pad token from eos/unk."""
    if name in BUILTIN_MODELS:
        build, side, causal = BUILTIN_MODELS[name]
        tok = tiny_tokenizer(side)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build(len(tok), tok.pad_token_id)
        model.eval()
        return Backbone(name, model, tok, causal, fingerprint=model_fingerprint(ModelSpec(name)))
    return _load_hf(name, gguf_file=gguf_file, dtype=dtype)


@functools.lru_cache(maxsize=64)
def is_causal_model(name: str, gguf_file: str | None = None) -> bool:
    """Whether a model is a causal LM, from its config alone (no weights loaded)."""
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name][2]
    from transformers import AutoConfig

    path = Path(name)
    if gguf_file is None and path.suffix == ".gguf":
        name, gguf_file = str(path.parent), path.name
    kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    return _is_causal(AutoConfig.from_pretrained(name, **kw))


def _load_hf(name: str, *, gguf_file: str | None, dtype: torch.dtype | None) -> Backbone:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    path = Path(name)
    if gguf_file is None and path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"GGUF file {name!r} does not exist")
        name, gguf_file = str(path.parent), path.name
    kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    if gguf_file:
        try:
            import gguf  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError("loading a GGUF model needs the `gguf` package: pip install 'selective-w2sg[gguf]'") from None
    looks_local = path.exists() or name.startswith((".", "/", "~"))
    if looks_local and not Path(name).expanduser().exists():
        raise ConfigError(f"model path {name!r} does not exist")
    try:
        config = AutoConfig.from_pretrained(name, **kw)
        tok = AutoTokenizer.from_pretrained(name, **kw)
    except OSError as e:
        known = ", ".join(BUILTIN_MODELS)
        raise ConfigError(
            f"unknown model {name!r}: not a built-in ({known}), a local folder, or a reachable hub id ({e})"
        ) from None
    causal = _is_causal(config)
    auto = AutoModelForCausalLM if causal else AutoModel
    model = auto.from_pretrained(name, dtype=dtype or torch.float32, **kw)
    model.eval()
    _ensure_pad_token(tok, name)
    # Every text ends with "\nAnswer: <option>", the only part that differs between a question's
    # examples: truncate from the left (the start of a long passage goes), never the answer.
    tok.truncation_side = "left"
    if causal and getattr(tok, "padding_side", "right") != "left":
        tok.padding_side = "left"  # decoders: keep the last real token at the end of every row
    return Backbone(name, model, tok, causal, fingerprint=_fingerprint_hf(name, gguf_file))


def check_model_name(name: str) -> None:
    """Fail fast, before any work, on a model that is clearly not there: a local-looking path
    that does not exist. (A hub id is only checked when it is loaded.)"""
    if name in BUILTIN_MODELS:
        return
    p = Path(name).expanduser()
    if name.startswith(("/", ".", "~")) and not p.exists():
        raise ConfigError(f"model path {name!r} does not exist (built-ins: {', '.join(BUILTIN_MODELS)})")


def check_model_available(name: str, gguf_file: str | None = None) -> None:
    """Before any stage trains: a model that is neither built in, nor a local path, nor in the
    hub cache must be reachable on the hub, else a `ConfigError` naming it and why (offline,
    host unreachable, no such repository). Without this a bad strong-model id failed with a
    long chained traceback only after the weak model had trained."""
    check_model_name(name)
    if name in BUILTIN_MODELS or Path(name).expanduser().exists():
        return
    want = gguf_file or "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, want), str):
            return
    except Exception:  # a malformed id: reported below, by the hub's own validation
        pass
    reason = offline_reason()
    if reason is not None:
        raise ConfigError(f"model {name!r} is not a local path and not in the hub cache, and the hub cannot be "
                          f"reached ({reason}); download it first or give a local folder")
    try:
        from huggingface_hub import HfApi

        files = set(HfApi().list_repo_files(name))
    except Exception as e:  # no such repo, gated, a malformed id, network: one line, not a traceback chain
        what = type(e).__name__
        detail = str(e).strip().splitlines()[0] if str(e).strip() else what
        raise ConfigError(f"model {name!r} cannot be used: not a local path, and the hub says {what}: {detail}") from None
    if want not in files and not (gguf_file is None and any(f.endswith(".gguf") for f in files)):
        raise ConfigError(f"model {name!r} on the hub has no {want!r}")


def model_fingerprint(spec: ModelSpec) -> str:
    """What identifies a model's weights, without loading it (cache keys)."""
    if spec.name in BUILTIN_MODELS:
        return f"builtin:{spec.name}:v1"
    return _fingerprint_hf(spec.name, spec.gguf_file)


def _is_causal(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        return True
    return config.model_type not in _ENCODER_TYPES


def _ensure_pad_token(tok: Any, name: str) -> None:
    if tok.pad_token_id is not None:
        return
    for attr in ("eos_token", "unk_token"):
        if getattr(tok, attr, None) is not None:
            tok.pad_token = getattr(tok, attr)
            return
    raise ConfigError(f"model {name!r}: tokenizer has no pad, eos or unk token to pad with")


def _fingerprint_hf(name: str, gguf_file: str | None) -> str:
    """A local model: its file names, sizes and mtimes; a hub id: the id (and revision if cached)."""
    p = Path(name).expanduser()
    h = hashlib.sha256(json.dumps([name, gguf_file]).encode())
    if p.is_file():  # a model given as a path to one file (e.g. a .gguf)
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return "hf:" + h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Pooling and the forward pass


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


def length_sorted_batches(lengths: Sequence[int], batch_size: int, *, max_tokens: int | None = None,
                          call_cost: float | None = None) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first, so an OOM shows up at once),
    at most `batch_size` per batch and, with `max_tokens`, at most that many padded tokens.

    `call_cost`: the cost of one forward call in padded tokens. The longest-first order is then
    cut where it minimises (calls x call_cost + padded tokens), by dynamic programming, instead of
    every `batch_size` rows: short texts of very different lengths (a question's answer options)
    would otherwise be mostly padding, while many tiny calls pay the per-call cost (reading every
    weight once) too often."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    if call_cost is not None:
        return [order[i:j] for i, j in _cheapest_cuts([int(lengths[k]) for k in order], batch_size, max_tokens,
                                                       call_cost)]
    batches: list[np.ndarray] = []
    cur: list[int] = []
    for i in order:
        width = max(lengths[cur[0]], 1) if cur else lengths[i]
        if cur and (len(cur) >= batch_size or (max_tokens and (len(cur) + 1) * width > max_tokens)):
            batches.append(np.array(cur))
            cur = []
        cur.append(int(i))
    if cur:
        batches.append(np.array(cur))
    return batches


def _cheapest_cuts(widths: Sequence[int], batch_size: int, max_tokens: int | None, call_cost: float
                   ) -> list[tuple[int, int]]:
    """Cut non-increasing `widths` into runs [i, j) of at most `batch_size` (and `max_tokens`
    padded tokens, unless a run is one row) minimising sum(call_cost + (j - i) * widths[i])."""
    n = len(widths)
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, max(-1, j - 1 - batch_size), -1):
            rows, width = j - i, max(widths[i], 1)
            if rows > 1 and max_tokens and rows * width > max_tokens:
                break
            cost = best[i] + call_cost + rows * width
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs = []
    j = n
    while j > 0:
        runs.append((cut[j], j))
        j = cut[j]
    return runs[::-1]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists to the longest with the tokenizer's `pad_id` on its padding `side`:
    (input_ids int64 (b, t), attention_mask int64 (b, t))."""
    width = max((len(s) for s in seqs), default=0)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        if side == "left":
            ids[i, width - len(s) :] = s
            mask[i, width - len(s) :] = 1
        else:
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def tokenize(backbone: Backbone, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated to `max_length`; one fast batched call."""
    return list(backbone.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])


@dataclass
class ExtractStats:
    """Where the time of a feature extraction went."""

    n: int = 0
    wall_s: float = 0.0
    forward_s: float = 0.0

    @property
    def overhead_share(self) -> float:
        return 0.0 if self.wall_s == 0 else 1.0 - self.forward_s / self.wall_s


@torch.inference_mode()
def extract_features(
    backbone: Backbone, texts: Sequence[str], *, pooling: str | None = None, layers: Sequence[int] = (-1,),
    batch_size: int = 64, max_length: int = 256, device: Device | None = None,
    stats: ExtractStats | None = None, progress: Callable[[int], None] | None = None,
    max_tokens: int | None = None,
) -> dict[int, np.ndarray]:
    """Pooled hidden states of `texts` for each of `layers`: {layer: float32 (n, d)}, rows in the
    order of `texts`. One tokenisation, then batched forward passes over length-sorted batches
    (at most `batch_size` texts and `max_tokens` padded tokens each). Under torchrun each rank
    runs every world_size-th batch and the rows are gathered (bit-identical to one process)."""
    pooling = pooling or backbone.default_pooling
    device = device or pick_device()
    t0 = time.perf_counter()
    tok = backbone.tokenizer
    ids = tokenize(backbone, texts, max_length)
    lengths = [len(x) for x in ids]
    model = backbone.model.to(device.device)
    out = {layer: np.empty((len(texts), backbone.hidden_size), dtype=np.float32) for layer in layers}
    fwd = 0.0
    world = dist.world_size()
    mine = length_sorted_batches(lengths, batch_size, max_tokens=max_tokens)[dist.rank() :: world]
    for batch in mine:
        input_ids, mask = pad_batch([ids[i] for i in batch], tok.pad_token_id, tok.padding_side)
        input_ids, mask = input_ids.to(device.device), mask.to(device.device)
        f0 = time.perf_counter()
        with device.autocast():
            hs = hidden_states(model, input_ids, mask)
        if device.device.type == "cuda":
            torch.cuda.synchronize(device.device)
        fwd += time.perf_counter() - f0
        for layer in layers:
            out[layer][batch] = pool(hs[layer], mask, pooling).float().cpu().numpy()
        if progress is not None:
            progress(len(batch) * world)
    if world > 1:
        local = np.concatenate(mine) if mine else np.zeros(0, np.int64)
        out = {layer: dist.gather_rows(a[local], local, len(texts)) for layer, a in out.items()}
    if stats is not None:
        stats.n += len(texts)
        stats.wall_s += time.perf_counter() - t0
        stats.forward_s += fwd
    return out


# --------------------------------------------------------------------------------------------
# Classifier for full / lora training


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
        # `stages.training.fit_anchored_head` with a plain budget)
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
