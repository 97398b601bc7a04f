"""The hand-written `_core.pyi` stub matches the compiled module's functions and parameters."""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import selective_w2sg
from selective_w2sg import _core


def test_stub_matches_extension():
    stub = Path(selective_w2sg.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    stubbed = {f.name: [a.arg for a in f.args.args] for f in tree.body if isinstance(f, ast.FunctionDef)}
    compiled = {n: list(inspect.signature(getattr(_core, n)).parameters)
                for n in dir(_core) if isinstance(getattr(_core, n), types.BuiltinFunctionType) and not n.startswith("_")}
    assert stubbed == compiled
    assert (stub.parent / "py.typed").is_file()
