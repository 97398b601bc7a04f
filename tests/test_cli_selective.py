"""`sw2s encode`, `sw2s pik` (in-task and cross-task) and `sw2s select`."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from selective_w2sg.cli import app

torch.set_num_threads(1)
SIZES = ["--n-weak", "60", "--n-w2s", "100", "--n-test", "40"]


def test_stage_commands_share_the_cache(tmp_path):
    out = str(tmp_path / "run")
    runner = CliRunner()
    r = runner.invoke(app, ["encode", "--out", out, *SIZES])
    assert r.exit_code == 0, r.output
    assert "done encode" in r.output
    r = runner.invoke(app, ["select", "--out", out, "--rule", "tau", "--tau", "0.5", *SIZES])
    assert r.exit_code == 0, r.output
    assert "reused encode" in r.output and "coverage" in r.output
    assert "selective" in r.output and "random_select" in r.output and "oracle_pik" not in r.output
    # the coverage is read from each student's decision stage, resolved like any other
    assert "done decide-selective" in r.output and "done decide-random_select" in r.output
    r = runner.invoke(app, ["pik", "--out", out, *SIZES])
    assert r.exit_code == 0 and "reused pik" in r.output and "AUROC" in r.output


def test_pik_transfer_over_finished_runs(tmp_path):
    """Two finished runs (different question pools); the table's diagonal is each run's own
    in-task P(IK) test AUROC, and no stage is recomputed."""
    runner = CliRunner()
    runs = {"a": SIZES, "b": ["--n-weak", "50", "--n-w2s", "80", "--n-test", "50"]}
    for name, sizes in runs.items():
        r = runner.invoke(app, ["train", "--out", str(tmp_path / name), "--method", "selective", *sizes])
        assert r.exit_code == 0, r.output
    out = tmp_path / "transfer.json"
    r = runner.invoke(app, ["pik-transfer", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "done encode" not in r.output
    table = json.loads(out.read_text())
    assert table["tasks"] == ["a", "b"] and table["seeds"] == [0]
    for name in runs:
        own = json.loads((tmp_path / name / "seed0" / "results.json").read_text())["pik_test"]["auroc"]
        assert abs(table["per_seed"]["0"][name][name]["auroc"] - own) < 1e-9
    m, se = table["mean"]["a"]["b"]["question_auroc"]
    assert 0.0 <= m <= 1.0
    # the target's own confidence baseline sits beside every transferred AUROC, and a probe pooled
    # over the other tasks is a row of its own
    assert {"confidence_question_auroc", "confidence_auroc"} <= set(table["per_seed"]["0"]["a"]["b"])
    assert set(table["per_seed"]["0"]["others"]) == {"a", "b"}
    r = runner.invoke(app, ["pik-transfer", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    assert r.exit_code != 0 and "exists" in str(r.exception)  # never silently overwritten
    r = runner.invoke(app, ["pik-transfer", str(tmp_path / "a"), str(tmp_path / "nope"), "--out", str(out), "--force"])
    assert r.exit_code != 0 and "nope" in str(r.exception)


def test_bad_selective_options(tmp_path):
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path), "--method", "magic"])
    assert r.exit_code != 0 and "magic" in str(r.exception)
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path), "--method", "all", "--alpha", "1.5"])
    assert r.exit_code != 0 and "alpha=1.5" in str(r.exception)
