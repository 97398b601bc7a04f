"""Probe-mode feature extraction: batched + length-sorted (selective_w2sg.experiment.models.extract_features)
against a one-example-at-a-time loop (as in EleutherAI/w2s), on the CPU, in one run.

    python benches/bench_features.py [--n 512] [--hidden 256] [--layers 4] [--batch-size 64]

Prints examples/s of both, their ratio, and the share of the batched run's wall time spent
outside model forward passes (target: under 5%)."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="examples")
    ap.add_argument("--hidden", type=int, default=256, help="hidden size of the random Llama")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import LlamaConfig, LlamaForCausalLM

    from selective_w2sg.experiment.models import Backbone, ExtractStats, extract_features, pick_device, pool, tiny_tokenizer
    from selective_w2sg.experiment.tasks import build_splits

    tok = tiny_tokenizer("left")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=args.hidden, num_hidden_layers=args.layers,
                      num_attention_heads=4, num_key_value_heads=4, intermediate_size=4 * args.hidden,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    bb = Backbone("bench-llama", model, tok, True, "bench")
    splits = build_splits("synthetic", seed=0, n_weak=args.n // 2, n_w2s=args.n // 2 + 30, n_test=20)
    texts = (splits.texts("weak_train") + splits.texts("w2s_train"))[: args.n]
    dev = pick_device("cpu")
    lengths = [len(x) for x in tok(texts)["input_ids"]]
    print(f"{len(texts)} examples, {min(lengths)}-{max(lengths)} tokens (mean {np.mean(lengths):.1f}); "
          f"Llama hidden {args.hidden} x {args.layers} layers; torch threads {torch.get_num_threads()}")

    extract_features(bb, texts[:64], batch_size=args.batch_size, device=dev)  # warm-up
    stats = ExtractStats()
    batched = extract_features(bb, texts, batch_size=args.batch_size, device=dev, stats=stats)[-1]

    # The loop: tokenise one text, forward it alone, pool its last token.
    t0 = time.perf_counter()
    loop_fwd = 0.0
    rows = []
    with torch.inference_mode():
        for t in texts:
            enc = tok(t, return_tensors="pt")
            f0 = time.perf_counter()
            out = model(**enc, output_hidden_states=True)
            loop_fwd += time.perf_counter() - f0
            rows.append(pool(out.hidden_states[-1], enc["attention_mask"], "last")[0].numpy())
    loop_s = time.perf_counter() - t0
    single = np.stack(rows)

    err = float(np.abs(batched - single).max())
    b_rate, l_rate = stats.n / stats.wall_s, len(texts) / loop_s
    print(f"batched+sorted : {b_rate:9.1f} examples/s  ({stats.wall_s:.2f} s; outside forward: "
          f"{100 * stats.overhead_share:.1f}% of wall time)")
    print(f"one at a time  : {l_rate:9.1f} examples/s  ({loop_s:.2f} s; outside forward: "
          f"{100 * (1 - loop_fwd / loop_s):.1f}%)")
    print(f"speed-up       : {b_rate / l_rate:.1f}x   max |batched - single| = {err:.2e}")


if __name__ == "__main__":
    main()
