"""`sw2s train` (every stage, every seed) and `sw2s report`; the run folder every command that
writes one shares (`run_folder`: checks, lock, config.json) and the per-seed resolution the stage
commands use (`resolve_for_seeds`). Options come from the config fields (`options.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..config import RunConfig
from ..graph.errors import ConfigError, DataError
from ..graph.io import check_writable, run_lock, strict_json
from ._app import app
from .options import config_command

console = Console(stderr=True)
out_console = Console()

# The stage commands train no student and use no selective settings.
STAGE_PARTS = ("data", "models", "train", "run")
NOT_FOR_STAGES = ("method", "students")


@contextmanager
def rich_progress() -> Iterator[tuple[Any, Any]]:
    """(progress(what, done, total), on_done(name, StageDir)) callbacks over a rich Progress."""
    bars = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=True)
    ids: dict[str, Any] = {}

    def progress(what: str, done: int, total: int) -> None:
        if what not in ids:
            ids[what] = bars.add_task(what, total=total)
        bars.update(ids[what], completed=done, total=total)

    def on_done(name: str, d: Any) -> None:
        for what in list(ids):
            bars.remove_task(ids.pop(what))
        how = "[dim]reused[/]" if d.reused else "[green]done[/]"
        bars.console.print(f"{how} {name:<10} {d.path}")

    with bars:
        yield progress, on_done


def _diff(old: Any, new: Any, where: str = "") -> list[str]:
    """Leaf differences between two config dicts, as `key: old -> new`."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _diff(old.get(k, "<unset>"), new.get(k, "<unset>"), f"{where}.{k}" if where else str(k))]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


@contextmanager
def run_folder(cfg: RunConfig, *, same_config: bool = True) -> Iterator[None]:
    """Everything checked before the first stage trains, and the run folder held while the
    command writes it: --out writable, both models available (local, cached or reachable on
    the hub), the folder's lock (a second run on it is refused, naming the holder), and with
    `same_config` an existing run with other settings refused without --force. A run that
    fails leaves no config.json it created."""
    import json

    from ..experiment.models import check_model_available

    out = Path(cfg.out)
    check_writable(out / "config.json", force=True)
    for spec in (cfg.models.weak_spec, cfg.models.strong_spec):
        check_model_available(spec.name, spec.gguf_file)
    with run_lock(out):
        cfg_file = out / "config.json"
        existed = cfg_file.is_file()
        if same_config and existed and not cfg.force:
            try:
                old = json.loads(cfg_file.read_text())
            except (OSError, ValueError) as e:
                raise DataError(f"run config {str(cfg_file)!r} is corrupt ({e}); pass --force to replace this run") from None
            try:  # a setting added since (absent from the old file) counts at its default, not as a change
                old = strict_json(RunConfig.from_dict(old).to_dict())
            except (ConfigError, TypeError, ValueError):
                pass  # a setting since removed or renamed: compare the raw files (and so refuse)
            diffs = [d for d in _diff(old, json.loads(json.dumps(strict_json(cfg.to_dict())))) if not d.startswith("force:")]
            if diffs:
                raise ConfigError(f"{str(out)!r} holds a run with other settings ({'; '.join(diffs[:4])}"
                                  f"{' ...' if len(diffs) > 4 else ''}); pass --force to replace its results, "
                                  "or give another --out")
        try:
            yield
        except BaseException:
            if not existed:
                cfg_file.unlink(missing_ok=True)
            raise


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    from ..experiment.evaluation import contrasts_table, results_table, sources_table

    out_console.print(results_table(summary))
    for extra in (sources_table(summary), contrasts_table(summary)):
        if extra is not None:
            out_console.print(extra)
    typer.echo(f"results: {out / 'results.json'}  plot: {out / 'results.png'}")


@config_command(app)
def train(cfg: RunConfig) -> None:
    """Run every stage for every seed (weak, ceiling, the --method's students and the stages they need); print and save the results."""
    from ..experiment import dist
    from ..experiment.pipeline import run_pipeline

    dist.init_from_env()
    if not dist.is_main():  # under torchrun: rank 0 reports
        run_pipeline(cfg)
        return
    with run_folder(cfg), rich_progress() as (progress, on_done):
        summary = run_pipeline(cfg, progress, on_done)
    _print_summary(summary, Path(cfg.out))


def resolve_for_seeds(cfg: RunConfig, targets: list[str], stages: Mapping[str, Any] | None = None
                      ) -> list[dict[str, Any]]:
    """Resolve `targets` for every seed of `cfg` with progress bars (in the graph `stages`, default
    the package's); the finished stages per seed."""
    from ..experiment import dist

    dist.init_from_env()
    with run_folder(cfg, same_config=False) if dist.is_main() else contextlib.nullcontext():
        return _resolve_for_seeds(cfg, targets, stages)


def _resolve_for_seeds(cfg: RunConfig, targets: list[str], stages: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    from ..experiment import dist
    from ..experiment.pipeline import prepare_seed, run_targets

    out = []
    for seed in cfg.seeds:
        with rich_progress() as (progress, on_done):
            ctx = prepare_seed(cfg, seed, progress)
            out.append(run_targets(ctx, targets, on_done, stages=stages))
        if dist.is_main():
            typer.echo(str(out[-1][targets[-1]].path))
    return out


@app.command()
def report(out: Annotated[Path, typer.Argument(help="Run folder written by `sw2s train`.")]) -> None:
    """Re-render the results table and plot from a run folder's saved per-seed results."""
    from ..experiment.evaluation import load_seed_results, write_report

    summary = write_report(out, load_seed_results(out), keep=True)
    _print_summary(summary, out)
