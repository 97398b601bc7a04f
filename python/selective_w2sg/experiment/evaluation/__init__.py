"""Evaluation: accuracy and AUROC on `test`, performance gap recovered (PGR), aggregation over
seeds (mean ± standard error), tables and a plot; with `analysis`, the only code that reads
hidden ground truth. By concern:

    metrics   per-seed test metrics, PGR, the aggregate over seeds and the paired summary
    tables    the rich tables the CLI prints
    plots     the results plot (matplotlib)
    report    a run folder's per-seed results read back, and results.json / results.png written
"""

from __future__ import annotations

from .metrics import (
    BASELINES,
    aggregate,
    binary_metrics,
    evaluate_seed,
    mean_se,
    paired_summary,
    pgr,
    pik_test_metrics,
    test_predictions,
)
from .plots import (
    plot_summary,
)
from .report import (
    PREDICTION_ARRAYS,
    SEED_KEYS,
    load_seed_results,
    load_test_predictions,
    read_json,
    write_report,
)
from .tables import (
    contrasts_table,
    results_table,
    sources_table,
)

__all__ = [
    "BASELINES",
    "aggregate",
    "binary_metrics",
    "evaluate_seed",
    "mean_se",
    "paired_summary",
    "pgr",
    "pik_test_metrics",
    "test_predictions",
    "contrasts_table",
    "results_table",
    "sources_table",
    "plot_summary",
    "PREDICTION_ARRAYS",
    "SEED_KEYS",
    "load_seed_results",
    "load_test_predictions",
    "read_json",
    "write_report",
]
