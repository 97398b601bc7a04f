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


TRAINING_COMMANDS = ("train", "weak", "ceiling", "student", "report", "encode", "pik", "select", "pik-transfer")

# Exit codes (README "Exit codes"): 0 success, 1 error, 2 usage, 130 interrupted.
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def main() -> None:
    """Entry point: a user error is one red line and exit code 1, a usage error click's message
    and exit code 2, Ctrl-C exit code 130; never a traceback for a user's mistake."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, soft_wrap=True)
    if _TRAIN_IMPORT_ERROR is not None and len(sys.argv) > 1 and sys.argv[1] in TRAINING_COMMANDS:
        hint = escape("pip install 'selective-w2sg[train]'")
        err.print(f"[bold red]error:[/] `sw2s {sys.argv[1]}` needs the training extra: {hint} "
                  f"(missing module: {_TRAIN_IMPORT_ERROR.name})", highlight=False)
        sys.exit(EXIT_ERROR)
    _catch_ctrl_c()
    try:
        rc = app(standalone_mode=False)
    except Sw2sError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(EXIT_INTERRUPTED if isinstance(e, KeyboardInterrupt) else EXIT_ERROR)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        code = _click_exit_code(e)
        if code is None:
            raise
        sys.exit(code)
    if rc in (None, 0) and _ctrl_c_seen():  # a Ctrl-C that a library swallowed, and nothing left to stop
        rc = EXIT_INTERRUPTED
    if isinstance(rc, int) and rc != 0:  # Typer returns Exit codes (130 on Ctrl-C) without standalone mode
        if rc == EXIT_INTERRUPTED:
            err.print("[bold red]interrupted[/]")
        sys.exit(rc)
    if "torch.distributed" in sys.modules:  # a run under torchrun: leave the process group cleanly
        from .. import dist

        dist.shutdown()


def _catch_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual and also sets `cache.INTERRUPTED`, so a
    KeyboardInterrupt lost in a `__del__` still stops the run at its next stage."""
    import signal

    from ..errors import INTERRUPTED

    def on_sigint(signum: int, frame: object) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (an embedding host): keep Python's handler
        pass


def _ctrl_c_seen() -> bool:
    from ..errors import INTERRUPTED

    return INTERRUPTED.is_set()


def _click_exit_code(e: BaseException) -> int | None:
    """Click's exceptions (Typer vendors its own click, so matched by shape): print their message
    the way click does and return the exit code; None for anything else."""
    name = type(e).__name__
    mod = type(e).__module__
    if not ("click" in mod or "typer" in mod):
        return None
    if hasattr(e, "show") and hasattr(e, "exit_code"):  # ClickException, UsageError, BadParameter ...
        e.show()
        return int(e.exit_code)
    if name == "Exit":
        return int(getattr(e, "exit_code", 0))
    if name == "Abort":
        return EXIT_INTERRUPTED
    return None
