#!/usr/bin/env python
"""Turn finished `sw2s train --resplits N` run folders (one per task) into the README's evidence:
a markdown table of baselines and students (question-level test accuracy, mean ± s.e. over
re-splits), the paired contrasts with 95% CIs and Holm p-values, P(IK) against the zero-shot
confidence, and one plot of every task's contrasts.

    python examples/real_models/collect_evidence.py OUT_DIR --tasks sciq openbookqa ... [--plot docs/real_contrasts.png]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

MODELS = ("weak", "zero_shot", "ceiling", "naive", "aux_conf", "self_only", "smooth_only", "selective", "pik_only",
          "random_select", "constant_pik", "confidence_pik", "oracle_pik")


def pct(m: float, s: float | None = None) -> str:
    if m is None or not math.isfinite(m):
        return "—"
    return f"{100 * m:.1f}" if s is None else f"{100 * m:.1f} ± {100 * s:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    summaries = {}
    for t in args.tasks:
        f = args.out / t / "results.json"
        if f.is_file():
            summaries[t] = json.loads(f.read_text())["summary"]
    if not summaries:
        raise SystemExit(f"no results.json under {args.out}/<task>/")
    print("Test accuracy %, question level, mean ± s.e. over re-splits (oracle_pik reads w2s ground truth: an upper bound)\n")
    print("| task (re-splits) | " + " | ".join(MODELS) + " |")
    print("|---" * (len(MODELS) + 1) + "|")
    for t, s in summaries.items():
        qa = s["question_accuracy"]
        cells = [pct(qa[m]["mean"], qa[m]["se"]) if m in qa else "—" for m in MODELS]
        print(f"| {t} ({len(s['seeds'])}) | " + " | ".join(cells) + " |")
    print("\nPaired differences, points: mean [95% CI] (Holm p)\n")
    pairs = [(c["a"], c["b"]) for c in next(iter(summaries.values()))["contrasts"]]
    print("| task | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |")
    print("|---" * (len(pairs) + 1) + "|")
    for t, s in summaries.items():
        by = {(c["a"], c["b"]): c for c in s["contrasts"]}
        cells = []
        for p in pairs:
            c = by.get(p)
            cells.append("—" if c is None else
                         f"{100 * c['mean']:+.1f} [{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}] ({c['p_holm']:.2g})")
        print(f"| {t} | " + " | ".join(cells) + " |")
    print("\nP(IK) on test: trained probe AUROC vs the strong model's zero-shot confidence; selective coverage;"
          " PGR of selective and naive (ratio of means [95% CI])\n")
    print("| task | P(IK) AUROC | confidence AUROC | coverage | PGR selective | PGR naive | epochs chosen (tune) |")
    print("|---|---|---|---|---|---|---|")
    for t, s in summaries.items():
        x = s.get("selective", {})
        r = s.get("pgr_ratio_of_means", {})
        def fmt(n: str) -> str:
            if n not in r:
                return "—"
            if not math.isfinite(r[n]["pgr"]):
                return "undefined (ceiling ≤ weak)"
            return f"{r[n]['pgr']:.2f} [{r[n]['ci95'][0]:.2f}, {r[n]['ci95'][1]:.2f}]"

        ep = _epochs(args.out / t)
        print(f"| {t} | {pct(*x.get('pik_test_auroc', (float('nan'), 0)))} | "
              f"{pct(*x.get('confidence_test_auroc', (float('nan'), 0)))} | {pct(*x.get('coverage', (float('nan'), 0)))} | "
              f"{fmt('selective')} | {fmt('naive')} | {ep} |")
    if args.plot:
        plot(summaries, args.plot)
        print(f"\nplot: {args.plot}")


def _epochs(run: Path) -> str:
    from collections import Counter

    eps = []
    for f in sorted(run.glob("seed*/results.json")):
        tune = json.loads(f.read_text()).get("selective", {}).get("tune", {})
        eps.append(tune.get("epochs"))
    c = Counter(eps)
    return ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0])))


def plot(summaries: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(c["a"], c["b"]) for c in next(iter(summaries.values()))["contrasts"]]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(pairs) * len(summaries) ** 0.5 + 2.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    step = 0.8 / max(1, len(summaries))
    for k, (t, s) in enumerate(summaries.items()):
        by = {(c["a"], c["b"]): c for c in s["contrasts"]}
        ys, ms, lo, hi = [], [], [], []
        for i, p in enumerate(pairs):
            c = by.get(p)
            if c is None:
                continue
            ys.append(len(pairs) - 1 - i + 0.4 - (k + 0.5) * step)
            ms.append(100 * c["mean"])
            lo.append(100 * (c["mean"] - c["ci95"][0]))
            hi.append(100 * (c["ci95"][1] - c["mean"]))
        ax.errorbar(ms, ys, xerr=[lo, hi], fmt="o", color=colors[k % len(colors)], capsize=3,
                    label=f"{t} ({len(s['seeds'])} re-splits)")
    ax.axvline(0, color="#999999", lw=1)
    ax.set_yticks(range(len(pairs))[::-1], [f"{a} − {b}" for a, b in pairs])
    ax.set_xlabel("paired test-accuracy difference, points (95% bootstrap CI)")
    ax.set_title("MiniLM-L6 → MPNet-base, probe mode, anchored heads")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
