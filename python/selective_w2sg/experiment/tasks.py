"""Tasks: multiple-choice questions from a registry of datasets, binary (question, answer) examples,
and seeded question-level splits.

A task is a small adapter from one dataset row to a `Question`. Data comes from the hub
(`datasets.load_dataset`) by default, or from a local path: a `save_to_disk` folder (hub format),
a `.jsonl` file or a `.parquet` file. The built-in `synthetic` task needs no data at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import is_mixture, parse_shard, task_sources
from ..graph.errors import ConfigError, DataError
from ..graph.io import save_json

SPLITS = ("weak_train", "w2s_train", "w2s_val", "test")
# Below these many questions a split's accuracy is noise (one question moves it by >5 points).
MIN_QUESTIONS = {"weak_train": 20, "w2s_train": 20, "w2s_val": 10, "test": 20}


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: `options[gold]` is the correct answer."""

    question_id: str
    question: str
    options: tuple[str, ...]
    gold: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise DataError(f"question {self.question_id!r} has {len(self.options)} option(s); need 2+")
        if not 0 <= self.gold < len(self.options):
            raise DataError(f"question {self.question_id!r}: gold index {self.gold} outside 0..{len(self.options) - 1}")


@dataclass(frozen=True)
class Example:
    """A binary example: is `options[option_index]` the right answer to `question`?"""

    question_id: str
    question: str
    options: tuple[str, ...]
    option_index: int
    gold: int

    @property
    def answer(self) -> str:
        return self.options[self.option_index]

    @property
    def label(self) -> int:
        return int(self.option_index == self.gold)

    @property
    def text(self) -> str:
        return format_example(self.question, self.answer)


def format_example(question: str, answer: str) -> str:
    """The text a model classifies. One format for every task and model, so caches are shared."""
    return f"{question}\nAnswer: {answer}"


# --------------------------------------------------------------------------------------------
# Adapters: one dataset row -> Question. A missing field raises DataError naming it.


def _get(row: dict[str, Any], key: str, task: str) -> Any:
    if key not in row:
        raise DataError(f"task {task!r}: row has no field {key!r} (fields: {sorted(row)})")
    return row[key]


def _letter_or_int_index(value: Any, labels: Sequence[str], task: str) -> int:
    """answerKey 'A'/'1'/2 -> index into `labels` (the row's own choice labels)."""
    s = str(value).strip()
    if s in labels:
        return list(labels).index(s)
    raise DataError(f"task {task!r}: answer key {value!r} not among choice labels {list(labels)}")


