"""`sw2s train` end to end, the stage commands, `sw2s report`, and errors as one line + exit 1."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from selective_w2sg.cli import app, main

torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared 2-core machine

SMALL = ["--n-weak", "40", "--n-w2s", "60", "--n-test", "40", "--epochs", "8", "--device", "cpu"]


def test_train_end_to_end_then_report(tmp_path) -> None:
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--task", "synthetic", "--weak", "tiny-random-bert", "--strong",
                                 "tiny-random-llama", "--out", str(out), "--seeds", "0,1", "--method", "w2s", *SMALL])
    assert r.exit_code == 0, r.output
    assert "PGR" in r.output and "aux_conf" in r.output
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["seeds"] == [0, 1] and set(summary["models"]) == {"weak", "zero_shot", "ceiling", "naive", "aux_conf"}
    (out / "results.png").unlink()
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "results.png").exists() and "ceiling" in r.output


def test_stage_commands(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    base = ["--out", str(out), *SMALL]
    r = CliRunner().invoke(app, ["weak", *base])
    assert r.exit_code == 0, r.output
    weak_dir = r.output.strip().splitlines()[-1]
    assert weak_dir.endswith(tuple("0123456789abcdef")) and "/weak/" in weak_dir
    r = CliRunner().invoke(app, ["student", "--name", "naive", *base])
    assert r.exit_code == 0, r.output
    n_tr = np.load(f"{weak_dir}/preds_w2s_train.npy").shape[0]
    n_va = np.load(f"{weak_dir}/preds_w2s_val.npy").shape[0]
    np.save(tmp_path / "l.npy", np.full(n_tr, 0.8, np.float32))
    np.save(tmp_path / "v.npy", np.full(n_va, 0.8, np.float32))
    r = CliRunner().invoke(app, ["student", "--name", "mine", "--labels", str(tmp_path / "l.npy"), "--val-labels",
                                 str(tmp_path / "v.npy"), *base])
    assert r.exit_code == 0, r.output
    assert "student-mine" in r.output
    # --labels goes through the resolver: a stage of the graph, one with no needs
    from selective_w2sg.experiment import pipeline

    seen = []
    real = pipeline.resolve

    def spy(ctx, targets, stages, *args):
        seen.append((list(targets), stages["mine"].needs))
        return real(ctx, targets, stages, *args)

    monkeypatch.setattr(pipeline, "resolve", spy)
    r = CliRunner().invoke(app, ["student", "--name", "mine", "--labels", str(tmp_path / "l.npy"), "--val-labels",
                                 str(tmp_path / "v.npy"), *base])
    assert r.exit_code == 0, r.output
    assert seen == [(["mine"], ())] and "reused mine" in r.output
    monkeypatch.undo()
    np.save(tmp_path / "bad.npy", np.zeros(3, np.float32))
    r = CliRunner().invoke(app, ["student", "--name", "mine", "--labels", str(tmp_path / "bad.npy"), "--val-labels",
                                 str(tmp_path / "v.npy"), *base])
    assert r.exit_code != 0 and "shape" in str(r.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--task", "nope"], "unknown task 'nope'"),
        (["train", "--task", "sciq", "--data", "/no/such/dir"], "does not exist"),
        (["train", "--n-weak", "3"], "need at least 20"),
        (["train", "--weak", "/no/such/model", "--n-weak", "40", "--n-w2s", "60", "--n-test", "40"], "does not exist"),
        (["train", "--seeds", "a,b"], "--seeds"),
        (["report", "/no/such/run"], "does not exist"),
    ],
)
def test_errors_are_one_line_exit_1(tmp_path, monkeypatch, capsys, args, message) -> None:
    monkeypatch.setattr(sys, "argv", ["sw2s", *args, *(["--out", str(tmp_path / "o")] if args[0] == "train" else [])])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and message in " ".join(err.split())
    assert "Traceback" not in err
    # nothing left that looks finished
    assert not list((tmp_path / "o").rglob("DONE.json"))


def _sw2s(*args: str, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from selective_w2sg.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("args", [["train", "--k", "abc"], ["nosuch"], ["knn", "--embeddings", "x.npy"],
                                  ["train", "--no-such-option"]])
def test_usage_errors_exit_2_without_traceback(args) -> None:
    r = _sw2s(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Error" in r.stderr


@pytest.mark.parametrize("args,needle", [(["train", "--method", "magic"], "magic"),
                                         (["train", "--students", "naive,bogus"], "'bogus'"),
                                         (["train", "--task", "sciqq"], "'sciqq'"),
                                         (["train", "--task", "sciq+sciq"], "distinct"),
                                         (["train", "--students", "transfer_pik"], "mixture"),
                                         (["train", "--strong", "./no/such/model"], "./no/such/model"),
                                         (["weak", "--weak", "./no/such/model"], "./no/such/model"),
                                         (["train", "--seeds", "-1"], "seed -1"),
                                         (["train", "--resplits", "0"], "--resplits")])
def test_config_errors_exit_1_with_one_line(args, needle) -> None:
    r = _sw2s(*args)
    assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_exits_130(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    p = subprocess.Popen([sys.executable, "-c", "from selective_w2sg.cli import main; main()", "train", "--out",
                          str(tmp_path / "run"), "--epochs", "400", "--n-w2s", "400"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not (tmp_path / "run" / "cache").exists() and time.time() < deadline:  # a stage has started
        time.sleep(0.2)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_training_command_without_the_train_extra_names_it() -> None:
    """As from the prebuilt wheel without [train]: torch cannot be imported."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['sw2s', 'train']; "
            "from selective_w2sg.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "selective-w2sg[train]" in r.stderr and "torch" in r.stderr and "Traceback" not in r.stderr


