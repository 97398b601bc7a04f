"""The hand-written `_core.pyi` stub agrees with the compiled module: function names, parameter
names, order, kinds and defaults (from `inspect.signature`, i.e. `__text_signature__`), class
names and their getters, module constants, and what each function returns (called on a tiny
valid input: an instance of the class its annotation names, each getter's value of its
annotated type, ndarray dtype and ndim included)."""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import selective_w2sg
from selective_w2sg.graph import _core

STUB = Path(_core.__file__).with_name("_core.pyi")
TREE = ast.parse(STUB.read_text())

STUB_FUNCTIONS = {f.name: f for f in TREE.body if isinstance(f, ast.FunctionDef)}
STUB_CLASSES = {
    c.name: {
        f.name: f.returns
        for f in c.body
        if isinstance(f, ast.FunctionDef) and any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)
    }
    for c in TREE.body
    if isinstance(c, ast.ClassDef)
}
STUB_CONSTANTS = {a.target.id: a.annotation for a in TREE.body if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)}

PUBLIC = [n for n in dir(_core) if not n.startswith("_")]
FUNCTIONS = [n for n in PUBLIC if isinstance(getattr(_core, n), types.BuiltinFunctionType)]
CLASSES = [n for n in PUBLIC if isinstance(getattr(_core, n), type)]
CONSTANTS = ["__version__", *(n for n in PUBLIC if n not in FUNCTIONS and n not in CLASSES)]


def conforms(value: Any, ann: ast.expr) -> bool:
    """Whether `value` is of the type the stub annotation `ann` names (the forms the stub uses)."""
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        return conforms(value, ann.left) or conforms(value, ann.right)
    if isinstance(ann, ast.Constant) and ann.value is None:
        return value is None
    if isinstance(ann, ast.Name):
        builtin = {
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, float),
            "bool": lambda v: isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
        }
        if ann.id in builtin:
            return builtin[ann.id](value)
        return isinstance(value, getattr(_core, ann.id))
    if isinstance(ann, ast.Subscript):
        base, args = ast.unparse(ann.value), ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        if base == "list":
            return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
        if base == "tuple" and len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
            return isinstance(value, tuple) and all(conforms(v, args[0]) for v in value)
        if base == "np.ndarray":
            shape, dtype = args
            ndim = len(shape.slice.elts) if isinstance(shape.slice, ast.Tuple) else 1
            want = np.dtype(getattr(np, ast.unparse(dtype.slice).removeprefix("np.")))
            return isinstance(value, np.ndarray) and value.ndim == ndim and value.dtype == want
    raise AssertionError(f"test_core_stub cannot read the annotation {ast.unparse(ann)!r}: extend conforms()")


