"""A run folder's report: its per-seed results and test predictions read back (corrupt or missing
files are errors naming them), the aggregate written without ever losing a model or a seed."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...graph.errors import DataError
from ...graph.io import save_json
from .metrics import aggregate
from .plots import plot_summary

# What `aggregate` reads from each seed's results.json.
SEED_KEYS = ("task", "seed", "metric", "models", "pgr", "ceiling_beats_weak")


PREDICTION_ARRAYS = ("models", "preds", "labels", "question")


def read_json(path: Path, what: str) -> Any:
    """A JSON file, or a `DataError` naming it: unreadable, empty, truncated, not JSON."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{what} {str(path)!r} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not text.strip():
        raise DataError(f"{what} {str(path)!r} is empty")
    try:
        return json.loads(text)
    except ValueError as e:
        raise DataError(f"{what} {str(path)!r} is corrupt: not JSON ({e})") from None


def load_seed_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every `seed*/results.json` under a run folder; a corrupt one (not JSON, or without
    what the aggregate needs) is a `DataError` naming it."""
    root = Path(out_dir)
    if not root.is_dir():
        raise DataError(f"run folder {str(root)!r} does not exist")
    files = sorted(root.glob("seed*/results.json"), key=lambda p: p.parent.name)
    if not files:
        raise DataError(f"no seed*/results.json under {str(root)!r}: run `sw2s train --out {root}` first")
    out = []
    for f in files:
        r = read_json(f, "seed results")
        missing = [k for k in SEED_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise DataError(f"seed results {str(f)!r} is corrupt: no {', '.join(map(repr, missing))}")
        if not isinstance(r["models"], dict) or not r["models"] or not isinstance(r["pgr"], dict):
            raise DataError(f"seed results {str(f)!r} is corrupt: 'models' and 'pgr' must be non-empty objects")
        out.append(r)
    return out


def load_test_predictions(out_dir: str | os.PathLike[str], seeds: Sequence[int], *, required: bool = False,
                          ) -> list[dict[str, np.ndarray]] | None:
    """Every seed's `seed<k>/test_predictions.npz`; None if one is missing (`required`: a
    `DataError` naming it). An empty, truncated or foreign file is always a `DataError` naming it."""
    import zipfile

    files = [Path(out_dir) / f"seed{s}" / "test_predictions.npz" for s in seeds]
    for f in files:
        if not f.is_file():
            if required:
                raise DataError(f"test predictions {str(f)!r} are missing: rerun `sw2s train` with this run's "
                                "settings to write them (report would otherwise drop the paired statistics)")
            return None
    out = []
    for f in files:
        if f.stat().st_size == 0:
            raise DataError(f"test predictions {str(f)!r} are empty (0 bytes)")
        try:
            with open(f, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # (numpy leaks the file on a bad zip)
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError) as e:
            reason = str(e).split(". ")[0].replace("\n", " ") or type(e).__name__
            raise DataError(f"test predictions {str(f)!r} are truncated or corrupt ({reason})") from None
        missing = [a for a in PREDICTION_ARRAYS if a not in arrays]
        if missing:
            raise DataError(f"test predictions {str(f)!r} are corrupt: no {', '.join(map(repr, missing))} array")
        out.append(arrays)
    return out


def _lost(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What an aggregate `new` would drop from `old`: top-level sections, seeds, models."""
    lost = [f"section {k!r}" for k in old if k not in new]
    lost += [f"seed {s}" for s in old.get("seeds", []) if s not in new.get("seeds", [])]
    lost += [f"model {m!r}" for m in old.get("models", {}) if m not in new.get("models", {})]
    return lost


def write_report(out_dir: str | os.PathLike[str], results: Sequence[Mapping[str, Any]], *, keep: bool = False,
                 ) -> dict[str, Any]:
    """Aggregate per-seed results into `results.json` and `results.png` in `out_dir`.
    `keep` (`sw2s report`): every seed's test predictions are required, and a `results.json`
    that the new aggregate would shrink (a section, seed or model dropped) is left as it is,
    with a `DataError` saying what would be lost."""
    root = Path(out_dir)
    old: Mapping[str, Any] = {}
    if keep and (root / "results.json").is_file():
        try:
            prev = json.loads((root / "results.json").read_text())
            old = prev.get("summary", {}) if isinstance(prev, dict) and isinstance(prev.get("summary"), dict) else {}
        except (OSError, ValueError):  # unreadable: nothing to keep, regenerate it
            old = {}
    # a run whose aggregate never had the paired statistics may lack the predictions they need
    required = keep and ("contrasts" in old or "question_accuracy" in old or not old)
    preds = load_test_predictions(out_dir, [r["seed"] for r in results], required=required)
    summary = aggregate(results, preds)
    lost = _lost(old, summary)
    if lost:
        raise DataError(f"refusing to rewrite {str(root / 'results.json')!r}: the new aggregate would drop "
                        f"{', '.join(lost[:6])}{' ...' if len(lost) > 6 else ''}")
    save_json(root / "results.json", {"summary": summary, "seeds": list(results)})
    plot_summary(summary, root / "results.png")
    return summary
