"""Typed exceptions. Every error a user can cause is a subclass of `Sw2sError`; those about
bad input are also `ValueError`s, so ``except ValueError`` keeps working."""

from __future__ import annotations

import threading


class Sw2sError(Exception):
    """Base class of every selective-w2sg error."""


class InputError(Sw2sError, ValueError):
    """Bad input: shape, dtype, range or content of an argument or a file."""


class EmbeddingsError(InputError):
    """Embeddings that cannot be used: NaN/inf, zero-norm rows under cosine, wrong shape."""


class LabelsError(InputError):
    """Labels that cannot be used: wrong length, values outside [0, 1], rows summing to 0."""


class GraphError(InputError):
    """A graph that does not fit the data (wrong size, bad indices, not square)."""


class ParameterError(InputError):
    """A parameter out of its range (k, alpha, method, metric ...)."""


class ConfigError(InputError):
    """An unknown task or model, an invalid configuration, splits too small to mean anything."""


class DataError(InputError):
    """A missing or malformed data file, a task missing a field."""


class OutputExistsError(Sw2sError, FileExistsError):
    """An output exists and would be overwritten without ``--force``."""


class OutputPathError(InputError):
    """An output that cannot be written: a folder given as the file, an unwritable folder."""


class InterruptedComputation(Sw2sError, KeyboardInterrupt):
    """A long computation in the Rust core was interrupted (Ctrl-C)."""


class DeviceOutOfMemoryError(Sw2sError, MemoryError):
    """The accelerator (or host) ran out of memory during a stage; nothing is marked finished."""


class ExactFallbackWarning(UserWarning):
    """``knn_graph(method="auto")`` found its approximate graphs below ``min_recall`` and ran
    exact search instead (much slower for large n)."""


class ThreadsCappedWarning(UserWarning):
    """More threads were asked for (``num_threads``, ``--threads``, ``SW2S_NUM_THREADS``) than
    the CPUs available; the call uses as many threads as there are CPUs."""


class RunLockedError(Sw2sError):
    """A run folder is being written by another process (its lock names the holder)."""


# Set by the command line's Ctrl-C handler. Python drops a KeyboardInterrupt raised inside a
# `__del__` (a library's object being collected at that moment), so a run could otherwise go on
# to the end after Ctrl-C; every stage checks this first and stops there instead.
INTERRUPTED = threading.Event()
