"""The encode pass (the strong model over every option of every question), before and after
prefix sharing, and the inference settings of encoders, in one run on one question set.

    python benches/bench_encode.py --model PATH [--gguf FILE] --task sciq --data DIR [--questions 200]
    python benches/bench_encode.py --model tiny-random-llama --task synthetic      # smoke run

Causal LMs: `plain` (every option text as one whole sequence: the question is recomputed per
option) against `shared` (a question's context once, options from its key/value cache). Encoders:
`fp32` (the CPU default) against `bf16` autocast on the CPU (`--precision bf16`). Prints texts/s,
real and padded tokens computed, speed ratios (settings alternate over `--repeats` rounds, each
keeping its fastest), and how far the outputs are from the first setting's (max |difference| of
option probabilities and features, self-label agreement)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="built-in name, HF folder, or folder holding --gguf")
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--task", default="synthetic")
    ap.add_argument("--data", default=None, help="the task's data (a saved dataset folder or file)")
    ap.add_argument("--questions", type=int, default=200, help="the first N questions of the task")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2, help="alternating rounds; each setting keeps its fastest")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from selective_w2sg.experiment.encode import EncodeStats, encode_questions
    from selective_w2sg.experiment.models import Device, load_backbone
    from selective_w2sg.experiment.tasks import load_questions, synthetic_questions

    qs = synthetic_questions(args.questions, seed=0) if args.task == "synthetic" else \
        load_questions(args.task, args.data)[: args.questions]
    bb = load_backbone(args.model, gguf_file=args.gguf)
    cpu = torch.device("cpu")
    if bb.is_causal:
        settings = {"plain": dict(share_prefix=False, device=Device(cpu, False)),
                    "shared": dict(share_prefix=True, device=Device(cpu, False))}
    else:
        settings = {"fp32": dict(device=Device(cpu, False)), "bf16": dict(device=Device(cpu, True))}
    # warm-up (allocator, thread pool, lazy init) on a few questions, not timed
    encode_questions(bb, qs[:4], batch_size=args.batch_size, max_length=args.max_length, **settings[next(iter(settings))])
    results, outs = {}, {}
    # Settings alternate, `--repeats` rounds, and each keeps its fastest round: on a shared machine
    # a load spike then hits both settings alike instead of whichever ran during it.
    for _ in range(args.repeats):
        for name, kw in settings.items():
            st = EncodeStats()
            t0 = time.perf_counter()
            outs[name] = encode_questions(bb, qs, batch_size=args.batch_size, max_length=args.max_length, stats=st,
                                          **kw)
            wall = time.perf_counter() - t0
            if name in results and results[name]["wall_s"] <= wall:
                continue
            results[name] = {"texts": st.texts, "tokens": st.tokens, "padded_tokens": st.padded_tokens,
                             "forward_calls": st.forward_calls, "wall_s": round(wall, 2),
                             "texts_per_s": round(st.texts / wall, 2)}
    first = next(iter(outs))
    base = outs[first]
    print(f"model {args.model} ({'causal' if bb.is_causal else 'encoder'}), task {args.task}, {len(qs)} questions, "
          f"{sum(len(q.options) for q in qs)} options, torch threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"| setting | texts | tokens computed | padded tokens | wall s | texts/s | speed vs {first} | "
          f"max |dprob| | max |dfeature| | self-label agreement |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        o = outs[name]
        dprob = float(np.abs(o.option_prob - base.option_prob).max())
        dfeat = float(np.abs(o.features - base.features).max())
        agree = float((o.is_own_answer == base.is_own_answer).mean())
        r.update(max_abs_dprob=dprob, max_abs_dfeature=dfeat, self_label_agreement=agree,
                 speedup=round(results[first]["wall_s"] / r["wall_s"], 2))
        print(f"| {name} | {r['texts']} | {r['tokens']} | {r['padded_tokens']} | {r['wall_s']} | {r['texts_per_s']} | "
              f"{r['speedup']}x | {dprob:.2e} | {dfeat:.2e} | {agree:.4f} |")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