def test_one_seed_prints_no_spread(tmp_path) -> None:
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), "--method", "all", *SMALL])
    assert r.exit_code == 0, r.output
    assert "± 0.0" not in r.output and "over 1 seed(s)" in r.output


# ---- issue 19: `report` refuses missing or corrupt inputs and never shrinks results.json ----


def _fake_run(root, seeds=(0, 1), n=60):
    """A run folder as `sw2s train` leaves it (per-seed results and test predictions), without training."""
    from selective_w2sg.experiment.evaluation import binary_metrics, pgr

    rng = np.random.default_rng(0)
    names = ["weak", "ceiling", "naive"]
    for s in seeds:
        d = root / f"seed{s}"
        d.mkdir(parents=True)
        labels = rng.integers(0, 2, n)
        preds = np.stack([np.clip(labels * q + rng.random(n) * (1 - q), 0, 1) for q in (0.2, 0.8, 0.5)]).astype(np.float32)
        models = {m: binary_metrics(p, labels) for m, p in zip(names, preds)}
        w, c = models["weak"]["accuracy"], models["ceiling"]["accuracy"]
        models["weak"]["auroc"] = float("nan")  # a NaN, as a one-class test split gives
        (d / "results.json").write_text(json.dumps({
            "task": "synthetic", "seed": s, "metric": "accuracy", "n_test": n, "models": models,
            "pgr": {"naive": pgr(models["naive"]["accuracy"], w, c)}, "ceiling_beats_weak": c > w}))
        np.savez(d / "test_predictions.npz", models=np.array(names), preds=preds, labels=labels,
                 question=np.arange(n, dtype=np.int64))
    return root


def _run_main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["sw2s", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_report_is_strict_json_with_the_paired_statistics(tmp_path, monkeypatch, capsys) -> None:
    run = _fake_run(tmp_path / "run")
    code, err = _run_main(monkeypatch, capsys, "report", str(run))
    assert code in (0, None), err

    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name} in results.json")

    summary = json.loads((run / "results.json").read_text(), parse_constant=refuse)["summary"]
    assert "contrasts" in summary and summary["question_accuracy"]["naive"]["mean"] > 0


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda r: (r / "seed1" / "test_predictions.npz").unlink(), "seed1/test_predictions.npz' are missing"),
        (lambda r: (r / "seed0" / "test_predictions.npz").write_bytes(b""), "seed0/test_predictions.npz' are empty"),
        (lambda r: (r / "seed0" / "test_predictions.npz").write_bytes(b"PK\x03\x04 cut"), "truncated or corrupt"),
        (lambda r: (r / "seed1" / "results.json").write_text('{"task": "synthetic"'), "seed1/results.json' is corrupt"),
        (lambda r: (r / "seed1" / "results.json").write_text("{}"), "no 'task'"),
        (lambda r: (r / "seed0" / "results.json").write_text(""), "seed0/results.json' is empty"),
    ],
)
def test_report_refuses_missing_or_corrupt_inputs(tmp_path, monkeypatch, capsys, damage, needle) -> None:
    run = _fake_run(tmp_path / "run")
    code, err = _run_main(monkeypatch, capsys, "report", str(run))
    assert code in (0, None), err
    before = (run / "results.json").read_bytes()
    damage(run)
    code, err = _run_main(monkeypatch, capsys, "report", str(run))
    assert code == 1, err  # never 130 (Ctrl-C), never 0 with results dropped
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert (run / "results.json").read_bytes() == before  # nothing lost


def test_report_never_writes_a_smaller_results_json(tmp_path, monkeypatch, capsys) -> None:
    run = _fake_run(tmp_path / "run")
    assert _run_main(monkeypatch, capsys, "report", str(run))[0] in (0, None)
    before = (run / "results.json").read_bytes()
    import shutil

    shutil.rmtree(run / "seed1")  # a seed folder gone: the aggregate would lose it
    code, err = _run_main(monkeypatch, capsys, "report", str(run))
    assert code == 1 and "would drop seed 1" in err, err
    assert (run / "results.json").read_bytes() == before


