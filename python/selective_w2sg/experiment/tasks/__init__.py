"""Tasks: multiple-choice questions from a registry of datasets, binary (question, answer) examples,
and seeded question-level splits, by concern:

    records    `Question`, `Example`, the split names, seeds and question ids' sources
    registry   one small adapter per dataset (a row -> a `Question`), the task names
    sources    reading rows: the hub (`datasets.load_dataset`) or a local save_to_disk folder,
               `.jsonl` or `.parquet` file; mixtures and question shards
    synthetic  the built-in `synthetic` task, which needs no data at all
    splits     binary examples and the seeded splits by question
"""

from __future__ import annotations

from .records import (
    MIN_QUESTIONS,
    SPLITS,
    Example,
    Question,
    format_example,
    hash_seed,
    source_of,
)
from .registry import (
    TASK_NAMES,
    TASKS,
    TaskSpec,
    check_task,
    question_id_of,
    questions_from_rows,
)
from .sources import (
    load_mixture,
    load_questions,
    offline_reason,
    question_shard,
    read_rows,
)
from .splits import (
    Splits,
    build_splits,
    default_sizes,
    make_examples,
    make_splits,
)
from .synthetic import (
    SYNTH_FILLER,
    SYNTH_TOPICS,
    SYNTH_VOCAB,
    SYNTH_WORDS,
    synthetic_questions,
    synthetic_word_goodness,
)

__all__ = [
    "Example",
    "MIN_QUESTIONS",
    "Question",
    "SPLITS",
    "format_example",
    "hash_seed",
    "source_of",
    "TASKS",
    "TASK_NAMES",
    "TaskSpec",
    "check_task",
    "question_id_of",
    "questions_from_rows",
    "load_mixture",
    "load_questions",
    "offline_reason",
    "question_shard",
    "read_rows",
    "SYNTH_FILLER",
    "SYNTH_TOPICS",
    "SYNTH_VOCAB",
    "SYNTH_WORDS",
    "synthetic_questions",
    "synthetic_word_goodness",
    "Splits",
    "build_splits",
    "default_sizes",
    "make_examples",
    "make_splits",
]
