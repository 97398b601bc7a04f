"""`sw2s train` (every stage, every seed), the stage commands `sw2s weak | ceiling | student`, and
`sw2s report`. Each command only parses options into a `PipelineConfig` and calls the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import ConfigError
from ._app import app

console = Console(stderr=True)
out_console = Console()

Task = Annotated[str, typer.Option("--task", "-t", help="Task: synthetic, sciq, boolq, arc_easy, ... (see docs).")]
Weak = Annotated[str, typer.Option("--weak", help="Weak model: tiny-random-bert | tiny-random-llama | hub id | local path.")]
Strong = Annotated[str, typer.Option("--strong", help="Strong model (same forms as --weak).")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Run folder: results, plots, and the stage cache (out/cache).")]
Mode = Annotated[str, typer.Option("--mode", help="probe (frozen backbone + linear head; CPU) | full | lora.")]
Seeds = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds, e.g. 0,1,2.")]
Data = Annotated[Path | None, typer.Option("--data", help="Local task data: save_to_disk folder, .jsonl or .parquet.")]
DataSplit = Annotated[str | None, typer.Option("--data-split", help="Split of a local DatasetDict (default: all).")]
NWeak = Annotated[int | None, typer.Option("--n-weak", help="weak_train questions.")]
NW2s = Annotated[int | None, typer.Option("--n-w2s", help="w2s questions (w2s_train + w2s_val).")]
NTest = Annotated[int | None, typer.Option("--n-test", help="test questions.")]
ValFrac = Annotated[float, typer.Option("--val-frac", help="Share of w2s questions held out as w2s_val.")]
PoolSeed = Annotated[int | None, typer.Option(
    "--pool-seed", help="Draw the questions used once, with this seed; each --seeds value then re-splits that "
    "same pool (so seeds share the strong model's encode pass). Default: each seed draws its own questions.")]
Students = Annotated[str | None, typer.Option("--students", help="Comma-separated students (overrides --method): naive, aux_conf, selective, pik_only, smooth_only.")]
Method = Annotated[str, typer.Option("--method", help="w2s (naive + aux_conf) | selective | all (w2s + selective + ablations).")]
KNeighbours = Annotated[int, typer.Option("--k", help="Selective: neighbours in the kNN graph.")]
Alpha = Annotated[float, typer.Option("--alpha", help="Selective: label-spreading weight of the neighbours, [0, 1).")]
Rule = Annotated[str, typer.Option("--rule", help="Selective: compare (P(IK) > weak calibrated confidence) | tau.")]
Tau = Annotated[float, typer.Option("--tau", help="Selective: P(IK) threshold for --rule tau.")]
PikKind = Annotated[str, typer.Option("--pik", help="Selective: P(IK) probe, logreg | mlp.")]
SelfLabels = Annotated[str, typer.Option(
    "--self-labels", help="Selective: the strong model's own answer among the candidates a question's examples "
    "present (presented) or among all its options (all).")]
FeatureLayer = Annotated[int | None, typer.Option("--feature-layer", help="Selective: hidden layer for P(IK) features (default: middle).")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Epochs (default: 40 probe, 2 full/lora).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Examples per optimiser step (all ranks).")]
MicroBatch = Annotated[int | None, typer.Option("--micro-batch-size", help="Examples per forward pass (grad accumulation).")]
Lr = Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default: 1e-2 probe, 5e-5 full, 1e-4 lora).")]
MaxLength = Annotated[int, typer.Option("--max-length", help="Tokens per example.")]
Pooling = Annotated[str | None, typer.Option("--pooling", help="last | mean (default: last for causal LMs, mean for encoders).")]
Device_ = Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")]
WeakGguf = Annotated[str | None, typer.Option("--weak-gguf", help="GGUF file inside the weak model folder.")]
StrongGguf = Annotated[str | None, typer.Option("--strong-gguf", help="GGUF file inside the strong model folder.")]
Force = Annotated[bool, typer.Option("--force", help="Recompute stages even if finished ones exist.")]


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{what} is empty")
    return vals


def build_config(**kw: Any) -> Any:
    """Options -> a validated PipelineConfig (imports torch lazily: `sw2s --help` stays fast)."""
    from ..pipeline import PipelineConfig
    from ..train import TrainConfig

    train = TrainConfig(mode=kw.pop("mode"), epochs=kw.pop("epochs"), batch_size=kw.pop("batch_size"),
                        micro_batch_size=kw.pop("micro_batch_size"), lr=kw.pop("lr"), max_length=kw.pop("max_length"),
                        pooling=kw.pop("pooling"), device=kw.pop("device"))
    seeds = parse_ints(kw.pop("seeds"), "--seeds")
    raw = kw.pop("students", None)
    students = None if raw is None else tuple(s.strip() for s in raw.split(",") if s.strip())
    from ..pik import PikConfig
    from ..select import SelectiveConfig

    sel_defaults = SelectiveConfig()
    selective = SelectiveConfig(
        k=kw.pop("k", sel_defaults.k), alpha=kw.pop("alpha", sel_defaults.alpha), rule=kw.pop("rule", sel_defaults.rule),
        tau=kw.pop("tau", sel_defaults.tau), feature_layer=kw.pop("feature_layer", None),
        self_label_among=kw.pop("self_labels", sel_defaults.self_label_among),
        pik=PikConfig(kind=kw.pop("pik", "logreg")),
    )
    data = kw.pop("data")
    return PipelineConfig(train=train, seeds=seeds, students=students, selective=selective,
                          data=None if data is None else str(data),
                          out=str(kw.pop("out")), **kw).validate()


@contextmanager
def rich_progress() -> Iterator[tuple[Any, Any]]:
    """(progress(what, done, total), stage_done(name, StageDir)) callbacks over a rich Progress."""
    bars = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=True)
    ids: dict[str, Any] = {}

    def progress(what: str, done: int, total: int) -> None:
        if what not in ids:
            ids[what] = bars.add_task(what, total=total)
        bars.update(ids[what], completed=done, total=total)

    def stage_done(name: str, d: Any) -> None:
        for what in list(ids):
            bars.remove_task(ids.pop(what))
        how = "[dim]reused[/]" if d.reused else "[green]done[/]"
        bars.console.print(f"{how} {name:<10} {d.path}")

    with bars:
        yield progress, stage_done


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    from ..evaluate import results_table

    out_console.print(results_table(summary))
    typer.echo(f"results: {out / 'results.json'}  plot: {out / 'results.png'}")


@app.command()
def train(
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), mode: Mode = "probe", seeds: Seeds = "0", data: Data = None,
    data_split: DataSplit = None, n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None,
    val_frac: ValFrac = 0.2, pool_seed: PoolSeed = None, method: Method = "w2s", students: Students = None, k: KNeighbours = 10,
    alpha: Alpha = 0.5, rule: Rule = "compare", tau: Tau = 0.5, pik: PikKind = "logreg", self_labels: SelfLabels = "presented",
    feature_layer: FeatureLayer = None, epochs: Epochs = None, batch_size: BatchSize = 32,
    micro_batch_size: MicroBatch = None, lr: Lr = None, max_length: MaxLength = 256, pooling: Pooling = None,
    device: Device_ = "auto", weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None, force: Force = False,
) -> None:
    """Run every stage for every seed (weak, ceiling, the --method's students; for selective also encode, P(IK), smooth, select); print and save the results."""
    cfg = build_config(**locals())
    from ..pipeline import run_pipeline

    from .. import dist

    dist.init_from_env()
    if not dist.is_main():  # under torchrun: rank 0 reports
        run_pipeline(cfg)
        return
    with rich_progress() as (progress, stage_done):
        summary = run_pipeline(cfg, progress, stage_done)
    _print_summary(summary, out)


def _one_stage(cfg: Any, stage: str, student: str | None = None, labels: Path | None = None,
               val_labels: Path | None = None) -> None:
    import numpy as np

    from .. import dist
    from ..pipeline import prepare_seed
    from ..stages import STUDENTS, run_ceiling, run_student, run_weak

    dist.init_from_env()

    for seed in cfg.seeds:
        with rich_progress() as (progress, stage_done):
            ctx = prepare_seed(cfg, seed, progress)
            if stage == "weak":
                d = run_weak(ctx)
            elif stage == "ceiling":
                d = run_ceiling(ctx)
            else:
                assert student is not None
                if labels is not None:
                    from .graph import load_npy

                    tr = np.array(load_npy(labels, "labels"), dtype=np.float32)
                    if val_labels is None:
                        raise ConfigError("--labels needs --val-labels (weak-derived labels for w2s_val)")
                    va = np.array(load_npy(val_labels, "val labels"), dtype=np.float32)
                    for arr, split, flag in ((tr, "w2s_train", "--labels"), (va, "w2s_val", "--val-labels")):
                        n = len(ctx.splits.examples[split])
                        if arr.shape != (n,):
                            raise ConfigError(f"{flag} has shape {arr.shape}; {split} has {n} examples")
                    loss = STUDENTS[student].loss if student in STUDENTS else "xent"
                    d = run_student(ctx, student, tr, va, loss=loss)
                else:
                    weak = run_weak(ctx)
                    stage_done("weak", weak)
                    from ..stages import run_named_student

                    d = run_named_student(ctx, student, {"weak": weak})
            stage_done(stage if student is None else student, d)
        if dist.is_main():
            typer.echo(str(d.path))


@app.command()
def weak(
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), mode: Mode = "probe", seeds: Seeds = "0", data: Data = None,
    data_split: DataSplit = None, n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None,
    val_frac: ValFrac = 0.2, pool_seed: PoolSeed = None, epochs: Epochs = None, batch_size: BatchSize = 32,
    micro_batch_size: MicroBatch = None,
    lr: Lr = None, max_length: MaxLength = 256, pooling: Pooling = None, device: Device_ = "auto",
    weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None, force: Force = False,
) -> None:
    """Train the weak supervisor on weak_train; write its P(y=1) on every split. Prints the stage folder."""
    _one_stage(build_config(students="naive", **locals()), "weak")


