#!/usr/bin/env python
"""One table row per run folder written by run_pairs.sh: test accuracy (binary examples) of the
weak model, the strong ceiling and the students, the ceiling-weak gap, PGR, and per-stage seconds
(a stage's seconds include the feature extraction it triggered; 'reused' stages show 0).

    python examples/real_models/summarize.py /tmp/real [LABEL]    # markdown table on stdout
LABEL (e.g. "probe, raw") fills the `mode` column.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def stage_seconds(d: str) -> float:
    p = Path(d) / "DONE.json"
    return json.loads(p.read_text())["seconds"] if p.exists() else float("nan")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/real")
    label = sys.argv[2] if len(sys.argv) > 2 else "probe"
    print("| task | mode | weak | strong | n (weak/w2s/test q) | weak acc | ceiling acc | gap (pts) | naive | aux_conf | "
          "PGR naive | PGR aux_conf | s weak | s ceiling | s students | wall s |")
    print("|" + "---|" * 16)
    for run in sorted(out.glob("*-minilm-l6-*")):
        res = run / "results.json"
        if not res.exists():
            continue
        r = json.loads(res.read_text())
        s = r["summary"]["models"]
        seeds = r["seeds"]
        task = seeds[0]["task"]
        strong = run.name.split("-minilm-l6-")[1]
        sp = json.loads((run / f"seed{seeds[0]['seed']}" / "splits.json").read_text())["question_ids"]
        n = f"{len(sp['weak_train'])}/{len(sp['w2s_train']) + len(sp['w2s_val'])}/{len(sp['test'])}"
        dirs = seeds[0]["stage_dirs"]
        log = (run / "log.txt").read_text() if (run / "log.txt").exists() else ""
        reused = set(re.findall(r"reused (\S+)", log))
        secs = {k: (0.0 if k in reused else stage_seconds(v)) for k, v in dirs.items()}
        wall = re.findall(r"wall_s (\d+)", log)
        acc = {k: 100 * v["accuracy"] for k, v in s.items()}
        pgr = {k: v.get("pgr") for k, v in s.items()}
        fmt = lambda x: "" if x is None else f"{x:.2f}"  # noqa: E731
        stud = sum(v for k, v in secs.items() if k not in ("weak", "ceiling"))
        print(f"| {task} | {label} | MiniLM-L6 | {strong} | {n} | {acc['weak']:.1f} | {acc['ceiling']:.1f} | "
              f"{acc['ceiling'] - acc['weak']:+.1f} | {acc.get('naive', float('nan')):.1f} | "
              f"{acc.get('aux_conf', float('nan')):.1f} | {fmt(pgr.get('naive'))} | {fmt(pgr.get('aux_conf'))} | "
              f"{secs.get('weak', 0):.0f} | {secs.get('ceiling', 0):.0f} | {stud:.0f} | {wall[-1] if wall else ''} |")


if __name__ == "__main__":
    main()
