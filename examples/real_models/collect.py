"""Copy the small result files of run folders into examples/real_models/results/<name>/, so the
README's numbers stay checkable: config.json, results.json, seed<k>/results.json, seed<k>/splits.json
(and a pik_transfer.json beside the runs). Stage caches are not copied.

    python examples/real_models/collect.py /tmp/real8/sciq /tmp/real8/social_iqa ... [--transfer FILE]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

DEST = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--transfer", type=Path, action="append", default=[])
    args = ap.parse_args()
    for run in args.runs:
        out = DEST / run.name
        files = [run / "config.json", run / "results.json", *sorted(run.glob("seed*/results.json")),
                 *sorted(run.glob("seed*/splits.json"))]
        for f in files:
            target = out / f.relative_to(run)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
        print(f"{run} -> {out} ({len(files)} files)")
    for t in args.transfer:
        shutil.copyfile(t, DEST / t.name)
        print(f"{t} -> {DEST / t.name}")


if __name__ == "__main__":
    main()
