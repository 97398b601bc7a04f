"""What a task is made of: questions, binary examples, the split names; seeds and sources of ids."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ...graph.errors import DataError

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


def hash_seed(*parts: Any) -> int:
    """A 32-bit seed derived from parts, so each (seed, purpose) gets its own stream."""
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:4], "little")


def source_of(question_id: str) -> str:
    """The source task of a question (its id's prefix: every id is "<task>-...")."""
    return question_id.split("-", 1)[0]
