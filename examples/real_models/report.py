"""Markdown tables and one PNG (PGR by method and task) from `sw2s train --method all` run folders.

    python examples/real_models/report.py RUN_DIR [RUN_DIR ...] --png docs/real_pgr.png \
        --transfer pik_transfer.json     # from `sw2s pik-transfer RUN_DIR ... --out pik_transfer.json`
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

METHODS = ("naive", "aux_conf", "selective", "pik_only", "smooth_only")


def fmt(mean: float, se: float, k: float = 100.0, digits: int = 1) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean * k:.{digits}f} ± {se * k:.{digits}f}"


def stage_seconds(run: Path) -> dict[str, float]:
    """Seconds per stage kind, summed over the stage folders this run's seeds used."""
    out: dict[str, float] = defaultdict(float)
    seen = set()
    for res in sorted(run.glob("seed*/results.json")):
        for name, path in json.loads(res.read_text())["stage_dirs"].items():
            if path in seen:
                continue
            seen.add(path)
            done = Path(path) / "DONE.json"
            if done.is_file():
                out[name] += json.loads(done.read_text())["seconds"]
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--transfer", type=Path, help="JSON written by `sw2s pik-transfer`")
    ap.add_argument("--min-gap", type=float, default=3.0,
                    help="plot only runs whose ceiling beats the weak model by this many points (PGR needs a gap)")
    args = ap.parse_args()
    rows, times, pik_rows = [], [], []
    pgr: dict[str, dict[str, tuple[float, float]]] = {}
    used: dict[str, str] = {}  # task -> tick label naming the seeds PGR is defined on
    gaps: dict[str, float] = {}  # task -> ceiling - weak, accuracy points
    strongs = {Path(json.loads((r / "config.json").read_text())["strong"]).name for r in args.runs}
    for run in args.runs:
        summary = json.loads((run / "results.json").read_text())["summary"]
        cfg = json.loads((run / "config.json").read_text())
        m = summary["models"]
        strong = Path(cfg["strong"]).name
        task = summary["task"] if len(strongs) == 1 else f"{summary['task']} ({strong})"
        gaps[task] = 100 * (m["ceiling"]["accuracy"] - m["weak"]["accuracy"])
        acc = [fmt(m[n]["accuracy"], m[n]["accuracy_se"]) for n in ("weak", "ceiling", *METHODS)]
        rows.append(f"| {task} | {Path(cfg['weak']).name} → {strong} | {len(summary['seeds'])} | " + " | ".join(acc) + " |")
        pgr[task] = {n: (m[n].get("pgr", float("nan")), m[n].get("pgr_se", float("nan"))) for n in METHODS}
        used[task] = f"{task}\n(PGR over {m[METHODS[0]].get('pgr_n', 0)} of {len(summary['seeds'])} seeds)"
        sel = summary.get("selective", {})
        pik_rows.append(f"| {task} | {fmt(*sel.get('pik_test_auroc', (float('nan'), 0)))} | "
                        f"{fmt(*sel.get('coverage', (float('nan'), 0)))} | "
                        f"{fmt(*sel.get('label_accuracy_weak', (float('nan'), 0)))} | "
                        f"{fmt(*sel.get('label_accuracy_self', (float('nan'), 0)))} | "
                        f"{fmt(*sel.get('label_accuracy_smoothed', (float('nan'), 0)))} | "
                        f"{fmt(*sel.get('label_accuracy_selective', (float('nan'), 0)))} | "
                        f"{summary['flagged_seeds'] or '—'} |")
        t = stage_seconds(run)
        times.append(f"| {task} | " + " | ".join(f"{t.get(s, 0):.0f}" for s in
                                                ("weak", "encode", "ceiling", "pik", "smooth", "select", *METHODS)) + " |")
    print("| task | weak → strong | seeds | weak | ceiling | " + " | ".join(METHODS) + " |")
    print("|---" * (5 + len(METHODS)) + "|")
    print("\n".join(rows))
    print("\n| task | " + " | ".join(f"PGR {n}" for n in METHODS) + " |")
    print("|---" * (1 + len(METHODS)) + "|")
    for task, p in pgr.items():
        print(f"| {task} | " + " | ".join(fmt(*p[n], k=1, digits=2) for n in METHODS) + " |")
    print("\n| task | P(IK) test AUROC | self-label coverage | weak label acc | self-label acc | smoothed acc | selected acc | seeds flagged |")
    print("|---" * 8 + "|")
    print("\n".join(pik_rows))
    print("\n| task | " + " | ".join(("weak", "encode", "ceiling", "pik", "smooth", "select", *METHODS)) + " |  (seconds, all seeds)")
    print("|---" * 12 + "|")
    print("\n".join(times))
    if args.transfer:
        t = json.loads(args.transfer.read_text())
        names = t["tasks"]
        print(f"\n| P(IK) test AUROC: train ↓ / eval → (seeds {', '.join(map(str, t['seeds']))}) | "
              + " | ".join(names) + " |")
        print("|---" * (1 + len(names)) + "|")
        for a in names:
            print(f"| {a} | " + " | ".join(fmt(t["mean"][a][b]["auroc"], t["mean"][a][b]["se"]) for b in names) + " |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        tasks = [t for t in pgr if gaps[t] >= args.min_gap]
        left_out = [f"{t} (gap {gaps[t]:.1f})" for t in pgr if gaps[t] < args.min_gap]
        width = 0.8 / len(METHODS)
        fig, ax = plt.subplots(figsize=(2.2 * len(tasks) + 3.5, 3.8))
        for i, n in enumerate(METHODS):
            vals = [pgr[t][n][0] for t in tasks]
            errs = [pgr[t][n][1] for t in tasks]
            ax.bar(np.arange(len(tasks)) + i * width, vals, width, yerr=errs, capsize=3, label=n)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, [used[t] for t in tasks])
        ax.set_ylabel("PGR (accuracy), mean ± s.e.")
        ax.legend(fontsize=8, ncol=3)
        ax.set_title("PGR by method and task (probe mode)"
                     + (f"\nleft out, ceiling - weak < {args.min_gap:g} points: {', '.join(left_out)}" if left_out else ""),
                     fontsize=10)
        fig.tight_layout()
        args.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=120)


if __name__ == "__main__":
    main()
