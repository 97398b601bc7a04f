"""Loading a model by name (built-in, hub id, local folder, GGUF file); names checked and fingerprinted
without loading."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...config import ModelSpec
from ...graph.errors import ConfigError
from ..tasks import offline_reason
from .tiny import BUILTIN_MODELS, tiny_tokenizer

# Encoder model types: everything else with a causal-LM mapping is loaded as a causal LM.
_ENCODER_TYPES = {
    "bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "deberta", "deberta-v2", "electra",
    "albert", "camembert", "modernbert", "nomic_bert",
}


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
