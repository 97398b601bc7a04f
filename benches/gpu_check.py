"""GPU check of the full-mode training path (`--mode full`, bf16 autocast), with no hub:
a randomly initialised Llama-style model of realistic size, the package's own `Classifier` and
`train_classifier`, a few hundred optimiser steps. Reports tokens/s, model FLOPs utilisation (MFU)
and peak GPU memory.

    python benches/gpu_check.py                       # ~0.5B parameters, 300 steps (GPU)
    python benches/gpu_check.py --tiny --steps 5      # smoke run on a CPU

MFU = 6 * parameters * tokens/s / peak bf16 FLOP/s (`--peak-tflops`, default 989: H100 SXM dense).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--micro-batch-size", type=int, default=16)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--tiny", action="store_true", help="a tiny model, for a CPU smoke run")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM

    from selective_w2sg.models import Backbone, Classifier
    from selective_w2sg.train import TokenInputs, TrainConfig, train_classifier

    if args.tiny:
        cfg = LlamaConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=128, max_position_embeddings=args.seq)
    else:  # ~0.5B parameters, Qwen2.5-0.5B-like shape
        cfg = LlamaConfig(vocab_size=32000, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          num_key_value_heads=4, intermediate_size=4096, max_position_embeddings=args.seq,
                          tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())

    class _Tok:  # the only tokenizer fields the classifier path reads
        pad_token_id = 0
        padding_side = "left"

    clf = Classifier(Backbone("random-llama", model, _Tok(), True, "random:v1"))
    n = args.steps * args.batch_size
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.seq // 2, args.seq + 1, size=n)
    ids = [list(rng.integers(1, cfg.vocab_size, size=int(L))) for L in lengths]
    labels = rng.random(n).astype(np.float32)
    tcfg = TrainConfig(mode="full", epochs=1, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
                       lr=5e-5, max_length=args.seq, device="auto")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t = time.perf_counter()
    res = train_classifier(clf, TokenInputs(ids, 0, "left"), labels, None, None, tcfg, seed=0)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    tokens = int(lengths.sum())
    tps = tokens / secs
    out = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "parameters": n_params,
        "steps": res.steps,
        "tokens": tokens,
        "seconds": secs,
        "tokens_per_s": tps,
        "mfu": 6 * n_params * tps / (args.peak_tflops * 1e12),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
