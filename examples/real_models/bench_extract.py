#!/usr/bin/env python
"""Load each prepared model with `selective_w2sg.experiment.models.load_backbone` and time one
`extract_features` call on N real task texts (the exact texts `sw2s train` classifies).

    OMP_NUM_THREADS=2 python examples/real_models/bench_extract.py --task sciq --n 64
Prints one JSON line per model: load seconds, extraction seconds, examples/s, mean tokens/text.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("SW2S_REAL_DIR", Path.home() / ".cache" / "sw2s-real"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--models", default="minilm-l6,mpnet-base,smollm2-135m,gemma3-270m")
    ap.add_argument("--task", default="sciq")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import torch

    from selective_w2sg.experiment.models import ExtractStats, extract_features, load_backbone, pick_device, tokenize
    from selective_w2sg.experiment.tasks import load_questions, make_examples

    manifest = json.loads((args.root / "manifest.json").read_text())
    qs = load_questions(args.task, manifest["data"][args.task]["path"])
    texts = [e.text for e in make_examples(qs[: args.n // 2 + 1], seed=0)][: args.n]
    dev = pick_device("cpu")
    for name in args.models.split(","):
        m = manifest["models"][name]
        t0 = time.perf_counter()
        bb = load_backbone(m["path"], gguf_file=m["gguf_file"])
        load_s = time.perf_counter() - t0
        ntok = sum(len(x) for x in tokenize(bb, texts, args.max_length)) / len(texts)
        extract_features(bb, texts[:4], max_length=args.max_length, device=dev)  # warm-up
        st = ExtractStats()
        feats = extract_features(bb, texts, max_length=args.max_length, batch_size=args.batch_size, device=dev, stats=st)
        f = next(iter(feats.values()))
        print(json.dumps({
            "model": name, "threads": torch.get_num_threads(), "params_M": round(sum(p.numel() for p in bb.model.parameters()) / 1e6, 1),
            "hidden": bb.hidden_size, "causal": bb.is_causal, "load_s": round(load_s, 2), "n": len(texts),
            "mean_tokens": round(ntok, 1), "extract_s": round(st.wall_s, 2), "examples_per_s": round(len(texts) / st.wall_s, 1),
            "finite": bool(torch.isfinite(torch.from_numpy(f)).all()), "feat_std": round(float(f.std()), 3),
        }), flush=True)
        del bb


if __name__ == "__main__":
    main()
