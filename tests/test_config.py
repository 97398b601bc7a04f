"""Configuration: what a `RunConfig` checks by itself, and what `check_config` checks against the
registries (tasks, models, methods, students) that live in the experiment half."""

from __future__ import annotations

import dataclasses

import pytest

from selective_w2sg.config import RunConfig, SelectiveConfig, TrainConfig, parse_shard, task_sources
from selective_w2sg.experiment.checks import check_config
from selective_w2sg.experiment.stages import METHODS, STUDENTS, students_for
from selective_w2sg.graph.errors import ConfigError, ParameterError


def test_parts_are_typed_and_default_when_left_out() -> None:
    cfg = RunConfig()
    assert isinstance(cfg.train, TrainConfig) and isinstance(cfg.selective, SelectiveConfig)
    assert RunConfig(train=None, selective=None) == cfg  # None: the part's defaults
    hints = {f.name: f.type for f in dataclasses.fields(RunConfig)}
    assert hints["train"] == "TrainConfig" and hints["selective"] == "SelectiveConfig"


@pytest.mark.parametrize("flat,needle", [
    ({"method": "magic"}, "'magic'"),
    ({"students": ("naive", "bogus")}, "'bogus'"),
    ({"task": "sciqq"}, "'sciqq'"),
    ({"task": "sciq+synthetic"}, "synthetic"),
    ({"students": ("transfer_pik",)}, "mixture"),
    ({"strong": "./no/such/model"}, "./no/such/model"),
])
def test_registry_names_are_checked_where_the_registry_lives(flat, needle) -> None:
    cfg = RunConfig.create(**flat)  # the config alone cannot tell: it builds
    with pytest.raises(ConfigError, match=needle):
        check_config(cfg)


def test_a_valid_config_passes_its_checks_unchanged() -> None:
    cfg = RunConfig.create(task="sciq+boolq", students=("naive", "transfer_pik"))
    assert check_config(cfg) is cfg
    assert students_for(cfg) == ("naive", "transfer_pik")
    assert set(students_for(RunConfig.create(method="all"))) == set(METHODS["all"]) - {
        s for s, st in STUDENTS.items() if st.mixture_only}


@pytest.mark.parametrize("flat,error,needle", [
    ({"task": "sciq+sciq"}, ConfigError, "distinct"),
    ({"task": "a++b"}, ConfigError, "distinct"),
    ({"question_shard": "1/1", "task": "sciq"}, ConfigError, "N >= 2"),
    ({"alpha": 1.0}, ParameterError, "alpha=1.0"),
    ({"mode": "fast"}, ConfigError, "'fast'"),
    ({"pik": "magic"}, ParameterError, "'magic'"),
])
def test_what_a_config_checks_by_itself(flat, error, needle) -> None:
    with pytest.raises(error, match=needle):
        RunConfig.create(**flat)


def test_task_forms() -> None:
    assert task_sources("sciq") == ["sciq"] and task_sources("sciq + boolq") == ["sciq", "boolq"]
    assert parse_shard("0/2") == (0, 2)
    with pytest.raises(ConfigError, match="K/N"):
        parse_shard("half")


def test_graph_settings_are_the_librarys_defaults() -> None:
    """`sw2s knn/smooth` take their options from KnnConfig / SpreadConfig; the library functions
    and the pipeline's settings of the same things default to the same values."""
    import inspect

    from selective_w2sg import knn_graph, smooth_labels
    from selective_w2sg.config import KnnConfig, SpreadConfig

    knn = inspect.signature(knn_graph).parameters
    assert {f: knn[f].default for f in ("k", "metric", "method", "seed")} == \
        {f: getattr(KnnConfig(), f) for f in ("k", "metric", "method", "seed")}
    assert knn["num_threads"].default == KnnConfig().threads
    spread = inspect.signature(smooth_labels).parameters
    assert {f: spread[f].default for f in ("alpha", "max_iter", "tol")} == \
        {f: getattr(SpreadConfig(), f) for f in ("alpha", "max_iter", "tol")}
    assert SelectiveConfig().smooth_iters == SpreadConfig().max_iter
    assert SelectiveConfig().graph_method == KnnConfig().method


def test_one_name_per_setting() -> None:
    """Every setting has one name: its field, its flag without dashes, its key in config.json."""
    from selective_w2sg.config import config_parts, flag_of

    for klass in (*config_parts().values(), RunConfig):
        for f in dataclasses.fields(klass):
            if f.metadata.get("cli"):
                assert flag_of(f) == "--" + f.name.replace("_", "-"), (klass.__name__, f.name)
    cfg = RunConfig.create(task="sciq", data_split="train", pik="mlp", pik_c=0.5, self_labels="all")
    assert (cfg.data.data_split, cfg.selective.pik, cfg.selective.pik_c, cfg.selective.self_labels) == \
        ("train", "mlp", 0.5, "all")
    assert cfg.selective.pik_config.kind == "mlp" and cfg.selective.pik_config.C == 0.5


def test_a_config_json_of_an_older_run_reads_under_the_current_names() -> None:
    """Runs written before the settings were renamed (data.path, data.split,
    selective.self_label_among, the nested selective.pik object) load unchanged in meaning."""
    new = RunConfig.create(task="sciq", data_split="train", pik="mlp", pik_c=0.5, pik_seed=3, self_labels="all")
    old = new.to_dict()
    old["data"]["path"] = old["data"].pop("data")
    old["data"]["split"] = old["data"].pop("data_split")
    old["selective"]["self_label_among"] = old["selective"].pop("self_labels")
    old["selective"]["pik"] = {"kind": old["selective"].pop("pik"), "C": old["selective"].pop("pik_c"),
                               "hidden": old["selective"].pop("pik_hidden"),
                               "max_iter": old["selective"].pop("pik_max_iter"), "seed": old["selective"].pop("pik_seed")}
    assert RunConfig.from_dict(old) == new
    old["selective"]["pik"]["colour"] = "red"
    with pytest.raises(ConfigError, match="colour"):
        RunConfig.from_dict(old)
