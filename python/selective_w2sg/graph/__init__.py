"""The graph half: k-nearest-neighbour graphs of embeddings, their weight matrices and label
spreading over them, computed by the compiled Rust core (`_core`); with the typed errors
(`errors`) and the atomic file writes and run locks (`io`) the whole package uses.

Needs numpy and scipy only: importing it, or running `sw2s knn` / `sw2s smooth`, never loads
torch or transformers (a test checks).
"""

from __future__ import annotations

from .knn import KnnGraph, knn_graph
from .smoothing import SmoothResult, smooth_labels, weight_matrix

__all__ = ["KnnGraph", "knn_graph", "SmoothResult", "smooth_labels", "weight_matrix"]
