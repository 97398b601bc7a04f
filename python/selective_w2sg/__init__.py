"""selective-w2sg: selective weak-to-strong generalization with a compiled Rust core.

Two halves, the command line above both:

- `selective_w2sg.graph`: kNN graphs, weight matrices and label smoothing (the compiled core),
  typed errors and atomic io. Needs only numpy and scipy; its public API is re-exported here.
- `selective_w2sg.experiment`: tasks, models, the encode pass, training, P(IK), selection, the
  stage graph, students and evaluation (`sw2s train`). Needs the ``[train]`` extra.

`selective_w2sg.config` (every setting of a run) sits below both and imports neither.
"""

from __future__ import annotations

from .graph._core import __version__
from .graph.errors import (
    ConfigError,
    DataError,
    EmbeddingsError,
    ExactFallbackWarning,
    GraphError,
    InputError,
    InterruptedComputation,
    LabelsError,
    OutputExistsError,
    OutputPathError,
    ParameterError,
    RunLockedError,
    Sw2sError,
    ThreadsCappedWarning,
)
from .graph.knn import KnnGraph, knn_graph
from .graph.smoothing import SmoothResult, smooth_labels, weight_matrix

__all__ = [
    "__version__",
    "knn_graph",
    "KnnGraph",
    "smooth_labels",
    "SmoothResult",
    "weight_matrix",
    "Sw2sError",
    "InputError",
    "EmbeddingsError",
    "ExactFallbackWarning",
    "LabelsError",
    "GraphError",
    "ParameterError",
    "ConfigError",
    "DataError",
    "OutputExistsError",
    "OutputPathError",
    "InterruptedComputation",
    "RunLockedError",
    "ThreadsCappedWarning",
]
