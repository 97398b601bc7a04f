"""The one Typer app. Command modules register on it; `cli/__init__.py` imports them all."""

from __future__ import annotations

import typer

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
)