def stub_parameters(f: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    a = f.args
    positional = a.posonlyargs + a.args
    defaults: list[Any] = [inspect.Parameter.empty] * (len(positional) - len(a.defaults))
    defaults += [ast.literal_eval(d) for d in a.defaults]
    out = [(p.arg, "POSITIONAL_ONLY" if p in a.posonlyargs else "POSITIONAL_OR_KEYWORD", d) for p, d in zip(positional, defaults)]
    out += [(p.arg, "KEYWORD_ONLY", inspect.Parameter.empty if d is None else ast.literal_eval(d))
            for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return out


def compiled_parameters(name: str) -> list[tuple[str, str, Any]]:
    sig = inspect.signature(getattr(_core, name))
    return [(p.name, p.kind.name, p.default) for p in sig.parameters.values()]


def test_names_match():
    assert sorted(STUB_FUNCTIONS) == sorted(FUNCTIONS)
    assert sorted(STUB_CLASSES) == sorted(CLASSES)
    assert sorted(STUB_CONSTANTS) == sorted(CONSTANTS)
    assert Path(selective_w2sg.__file__).with_name("py.typed").is_file()  # PEP 561: covers the subpackages


@pytest.mark.parametrize("name", FUNCTIONS)
def test_parameters_match(name):
    assert stub_parameters(STUB_FUNCTIONS[name]) == compiled_parameters(name)


@pytest.mark.parametrize("name", CLASSES)
def test_class_getters_match(name):
    cls = getattr(_core, name)
    compiled = sorted(n for n, v in vars(cls).items() if not n.startswith("_"))
    assert sorted(STUB_CLASSES[name]) == compiled
    for attr in compiled:
        assert inspect.isgetsetdescriptor(vars(cls)[attr]), f"{name}.{attr} is not a read-only getter"


@pytest.mark.parametrize("name", CONSTANTS)
def test_constant_types(name):
    assert conforms(getattr(_core, name), STUB_CONSTANTS[name]), (name, getattr(_core, name))


def tiny_calls() -> dict[str, Callable[[], Any]]:
    """One call per function on a tiny valid input."""
    x = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
    g = _core.knn_graph(x, 3, "cosine", "exact", 0)
    w = _core.knn_to_weights(g.indices, g.scores, "cosine")
    y = np.full((12, 2), 0.5, np.float32)
    return {
        "knn_graph": lambda: _core.knn_graph(x, 3, "cosine", "approx", 0, None, 0.5, 12),
        "knn_to_weights": lambda: _core.knn_to_weights(g.indices, g.scores, "ip"),
        "symmetrize_max": lambda: _core.symmetrize_max(w.n, w.indptr, w.indices, w.data),
        "smooth_labels": lambda: _core.smooth_labels(w.n, w.indptr, w.indices, w.data, y, 0.5, 10, 1e-6,
                                                     np.ones(12, np.float32), np.zeros(12, bool)),
        "recall_lower_bound": lambda: _core.recall_lower_bound(0.9, 10, 100, 5),
        "metric_name": lambda: _core.metric_name("l2"),
        "check_alpha": lambda: _core.check_alpha(0.5),
        "available_cpus": lambda: _core.available_cpus(),
    }


def test_returns_match_annotations():
    calls = tiny_calls()
    assert sorted(calls) == sorted(FUNCTIONS), "give every function of _core a tiny call here"
    classes_seen = set()
    for name, call in calls.items():
        ann = STUB_FUNCTIONS[name].returns
        assert ann is not None, f"{name} has no return annotation"
        result = call()
        assert conforms(result, ann), f"{name} returned {type(result).__name__}, stub says {ast.unparse(ann)}"
        cls = ast.unparse(ann)
        if cls in STUB_CLASSES:
            classes_seen.add(cls)
            for attr, attr_ann in STUB_CLASSES[cls].items():
                value = getattr(result, attr)
                assert conforms(value, attr_ann), f"{cls}.{attr} = {value!r}, stub says {ast.unparse(attr_ann)}"
    assert classes_seen == set(STUB_CLASSES), "every class must be returned by some function"


def test_conforms_tells_types_apart():
    # the checker itself: a wrong dtype, ndim or scalar type is caught
    def ann(s: str) -> ast.expr:
        return ast.parse(s, mode="eval").body

    assert conforms(np.zeros((2, 2), np.int64), ann("np.ndarray[tuple[int, int], np.dtype[np.int64]]"))
    assert not conforms(np.zeros((2, 2), np.int32), ann("np.ndarray[tuple[int, int], np.dtype[np.int64]]"))
    assert not conforms(np.zeros(2, np.int64), ann("np.ndarray[tuple[int, int], np.dtype[np.int64]]"))
    assert not conforms(True, ann("int")) and conforms(3, ann("int")) and not conforms(3, ann("float"))
    assert conforms(None, ann("float | None")) and not conforms("a", ann("float | None"))
    assert conforms(("a",), ann("tuple[str, ...]")) and not conforms(["a"], ann("tuple[str, ...]"))
    assert conforms([1.0], ann("list[float]")) and not conforms([1], ann("list[float]"))
