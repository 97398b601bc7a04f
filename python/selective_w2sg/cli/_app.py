"""The one Typer app. Command modules register on it; `cli/__init__.py` imports them all."""

from __future__ import annotations

from typing import Annotated

import typer

from ..graph._core import __version__

app = typer.Typer(
    name="sw2s",
    help=(
        "Selective weak-to-strong generalization: train a strong model from a weak supervisor's "
        "labels, using its own answers where a P(IK) probe says it knows, and kNN-smoothed weak "
        "labels elsewhere."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sw2s (selective-w2sg) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Selective weak-to-strong generalization: train a strong model from a weak supervisor's
    labels, using its own answers where a P(IK) probe says it knows, and kNN-smoothed weak
    labels elsewhere."""