# ---- issue 19: one writer per run folder, no silent replacement, inputs checked up front ----


def test_run_lock_refuses_a_second_holder_and_takes_over_a_dead_ones(tmp_path) -> None:
    import subprocess

    from selective_w2sg.graph.errors import RunLockedError
    from selective_w2sg.graph.io import run_lock

    run = tmp_path / "run"
    with run_lock(run):
        # another process on the same folder is refused, and told who holds it
        r = subprocess.run([sys.executable, "-c", "from selective_w2sg.graph.io import run_lock\n"
                            f"with run_lock({str(run)!r}): pass"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "RunLockedError" in r.stderr
        import os
        import socket

        assert f"pid {os.getpid()} on {socket.gethostname()}" in r.stderr
    # a holder killed with SIGKILL leaves the file behind; the lock itself dies with it
    p = subprocess.Popen([sys.executable, "-c", "import time\nfrom selective_w2sg.graph.io import run_lock\n"
                          f"with run_lock({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError, match=f"pid {p.pid}"):
        with run_lock(run):
            pass
    p.kill()
    p.wait()
    p.stdout.close()
    with run_lock(run):  # stale: taken over
        pass


def test_train_checks_run_folder_before_training(tmp_path, monkeypatch, capsys) -> None:
    run = tmp_path / "run"
    base = ["train", "--out", str(run), "--method", "w2s", *SMALL]
    # an existing run with other settings is not replaced without --force
    run.mkdir()
    from selective_w2sg.cli.options import build_config

    cfg = build_config({"out": str(run), "method": "all"})
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    before = (run / "config.json").read_text()
    code, err = _run_main(monkeypatch, capsys, *base)
    assert code == 1 and "other settings" in err and "method: 'all' -> 'w2s'" in err and "--force" in err, err
    assert (run / "config.json").read_text() == before and not (run / "cache").exists()
    # a run already writing the folder: refused with its holder named
    from selective_w2sg.graph.io import run_lock

    (run / "config.json").unlink()
    with run_lock(run):
        code, err = _run_main(monkeypatch, capsys, *base)
    assert code == 1 and "in use by another sw2s process" in err and len(err.strip().splitlines()) == 1, err
    # a hub model that cannot be reached: refused before the weak model trains, no config.json left
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _run_main(monkeypatch, capsys, *base, "--strong", "no-such-org/no-such-model-19")
    assert code == 1 and "no-such-org/no-such-model-19" in err and "HF_HUB_OFFLINE" in err, err
    assert not (run / "config.json").exists() and not (run / "cache").exists()


def test_train_synthetic_with_data_is_refused(tmp_path, monkeypatch, capsys) -> None:
    code, err = _run_main(monkeypatch, capsys, "train", "--task", "synthetic", "--data", str(tmp_path),
                          "--out", str(tmp_path / "o"))
    assert code == 1 and "--data" in err and "does not apply to --task synthetic" in err, err


def test_split_sizes_quote_only_the_flags_given(tmp_path) -> None:
    from selective_w2sg.graph.errors import ConfigError
    from selective_w2sg.experiment.tasks import build_splits

    rows = [{"question": f"q{i}?", "correct_answer": "a", "distractor1": "b", "distractor2": "c", "distractor3": "d"}
            for i in range(200)]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(ConfigError) as e:
        build_splits("sciq", seed=0, data=str(path), n_test=500)
    msg = str(e.value)
    assert "--n-test 500" in msg and "--n-weak" not in msg and "--n-w2s" not in msg, msg


def test_a_setting_added_since_is_not_a_change(tmp_path, monkeypatch, capsys) -> None:
    """A run folder written before a setting existed (its config.json lacks the key) is the same
    run as today's at that setting's default: rerunning it is not refused."""
    from selective_w2sg.config import RunConfig

    out = tmp_path / "o"
    out.mkdir()
    cfg = RunConfig.create(out=str(out), n_weak=30, n_w2s=60, n_test=30, method="w2s", epochs=1)
    old = cfg.to_dict()
    del old["train"]["max_steps"]  # as written before --max-steps existed
    (out / "config.json").write_text(json.dumps(old))
    code, err = _run_main(monkeypatch, capsys, "train", "--out", str(out), "--n-weak", "30", "--n-w2s", "60",
                          "--n-test", "30", "--method", "w2s", "--epochs", "1")
    assert code == 0, err
    old["train"]["epochs"] = 3  # a real difference is still refused
    (out / "config.json").write_text(json.dumps(old))
    code, err = _run_main(monkeypatch, capsys, "train", "--out", str(out), "--n-weak", "30", "--n-w2s", "60",
                          "--n-test", "30", "--method", "w2s", "--epochs", "1")
    assert code == 1 and "epochs: 3 -> 1" in err, err