@app.command()
def ceiling(
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), mode: Mode = "probe", seeds: Seeds = "0", data: Data = None,
    data_split: DataSplit = None, n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None,
    val_frac: ValFrac = 0.2, pool_seed: PoolSeed = None, epochs: Epochs = None, batch_size: BatchSize = 32,
    micro_batch_size: MicroBatch = None,
    lr: Lr = None, max_length: MaxLength = 256, pooling: Pooling = None, device: Device_ = "auto",
    weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None, force: Force = False,
) -> None:
    """Train the strong model on w2s_train ground truth (the reference). Prints the stage folder."""
    _one_stage(build_config(students="naive", **locals()), "ceiling")


@app.command()
def student(
    name: Annotated[str, typer.Option("--name", help="Student: naive | aux_conf (or any name with --labels).")] = "naive",
    labels: Annotated[Path | None, typer.Option("--labels", help="float .npy P(y=1) per w2s_train example; default: weak predictions.")] = None,
    val_labels: Annotated[Path | None, typer.Option("--val-labels", help="float .npy P(y=1) per w2s_val example (with --labels).")] = None,
    task: Task = "synthetic", weak: Weak = "tiny-random-bert", strong: Strong = "tiny-random-llama",
    out: Out = Path("runs/w2s"), mode: Mode = "probe", seeds: Seeds = "0", data: Data = None,
    data_split: DataSplit = None, n_weak: NWeak = None, n_w2s: NW2s = None, n_test: NTest = None,
    val_frac: ValFrac = 0.2, pool_seed: PoolSeed = None, epochs: Epochs = None, batch_size: BatchSize = 32,
    micro_batch_size: MicroBatch = None,
    lr: Lr = None, max_length: MaxLength = 256, pooling: Pooling = None, device: Device_ = "auto",
    weak_gguf: WeakGguf = None, strong_gguf: StrongGguf = None, force: Force = False,
) -> None:
    """Train a strong student on w2s_train from weak labels (or --labels). Prints the stage folder."""
    kw = dict(locals())
    name, labels, val_labels = kw.pop("name"), kw.pop("labels"), kw.pop("val_labels")
    students = name if labels is None else "naive"  # a --labels student need not be registered
    _one_stage(build_config(students=students, **kw), "student", name, labels, val_labels)


@app.command()
def report(out: Annotated[Path, typer.Argument(help="Run folder written by `sw2s train`.")]) -> None:
    """Re-render the results table and plot from a run folder's saved per-seed results."""
    from ..evaluate import load_seed_results, write_report

    summary = write_report(out, load_seed_results(out))
    _print_summary(summary, out)
