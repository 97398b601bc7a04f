"""selective-w2sg: selective weak-to-strong generalization with a compiled Rust core.

The graph half (`knn_graph`, `smooth_labels`) needs only numpy and scipy; the training
half (`selective_w2sg.pipeline`, the `sw2s train` command) needs the ``[train]`` extra.
"""

from __future__ import annotations

from ._core import __version__
from .errors import (
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
from .graph import KnnGraph, knn_graph
from .smoothing import SmoothResult, smooth_labels, weight_matrix

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
