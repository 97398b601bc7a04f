"""`sw2s` command line. Commands live in submodules by concern; each only parses and calls."""

from __future__ import annotations

import sys

from ..errors import Sw2sError
from ._app import app
from . import graph as _graph  # noqa: F401  (registers knn, smooth)

try:  # the training commands need the [train] extra (torch, transformers)
    from . import selective as _selective  # noqa: F401
    from . import train as _train  # noqa: F401
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    _TRAIN_IMPORT_ERROR: ModuleNotFoundError | None = e
else:
    _TRAIN_IMPORT_ERROR = None


def main() -> None:
    """Entry point: run the app; a user error is one red line and exit code 1, no traceback."""
    from rich.console import Console
    from rich.markup import escape

    try:
        app(standalone_mode=False)
    except Sw2sError as e:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        Console(stderr=True).print("[bold red]interrupted[/]")
        sys.exit(130)
    except Exception as e:  # click usage errors etc.
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise
