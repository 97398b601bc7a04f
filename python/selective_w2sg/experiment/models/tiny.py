"""Built-in tiny random models (no hub): a word-level tokenizer built in code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..tasks import SYNTH_VOCAB


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
