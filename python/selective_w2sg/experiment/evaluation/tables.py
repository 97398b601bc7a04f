"""The rich tables of a summary: results, paired contrasts, per-source results."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _fmt(mean: float, se: float, pct: bool = True, one: bool = False) -> str:
    """`mean ± se` in percent (or plain with pct=False); just the mean when `one` (one seed: no spread)."""
    if not math.isfinite(mean):
        return "—"
    k = 100.0 if pct else 1.0
    m = f"{mean * k:.1f}" if pct else f"{mean:.2f}"
    if one or not math.isfinite(se):
        return m
    return f"{m} ± {se * k:.1f}" if pct else f"{m} ± {se:.2f}"


def contrasts_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of the paired contrasts (None without them)."""
    from rich.table import Table

    rows = summary.get("contrasts")
    if not rows:
        return None
    n = rows[0]["n_resplits"]
    pooled = "pool" in rows[0]
    t = Table(title=f"{summary['task']}: paired test-accuracy differences, points (question-level, {n} re-split(s))")
    cols = ("contrast", "mean", *(("pool 95% CI", "p (pool)", "p (Holm, table)") if pooled else ()),
            "protocol 95% CI", "p (protocol)")
    for col in cols:
        t.add_column(col, justify="left" if col == "contrast" else "right")
    fp = (lambda v: "—" if v is None or not math.isfinite(v) else f"{v:.3g}")  # noqa: E731
    fci = (lambda c: "—" if not all(x is not None and math.isfinite(x) for x in c)  # noqa: E731
           else f"[{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]")
    for r in rows:
        pool = [fci(r["pool"]["ci95"]), fp(r["pool"]["p"]), fp(r["pool"].get("p_holm_table"))] if pooled else []
        t.add_row(f"{r['a']} - {r['b']}", f"{100 * r['mean']:+.1f}", *pool, fci(r["ci95"]), fp(r["p"]))
    t.caption = ("pool: bootstrap over the pool's questions (each question's results across re-splits move "
                 "together) and the re-splits' training residuals: the basis of a claim. protocol: re-splits "
                 "treated as independent, which they are not (they share questions): the variability of the "
                 "protocol on this pool only.")
    return t


def sources_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of question-level test accuracy per source of a mixture (None otherwise)."""
    from rich.table import Table

    by = summary.get("question_accuracy_by_source")
    if not by:
        return None
    sources = list(by)
    t = Table(title=f"{summary['task']}: question-level test accuracy % per source (mean ± s.e. over re-splits)")
    t.add_column("model")
    for src in sources:
        t.add_column(src, justify="right")
    one = len(summary["seeds"]) == 1
    for name in by[sources[0]]:
        t.add_row(name, *[_fmt(by[src][name]["mean"], by[src][name]["se"], one=one) for src in sources])
    return t


def results_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of the aggregate: accuracy, AUROC (percent) and PGR per model."""
    from rich.table import Table

    seeds = summary["seeds"]
    spread = " (mean ± s.e.)" if len(seeds) > 1 else ""
    t = Table(title=f"{summary['task']}: test metrics over {len(seeds)} seed(s){spread}")
    t.add_column("model")
    t.add_column("accuracy %", justify="right")
    t.add_column("AUROC %", justify="right")
    t.add_column(f"PGR ({summary['metric']})", justify="right")
    oracle = set(summary.get("oracle", []))
    ratio = summary.get("pgr_ratio_of_means", {})
    if ratio:
        t.add_column("PGR, ratio of means [95% CI]", justify="right")
    for name, row in summary["models"].items():
        p = _fmt(row["pgr"], row["pgr_se"], pct=False, one=len(seeds) == 1) if "pgr" in row else ""
        label = f"{name} [yellow](oracle: upper bound)[/]" if name in oracle else name
        cells = [label, _fmt(row["accuracy"], row["accuracy_se"], one=len(seeds) == 1),
                 _fmt(row["auroc"], row["auroc_se"], one=len(seeds) == 1), p]
        if ratio:
            r = ratio.get(name)
            cells.append("" if r is None else f"{r['pgr']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
        t.add_row(*cells)
    one = len(seeds) == 1
    if "selective" in summary:
        x = summary["selective"]
        accs = ", ".join(f"{k.removeprefix('label_accuracy_')} {_fmt(*v, one=one)}" for k, v in x.items()
                         if k.startswith("label_accuracy_"))
        t.caption = (f"P(IK) test AUROC per question {_fmt(*x['pik_test_question_auroc'], one=one)} % (zero-shot "
                     f"confidence alone: {_fmt(*x['confidence_test_question_auroc'], one=one)} %), selective coverage {_fmt(*x['coverage'], one=one)} %; "
                     f"w2s_train label accuracy (analysis only): {accs}")
    if summary["flagged_seeds"]:
        t.caption = (t.caption + "\n" if t.caption else "") + (f"[yellow]ceiling <= weak on seed(s) {summary['flagged_seeds']}: PGR undefined there, "
                     "left out of the PGR mean[/]")
    return t
