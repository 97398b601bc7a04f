"""Adapters: one dataset row -> Question, one per registered task. A missing field raises DataError
naming it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...config import task_sources
from ...graph.errors import ConfigError, DataError
from .records import Question


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
    spec = task_spec(task)
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


def task_spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(TASK_NAMES)}")
    return TASKS[task]


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
