"""The package's shape: two halves and a configuration layer, imported in one direction.

    selective_w2sg.graph        torch-free: kNN graphs, weights, smoothing, errors, io, _core
    selective_w2sg.config       every setting of a run; imports only the graph half's errors
    selective_w2sg.experiment   tasks, models, encode, training, stages, evaluation (torch)
    selective_w2sg.cli          the `sw2s` commands, above both

The import graph (module-level and function-level imports alike) has no cycle; every import
goes to the same layer or a lower one; and an import inside a function is only ever the CLI
reaching into the experiment half (deferred so that `sw2s knn/smooth` and `--help` never load
torch). Importing the graph half, building a `RunConfig` and running `sw2s knn/smooth` load
neither torch nor transformers (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import selective_w2sg

PKG = "selective_w2sg"
ROOT = Path(selective_w2sg.__file__).parent
LAYERS = {"graph": 0, "config": 1, "experiment": 2, "cli": 3}


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return mods


def _imports(mods: dict[str, tuple[Path, bool]]) -> list[tuple[str, str, bool]]:
    """(importer, imported module of this package, inside a function?) for every import."""
    edges = []
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text())
        in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # `from pkg import submodule` imports the submodule; `from mod import name` the module
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods else prefix for a in node.names
                           if a.name != "_core"]
            else:
                continue
            for t in targets:
                if t.split(".")[0] == PKG and t != mod:
                    while t not in mods and "." in t:
                        t = t.rsplit(".", 1)[0]
                    edges.append((mod, t, id(node) in in_function))
    return edges


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _cycles(nodes: list[str], edges: list[tuple[str, str, bool]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    succ: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b, _ in edges:
        succ[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in nodes:
        if n not in index:
            visit(n)
    return out


def test_every_module_lives_in_a_layer() -> None:
    loose = [m for m in _modules() if m != PKG and _layer(m) is None]
    assert loose == []


def test_import_graph_has_no_cycle() -> None:
    mods = _modules()
    assert _cycles(sorted(mods), _imports(mods)) == []


def test_imports_go_down_the_layers() -> None:
    upward = [(a, b) for a, b, _ in _imports(_modules())
              if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)]  # type: ignore[operator]
    assert upward == []
    # the package root re-exports the graph half only
    assert {b.split(".")[1] for a, b, _ in _imports(_modules()) if a == PKG} == {"graph"}


def test_imports_inside_functions_are_only_the_cli_deferring_the_experiment_half() -> None:
    hidden = [(a, b) for a, b, inside in _imports(_modules())
              if inside and not (_layer(a) == LAYERS["cli"] and _layer(b) == LAYERS["experiment"])]
    assert hidden == []


_PROBE = """
import json, sys
{body}
heavy = sorted(m for m in ("torch", "transformers", "datasets", "sklearn", "matplotlib") if m in sys.modules)
print(json.dumps(heavy))
"""


def _heavy_modules_after(body: str, cwd: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], capture_output=True, text=True, cwd=cwd,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_graph_half_and_config_import_without_torch(tmp_path: Path) -> None:
    body = """
import selective_w2sg
from selective_w2sg.graph import knn_graph, smooth_labels
from selective_w2sg.config import RunConfig
cfg = RunConfig.create(task="sciq", n_weak=10, students=("naive",), k=5)
import numpy as np
x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
smooth_labels(knn_graph(x, 5), np.full(50, 0.5, np.float32))
"""
    assert _heavy_modules_after(body, tmp_path) == []


def test_knn_and_smooth_commands_run_without_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.standard_normal((60, 4)).astype(np.float32))
    np.save(tmp_path / "lab.npy", rng.random(60).astype(np.float32))
    body = """
from selective_w2sg.cli import main
for argv in (["knn", "-e", "emb.npy", "-o", "g.npz", "-k", "5"],
             ["smooth", "-e", "emb.npy", "-l", "lab.npy", "-o", "s.npy", "--graph", "g.npz"],
             ["knn", "--help"], ["--help"]):
    sys.argv = ["sw2s", *argv]
    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
"""
    assert _heavy_modules_after(body, tmp_path) == []
    assert (tmp_path / "g.npz").is_file() and np.load(tmp_path / "s.npy").shape == (60,)
