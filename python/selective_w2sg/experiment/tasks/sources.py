"""Reading a task's rows: the hub (`datasets.load_dataset`) by default, or a local path (a
`save_to_disk` folder, a `.jsonl` or a `.parquet` file); mixtures of tasks and question shards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...config import parse_shard
from ...graph.errors import ConfigError, DataError
from .records import Question, hash_seed
from .registry import check_task, questions_from_rows, task_spec
from .synthetic import synthetic_questions


def read_rows(path: str | os.PathLike[str], split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a local dataset: a `save_to_disk` folder (Dataset or DatasetDict), `.jsonl` or
    `.parquet`. For a DatasetDict, `split` picks one split; by default all splits are used."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path {str(p)!r} does not exist")
    if p.is_dir():
        import datasets

        try:
            ds = datasets.load_from_disk(str(p))
        except (FileNotFoundError, ValueError) as e:
            raise DataError(f"{str(p)!r} is not a datasets save_to_disk folder: {e}") from None
        if isinstance(ds, datasets.DatasetDict):
            if split is not None:
                if split not in ds:
                    raise DataError(f"{str(p)!r} has no split {split!r} (splits: {sorted(ds)})")
                return list(ds[split])
            return [row for name in sorted(ds) for row in ds[name]]
        return list(ds)
    if p.suffix == ".jsonl":
        rows = []
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{str(p)!r} line {i} is not JSON: {e.msg}") from None
        return rows
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p).to_pylist()
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DataError(f"{str(p)!r} is not a readable parquet file: {e}") from None
    raise DataError(f"data path {str(p)!r}: expected a save_to_disk folder, .jsonl or .parquet")


_TRUE = {"1", "true", "yes", "on"}


def offline_reason(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, found at once (None: it can, or we cannot tell): the
    HF_HUB_OFFLINE / HF_DATASETS_OFFLINE variables, or no TCP connection to the hub's host
    within `timeout` seconds (not tried behind a proxy). Without this check `datasets`
    retries for about 40 s before failing."""
    import socket
    from urllib.parse import urlparse

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"cannot reach {host}:{port}: {e.strerror or type(e).__name__}"


@contextmanager
def _hub_offline(on: bool) -> Iterator[None]:
    """Run `datasets` in offline mode (cache only, no retries) while `on`."""
    if not on:
        yield
        return
    import datasets.config as dc

    saved = {a: getattr(dc, a) for a in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if hasattr(dc, a)}
    try:
        import huggingface_hub.constants as hc

        hub_saved = getattr(hc, "HF_HUB_OFFLINE", None)
    except ImportError:  # pragma: no cover
        hc, hub_saved = None, None
    try:
        for a in saved:
            setattr(dc, a, True)
        if hc is not None:
            hc.HF_HUB_OFFLINE = True
        yield
    finally:
        for a, v in saved.items():
            setattr(dc, a, v)
        if hc is not None:
            hc.HF_HUB_OFFLINE = hub_saved


def load_questions(
    task: str, data: str | os.PathLike[str] | None = None, *, split: str | None = None, n: int | None = None,
    seed: int = 0,
) -> list[Question]:
    """All questions of a task: from `data` if given, else from the hub; `synthetic` generates `n`."""
    if task == "synthetic":
        return synthetic_questions(n if n is not None else 1000, seed=seed)
    spec = task_spec(task)
    if data is not None:
        rows = read_rows(data, split)
    else:
        import datasets

        offline = offline_reason()
        try:
            with _hub_offline(offline is not None):
                ds = datasets.load_dataset(spec.hub_path, spec.hub_config, split=split or spec.hub_split)
        except Exception as e:  # offline, unknown repo, ...: one clear message
            why = f"offline ({offline}) and no cached copy" if offline else f"{type(e).__name__}: {e}"
            raise DataError(
                f"cannot load task {task!r} from the hub ({spec.hub_path}): {why}. "
                "Pass --data PATH with a local copy (save_to_disk folder, .jsonl or .parquet)."
            ) from None
        rows = list(ds)
    return questions_from_rows(task, rows)


def question_shard(questions: Sequence[Question], shard: str | None) -> list[Question]:
    """The questions whose id hashes to part K of N (`shard` "K/N"): disjoint pools of one task,
    e.g. a pilot on 0/2 and the final runs on 1/2. None: all of them."""
    if shard is None:
        return list(questions)
    k, n = parse_shard(shard)
    return [q for q in questions if hash_seed("question-shard", q.question_id) % n == k]


def load_mixture(task: str, data: Sequence[str | os.PathLike[str]] | None, *, split: str | None = None,
                 per_source: int | None = None, seed: int = 0) -> list[Question]:
    """The questions of a mixture "A+B+...": each source's questions (from its `data` path, in
    order, or the hub), `per_source` of each drawn with `seed` (default: all), sources kept in
    their ids (`source_of`). One weak supervisor and one strong model then see all of them."""
    parts = check_task(task)
    if data is not None and len(data) != len(parts):
        raise ConfigError(f"mixture {task!r} has {len(parts)} sources but --data gives {len(data)} path(s)")
    out: list[Question] = []
    for i, part in enumerate(parts):
        qs = load_questions(part, None if data is None else data[i], split=split)
        if per_source is not None:
            if per_source > len(qs):
                raise ConfigError(f"--per-source {per_source}: source {part!r} has only {len(qs)} questions")
            pick = np.sort(np.random.default_rng([seed, 3, i]).permutation(len(qs))[:per_source])
            qs = [qs[j] for j in pick]
        out += qs
    return out
