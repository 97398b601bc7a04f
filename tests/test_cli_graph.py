"""`sw2s knn` and `sw2s smooth` end to end, as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import selective_w2sg as sw
from conftest import clustered


def sw2s(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from selective_w2sg.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def files(tmp_path):
    x = clustered(300, 8, centres=3, seed=4)
    y = np.random.default_rng(0).random(300).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    np.save(tmp_path / "weak.npy", y)
    return tmp_path, x, y


def test_smooth_end_to_end(files):
    tmp, x, y = files
    r = sw2s("smooth", "--embeddings", str(tmp / "emb.npy"), "--labels", str(tmp / "weak.npy"),
             "--out", str(tmp / "s.npy"), "--k", "5", "--alpha", "0.6")
    assert r.returncode == 0, r.stderr
    assert "iterations" in r.stdout
    out = np.load(tmp / "s.npy")
    expected = sw.smooth_labels(sw.knn_graph(x, 5), y, alpha=0.6)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert not list(tmp.glob(".*.tmp*")), "temporary file left behind"


def test_knn_then_smooth_with_saved_graph(files):
    tmp, x, y = files
    r = sw2s("knn", "--embeddings", str(tmp / "emb.npy"), "--k", "7", "--out", str(tmp / "g.npz"))
    assert r.returncode == 0, r.stderr
    g = sw.KnnGraph.load(tmp / "g.npz")
    np.testing.assert_array_equal(g.indices, sw.knn_graph(x, 7).indices)
    r = sw2s("smooth", "-e", str(tmp / "emb.npy"), "-l", str(tmp / "weak.npy"), "-o", str(tmp / "s.npy"),
             "--graph", str(tmp / "g.npz"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp / "s.npy"), sw.smooth_labels(g, y), atol=1e-6)
    # a graph of other data is refused
    np.save(tmp / "other.npy", x[::-1].copy())
    r = sw2s("smooth", "-e", str(tmp / "other.npy"), "-l", str(tmp / "weak.npy"), "-o", str(tmp / "t.npy"),
             "--graph", str(tmp / "g.npz"))
    assert r.returncode == 1 and "other embeddings" in r.stderr and not (tmp / "t.npy").exists()


def test_refuses_to_overwrite_without_force(files):
    tmp, _, _ = files
    (tmp / "s.npy").write_bytes(b"precious")
    args = ["smooth", "-e", str(tmp / "emb.npy"), "-l", str(tmp / "weak.npy"), "-o", str(tmp / "s.npy")]
    r = sw2s(*args)
    assert r.returncode == 1 and "--force" in r.stderr
    assert (tmp / "s.npy").read_bytes() == b"precious"
    assert sw2s(*args, "--force").returncode == 0
    assert np.load(tmp / "s.npy").shape == (300,)


@pytest.mark.parametrize(
    "setup,needle",
    [
        (lambda t: None, "does not exist"),
        (lambda t: (t / "emb.npy").write_text("not an array"), "not a readable .npy"),
        (lambda t: np.save(t / "emb.npy", np.full((300, 8), np.nan, np.float32)), "row 0"),
        (lambda t: np.save(t / "emb.npy", np.ones((299, 8), np.float32)), "299"),
    ],
)
def test_bad_files_give_one_readable_line(tmp_path, setup, needle):
    np.save(tmp_path / "weak.npy", np.full(300, 0.5, np.float32))
    setup(tmp_path)
    r = sw2s("smooth", "-e", str(tmp_path / "emb.npy"), "-l", str(tmp_path / "weak.npy"), "-o", str(tmp_path / "s.npy"))
    assert r.returncode == 1
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.npy").exists()


def test_help_reads_well():
    r = sw2s("--help")
    assert r.returncode == 0
    for cmd in ("knn", "smooth"):
        assert cmd in r.stdout
    r = sw2s("smooth", "--help")
    assert "--embeddings" in r.stdout and "--alpha" in r.stdout


# ---- issue 11: never silent garbage, never a false success ----


def _one_line_error(r, needle):
    assert r.returncode in (1, 2), (r.returncode, r.stderr)
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "OverflowError" not in r.stderr


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--seed", "-1"], "seed"),
        (["--seed", "18446744073709551616"], "seed"),
        (["--k", "99999999999999999999"], "k="),
        (["--threads", "0"], "num_threads"),
    ],
)
def test_knn_bad_integers_are_one_line(files, extra, needle):
    tmp, _, _ = files
    r = sw2s("knn", "--embeddings", str(tmp / "emb.npy"), "--out", str(tmp / "g.npz"), *extra)
    _one_line_error(r, needle)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp / "g.npz").exists()


def test_smooth_bad_seed_is_one_line(files):
    tmp, _, _ = files
    r = sw2s("smooth", "--embeddings", str(tmp / "emb.npy"), "--labels", str(tmp / "weak.npy"),
             "--out", str(tmp / "s.npy"), "--seed", "-1")
    _one_line_error(r, "seed")


def test_folder_as_out_with_force(files):
    tmp, _, _ = files
    (tmp / "d").mkdir()
    r = sw2s("knn", "--embeddings", str(tmp / "emb.npy"), "--out", str(tmp / "d"), "--force")
    _one_line_error(r, "is a folder")
    assert r.returncode == 1


def test_unwritable_out_fails_before_computing(files):
    tmp, _, _ = files
    r = sw2s("knn", "--embeddings", str(tmp / "emb.npy"), "--out", "/sys/sw2s-test/g.npz")
    _one_line_error(r, "not writable")
    assert "kNN graph of" not in r.stderr  # refused before the graph was computed


def test_failed_command_leaves_no_empty_folders(files):
    tmp, _, _ = files
    bad = tmp / "bad.npy"
    np.save(bad, np.full((10, 3), np.nan, np.float32))
    r = sw2s("knn", "--embeddings", str(bad), "--out", str(tmp / "new" / "deep" / "g.npz"))
    assert r.returncode == 1
    assert not (tmp / "new").exists()


def test_output_mode_follows_umask(files):
    import os
    import stat

    tmp, _, _ = files
    r = subprocess.run(
        ["sh", "-c", f"umask 022 && {sys.executable} -c 'from selective_w2sg.cli import main; main()' "
         f"knn --embeddings {tmp / 'emb.npy'} --out {tmp / 'g.npz'} --k 3"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tmp / "g.npz").st_mode) == 0o644


# ---- issue 19: corrupt inputs, flags that do not apply, races on one output ----


def _only_error_line(r, needle):
    assert r.returncode == 1, (r.returncode, r.stderr)  # never 130: that is for Ctrl-C
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(b"PK\x03\x04 truncated zip"), "not a readable .npz"),
        (lambda p: np.save(p.with_suffix(".npy"), np.ones(3)) or p.with_suffix(".npy").rename(p), "single array"),
        (lambda p: np.savez(p, a=np.ones(3)), "no 'indices' array"),
    ],
)
def test_corrupt_graph_is_one_line_exit_1(files, make, needle):
    tmp, _, _ = files
    make(tmp / "g.npz")
    r = sw2s("smooth", "-e", str(tmp / "emb.npy"), "-l", str(tmp / "weak.npy"), "-o", str(tmp / "s.npy"),
             "--graph", str(tmp / "g.npz"))
    _only_error_line(r, needle)
    assert str(tmp / "g.npz") in r.stderr and not (tmp / "s.npy").exists()


def test_npz_as_embeddings_or_labels_is_named(files):
    tmp, x, y = files
    np.savez(tmp / "emb.npz", x=x)
    np.savez(tmp / "weak.npz", y=y)
    r = sw2s("knn", "-e", str(tmp / "emb.npz"), "-o", str(tmp / "g.npz"))
    _only_error_line(r, "is a .npz archive (arrays: x)")
    r = sw2s("smooth", "-e", str(tmp / "emb.npy"), "-l", str(tmp / "weak.npz"), "-o", str(tmp / "s.npy"))
    _only_error_line(r, "labels file")
    assert "is a .npz archive (arrays: y)" in r.stderr


def test_graph_with_conflicting_flags_is_refused(files):
    tmp, _, _ = files
    assert sw2s("knn", "-e", str(tmp / "emb.npy"), "-k", "7", "-o", str(tmp / "g.npz")).returncode == 0
    base = ["smooth", "-e", str(tmp / "emb.npy"), "-l", str(tmp / "weak.npy"), "-o", str(tmp / "s.npy"),
            "--graph", str(tmp / "g.npz")]
    for extra, needle in ((["-k", "5"], "k=7"), (["--metric", "ip"], "metric cosine"),
                          (["--method", "exact"], "--method does not apply")):
        _only_error_line(sw2s(*base, *extra), needle)
    assert not (tmp / "s.npy").exists()
    # the graph's own values are accepted
    assert sw2s(*base, "-k", "7", "--metric", "cosine").returncode == 0


def test_output_equal_to_an_input_is_refused_even_with_force(files):
    tmp, _, _ = files
    before = (tmp / "weak.npy").read_bytes()
    r = sw2s("smooth", "-e", str(tmp / "emb.npy"), "-l", str(tmp / "weak.npy"), "-o", str(tmp / "weak.npy"), "--force")
    _only_error_line(r, "is the --labels input")
    r = sw2s("knn", "-e", str(tmp / "emb.npy"), "-o", str(tmp / "." / "emb.npy"), "--force")
    _only_error_line(r, "is the --embeddings input")
    assert (tmp / "weak.npy").read_bytes() == before


def test_concurrent_writers_of_one_new_output_exactly_one_wins(files):
    # two processes, one new --out, no --force: one writes it, the other fails with one line
    # (either at the start, or when it claims the name after computing); the k=5 graph never
    # silently replaces the k=7 one or the reverse
    tmp, _, _ = files
    out = tmp / "g.npz"
    cmd = [sys.executable, "-c", "from selective_w2sg.cli import main; main()", "knn", "-e", str(tmp / "emb.npy"),
           "-o", str(out)]
    procs = [subprocess.Popen([*cmd, "-k", k], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in ("7", "5")]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        results.append((p.returncode, err))
    codes = sorted(c for c, _ in results)
    assert codes == [0, 1], results
    loser = next(e for c, e in results if c == 1)
    assert "--force" in loser and "Traceback" not in loser
    winner_k = ("7", "5")[[c for c, _ in results].index(0)]
    assert sw.KnnGraph.load(out).k == int(winner_k)


def test_threads_above_the_cpus_are_capped_with_a_warning(files):
    tmp, x, _ = files
    r = sw2s("knn", "-e", str(tmp / "emb.npy"), "-o", str(tmp / "g.npz"), "--threads", "4096")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "num_threads=4096" in r.stderr and "Traceback" not in r.stderr
    np.testing.assert_array_equal(sw.KnnGraph.load(tmp / "g.npz").indices, sw.knn_graph(x, 10).indices)


def test_version_and_short_help():
    r = sw2s("--version")
    assert r.returncode == 0 and sw.__version__ in r.stdout
    r = sw2s("-h")
    assert r.returncode == 0 and "knn" in r.stdout
    r = sw2s("knn", "-h")
    assert r.returncode == 0 and "--embeddings" in r.stdout


def test_disk_full_is_one_line_and_keeps_the_old_output(files, monkeypatch, capsys):
    import errno

    from selective_w2sg.cli import main

    tmp, _, _ = files
    (tmp / "g.npz").write_bytes(b"old graph")

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    monkeypatch.setattr(sys, "argv", ["sw2s", "knn", "-e", str(tmp / "emb.npy"), "-o", str(tmp / "g.npz"), "--force"])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 1 and "no space left on device" in err and str(tmp / "g.npz") in err, err
    assert "Traceback" not in err and (tmp / "g.npz").read_bytes() == b"old graph"


def test_eof_error_is_not_an_interrupt(capsys):
    # click turns EOFError into the Abort it uses for Ctrl-C: a truncated input must exit 1, not 130
    import click
    from rich.console import Console

    from selective_w2sg.cli import EXIT_ERROR, EXIT_INTERRUPTED, _click_exit_code

    try:
        try:
            raise EOFError("No data left in file")
        except EOFError as inner:
            raise click.exceptions.Abort() from inner
    except click.exceptions.Abort as abort:
        assert _click_exit_code(abort, Console(stderr=True)) == EXIT_ERROR
    assert "empty or truncated" in capsys.readouterr().err
    assert _click_exit_code(click.exceptions.Abort()) == EXIT_INTERRUPTED