def _sciq(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "sciq"
    options = [_get(row, "correct_answer", t)] + [_get(row, f"distractor{i}", t) for i in (1, 2, 3)]
    support = row.get("support") or ""
    q = _get(row, "question", t)
    return (f"{support.strip()}\nQuestion: {q}" if support.strip() else q), options, 0


def _boolq(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "boolq"
    passage = _get(row, "passage", t)
    q = _get(row, "question", t)
    ans = _get(row, "answer", t)
    return f"{passage}\nQuestion: {q}?", ["no", "yes"], int(bool(ans))


def _arc(row: dict[str, Any], t: str) -> tuple[str, list[str], int]:
    choices = _get(row, "choices", t)
    texts, labels = list(_get(choices, "text", t)), [str(x) for x in _get(choices, "label", t)]
    return _get(row, "question", t), texts, _letter_or_int_index(_get(row, "answerKey", t), labels, t)


def _openbookqa(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "openbookqa"
    choices = _get(row, "choices", t)
    texts, labels = list(_get(choices, "text", t)), [str(x) for x in _get(choices, "label", t)]
    return _get(row, "question_stem", t), texts, _letter_or_int_index(_get(row, "answerKey", t), labels, t)


def _commonsense_qa(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "commonsense_qa"
    choices = _get(row, "choices", t)
    texts, labels = list(_get(choices, "text", t)), [str(x) for x in _get(choices, "label", t)]
    return _get(row, "question", t), texts, _letter_or_int_index(_get(row, "answerKey", t), labels, t)


def _hellaswag(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "hellaswag"
    return _get(row, "ctx", t), list(_get(row, "endings", t)), _int_label(_get(row, "label", t), t)


def _piqa(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "piqa"
    return _get(row, "goal", t), [_get(row, "sol1", t), _get(row, "sol2", t)], _int_label(_get(row, "label", t), t)


def _social_iqa(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "social_iqa"
    options = [_get(row, f"answer{c}", t) for c in "ABC"]
    q = f"{_get(row, 'context', t)}\nQuestion: {_get(row, 'question', t)}"
    return q, options, _int_label(_get(row, "label", t), t) - 1  # labels are '1'..'3'


def _cosmos_qa(row: dict[str, Any]) -> tuple[str, list[str], int]:
    t = "cosmos_qa"
    options = [_get(row, f"answer{i}", t) for i in range(4)]
    q = f"{_get(row, 'context', t)}\nQuestion: {_get(row, 'question', t)}"
    return q, options, _int_label(_get(row, "label", t), t)


def _int_label(value: Any, task: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise _Unlabelled(f"task {task!r}: label {value!r} is not an integer") from None


class _Unlabelled(Exception):
    """A row without a usable gold label (hub test splits): skipped, and counted."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    hub_path: str  # for datasets.load_dataset
    hub_config: str | None
    hub_split: str  # a labelled split
    adapter: Callable[[dict[str, Any]], tuple[str, list[str], int]]
    id_field: str | None  # a dataset's own id column, if it has one


TASKS: dict[str, TaskSpec] = {
    s.name: s
    for s in [
        TaskSpec("sciq", "allenai/sciq", None, "train", _sciq, None),
        TaskSpec("boolq", "google/boolq", None, "train", _boolq, None),
        TaskSpec("cosmos_qa", "allenai/cosmos_qa", None, "train", _cosmos_qa, "id"),
        TaskSpec("arc_easy", "allenai/ai2_arc", "ARC-Easy", "train", lambda r: _arc(r, "arc_easy"), "id"),
        TaskSpec(
            "arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "train", lambda r: _arc(r, "arc_challenge"), "id"
        ),
        TaskSpec("openbookqa", "allenai/openbookqa", "main", "train", _openbookqa, "id"),
        TaskSpec("hellaswag", "Rowan/hellaswag", None, "train", _hellaswag, "ind"),
        TaskSpec("piqa", "ybisk/piqa", None, "train", _piqa, None),
        TaskSpec("social_iqa", "allenai/social_i_qa", None, "train", _social_iqa, None),
        TaskSpec("commonsense_qa", "tau/commonsense_qa", None, "train", _commonsense_qa, "id"),
    ]
}
TASK_NAMES = ("synthetic", *TASKS)


def question_id_of(task: str, question: str, options: Sequence[str], gold: int) -> str:
    """A stable id from the content: the same question gets the same id on every machine."""
    blob = json.dumps([question, list(options), gold], ensure_ascii=False)
    return f"{task}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def questions_from_rows(task: str, rows: Iterable[dict[str, Any]]) -> list[Question]:
    """Adapt dataset rows to questions. Unlabelled rows are skipped; duplicate ids keep the first,
    so one question never lands in two splits."""
    spec = _spec(task)
    out: list[Question] = []
    seen: set[str] = set()
    for row in rows:
        try:
            q, options, gold = spec.adapter(row)
        except _Unlabelled:
            continue
        options = [str(o) for o in options]
        if gold < 0:  # e.g. label -1 on unlabelled splits
            continue
        if spec.id_field is not None and row.get(spec.id_field) not in (None, ""):
            qid = f"{task}-{row[spec.id_field]}"
        else:
            qid = question_id_of(task, q, options, gold)
        if qid in seen:
            continue
        seen.add(qid)
        out.append(Question(qid, str(q), tuple(options), int(gold)))
    if not out:
        raise DataError(f"task {task!r}: no labelled questions in the data")
    return out


def _spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(TASK_NAMES)}")
    return TASKS[task]


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
    spec = _spec(task)
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


# --------------------------------------------------------------------------------------------
# The synthetic task.
#
# Each answer word has a hidden "goodness"; an option is 3 answer words; the gold option is the
# one with the highest total goodness. Whether a candidate is gold is (nearly) linear in the
# bag of its words, so a linear head over a random transformer's pooled features can learn it, and
# a wider model learns it better (more dimensions to separate the 96 word weights): weak < strong.
# "Easy" questions (meta["easy"]) have a gold option made of the best words and distractors of the
# worst, so their answer is unambiguous; a later stage can make the strong model "know" them.

SYNTH_WORDS = tuple(f"w{i}" for i in range(96))
SYNTH_TOPICS = tuple(f"t{i}" for i in range(16))
SYNTH_FILLER = tuple(f"f{i}" for i in range(16))
SYNTH_VOCAB = (*SYNTH_WORDS, *SYNTH_TOPICS, *SYNTH_FILLER, "which", "option", "is", "best", "answer")
_SYNTH_WORLD_SEED = 20240607  # fixed: the word weights are the task, not the run


def synthetic_word_goodness() -> np.ndarray:
    """The hidden goodness of each of `SYNTH_WORDS`, float64 (96,). Fixed for the task."""
    return np.random.default_rng(_SYNTH_WORLD_SEED).standard_normal(len(SYNTH_WORDS))


def synthetic_questions(n: int, *, seed: int = 0, easy_frac: float = 0.3, n_options: int = 4) -> list[Question]:
    """`n` synthetic questions; about `easy_frac` of them easy (meta['easy'] = True)."""
    if n < 1:
        raise ConfigError(f"synthetic task needs n >= 1 questions, got {n}")
    good = synthetic_word_goodness()
    order = np.argsort(good)
    best, worst = order[-24:], order[:24]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        easy = bool(rng.random() < easy_frac)
        if easy:
            opts = [rng.choice(best, 3, replace=False)] + [rng.choice(worst, 3, replace=False) for _ in range(n_options - 1)]
        else:
            opts = [rng.choice(len(SYNTH_WORDS), 3, replace=False) for _ in range(n_options)]
        scores = [good[o].sum() for o in opts]
        perm = rng.permutation(n_options)
        opts = [opts[j] for j in perm]
        gold = int(np.argmax([scores[j] for j in perm]))
        filler = " ".join(rng.choice(SYNTH_FILLER, rng.integers(0, 12)))
        topic = rng.choice(SYNTH_TOPICS)
        question = f"{topic} {filler} which option is best".replace("  ", " ")
        options = tuple(" ".join(SYNTH_WORDS[w] for w in o) for o in opts)
        qid = f"synthetic-{seed}-{i}"
        out.append(Question(qid, question, options, gold, {"easy": easy}))
    return out


# --------------------------------------------------------------------------------------------
# Binary examples and splits.


def make_examples(questions: Sequence[Question], seed: int) -> list[Example]:
    """Two examples per question, the gold answer and one seeded random wrong option, so every
    split is exactly 50/50 and every question's examples stay together."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for q in questions:
        wrong = [i for i in range(len(q.options)) if i != q.gold]
        neg = int(wrong[rng.integers(len(wrong))])
        pair = [q.gold, neg] if rng.random() < 0.5 else [neg, q.gold]
        out.extend(Example(q.question_id, q.question, q.options, j, q.gold) for j in pair)
    return out


@dataclass(frozen=True)
class Splits:
    """Question-level splits of one task for one seed. `w2s_val` is carved out of the w2s
    questions: it is never trained on, and students see only weak labels there."""

    task: str
    seed: int
    questions: dict[str, list[Question]]  # split name -> questions
    examples: dict[str, list[Example]]  # split name -> balanced binary examples

    def labels(self, split: str) -> np.ndarray:
        """Ground-truth labels of a split, int64 (n,)."""
        return np.array([e.label for e in self.examples[split]], dtype=np.int64)

    def texts(self, split: str) -> list[str]:
        return [e.text for e in self.examples[split]]

    def fingerprint(self, split: str) -> str:
        """Hash of a split's examples (ids, texts, labels): part of every stage key that reads it."""
        h = hashlib.sha256()
        for e in self.examples[split]:
            h.update(json.dumps([e.question_id, e.text, e.label]).encode())
        return h.hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "seed": self.seed,
            "question_ids": {s: [q.question_id for q in qs] for s, qs in self.questions.items()},
            "n_examples": {s: len(e) for s, e in self.examples.items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_json(path, self.to_json())


def make_splits(
    questions: Sequence[Question], *, task: str, seed: int, n_weak: int, n_w2s: int, n_test: int,
    val_frac: float = 0.2, pool_seed: int | None = None, defaulted: Sequence[str] = (),
) -> Splits:
    """Shuffle questions (seeded) and cut `n_weak` / `n_w2s` / `n_test` of them; `val_frac` of the
    w2s questions become `w2s_val`. Refuses splits too small to mean anything.

    `pool_seed`: when given, the `n_weak + n_w2s + n_test` questions used are first drawn with
    that seed, and `seed` only re-splits this fixed pool. Seeds then share every question, so the
    strong model's encode pass (keyed by the question set) runs once for all of them. When None,
    each seed draws its own questions."""
    if not 0.0 < val_frac < 1.0:
        raise ConfigError(f"val_frac must be in (0, 1), got {val_frac}")
    n_val = int(round(n_w2s * val_frac))
    sizes = {"weak_train": n_weak, "w2s_train": n_w2s - n_val, "w2s_val": n_val, "test": n_test}
    # `defaulted`: the sizes the user did not give (named as defaults, never as "got --n-...")
    flags = {"n_weak": n_weak, "n_w2s": n_w2s, "n_test": n_test}
    got = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items() if k not in defaulted)
    dflt = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in flags.items() if k in defaulted)
    how = "; ".join(x for x in (f"got {got}" if got else "", f"defaults {dflt}" if dflt else "") if x)
    total = n_weak + n_w2s + n_test
    if total > len(questions) or any(flags[k] > len(questions) for k in flags if k not in defaulted):
        raise ConfigError(
            f"task {task!r} has {len(questions)} questions but the splits need {max(total, *flags.values())} ({how})"
        )
    for name, size in sizes.items():
        if size < MIN_QUESTIONS[name]:
            raise ConfigError(
                f"split {name!r} would have {size} questions; need at least {MIN_QUESTIONS[name]} "
                f"({how}, val_frac {val_frac})"
            )
    if pool_seed is not None:
        pool = np.sort(np.random.default_rng([pool_seed, 2]).permutation(len(questions))[:total])
        perm = pool[np.random.default_rng([seed, 1]).permutation(total)]
    else:
        perm = np.random.default_rng([seed, 1]).permutation(len(questions))
    qs = {}
    start = 0
    for name in SPLITS:
        qs[name] = [questions[i] for i in perm[start : start + sizes[name]]]
        start += sizes[name]
    examples = {name: make_examples(qs[name], seed=hash_seed(seed, name)) for name in SPLITS}
    return Splits(task, seed, qs, examples)


def default_sizes(n_available: int | None, n_weak: int | None, n_w2s: int | None, n_test: int | None
                  ) -> tuple[int, int, int]:
    """Sizes not given default to 30% / 50% / 20% of the available questions, capped at
    1000 / 2000 / 1000 (None available: the synthetic task, which makes what is asked)."""
    caps = (1000, 2000, 1000)
    fracs = (0.3, 0.5, 0.2)
    given = (n_weak, n_w2s, n_test)
    if n_available is None:
        return tuple(g if g is not None else c // 4 for g, c in zip(given, caps))  # type: ignore[return-value]
    left = n_available - sum(g for g in given if g is not None)
    free = sum(f for g, f in zip(given, fracs) if g is None) or 1.0
    out = []
    for g, f, c in zip(given, fracs, caps):
        out.append(g if g is not None else min(c, int(max(left, 0) * f / free)))
    return tuple(out)  # type: ignore[return-value]


def hash_seed(*parts: Any) -> int:
    """A 32-bit seed derived from parts, so each (seed, purpose) gets its own stream."""
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:4], "little")


def check_task(task: str) -> list[str]:
    """A task name's sources, each checked against the registry: a mixture's parts must be
    distinct dataset tasks, a plain task any known task."""
    parts = task_sources(task)
    if len(parts) > 1:
        bad = [p for p in parts if p not in TASKS]
        if bad:
            raise ConfigError(f"mixture {task!r}: each part must be a distinct dataset task "
                              f"({', '.join(TASKS)}); not {bad}")
    elif parts[0] not in TASK_NAMES:
        raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(TASK_NAMES)} (or a mixture A+B)")
    return parts


def source_of(question_id: str) -> str:
    """The source task of a question (its id's prefix: every id is "<task>-...")."""
    return question_id.split("-", 1)[0]


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


def build_splits(
    task: str, *, seed: int, data: str | os.PathLike[str] | None = None, data_split: str | None = None,
    n_weak: int | None = None, n_w2s: int | None = None, n_test: int | None = None, val_frac: float = 0.2,
    pool_seed: int | None = None, per_source: int | None = None, shard: str | None = None,
) -> Splits:
    """Load a task (or a mixture "A+B", with `data` "PATH_A,PATH_B") and cut its splits: the one
    call the pipeline makes. `shard` "K/N" keeps one of N disjoint parts of the questions."""
    if task == "synthetic":
        nw, n2, nt = default_sizes(None, n_weak, n_w2s, n_test)
        # The question pool does not depend on the seed; the split does.
        questions = synthetic_questions(nw + n2 + nt, seed=0)
    else:
        if is_mixture(task):
            paths = None if data is None else str(data).split(",")
            questions = load_mixture(task, paths, split=data_split, per_source=per_source,
                                     seed=0 if pool_seed is None else pool_seed)
        else:
            questions = load_questions(task, data, split=data_split)
        questions = question_shard(questions, shard)
        nw, n2, nt = default_sizes(len(questions), n_weak, n_w2s, n_test)
    defaulted = [k for k, v in (("n_weak", n_weak), ("n_w2s", n_w2s), ("n_test", n_test)) if v is None]
    return make_splits(questions, task=task, seed=seed, n_weak=nw, n_w2s=n2, n_test=nt, val_frac=val_frac,
                       pool_seed=pool_seed, defaulted=defaulted)
