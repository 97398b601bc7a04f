"""`sw2s` command line, above both halves of the package. One module per group of commands:

    knn_smooth  `sw2s knn`, `sw2s smooth`: the graph half on .npy files (torch-free)
    run         `sw2s train` (every stage, every seed), `sw2s report`; the run folder they share
    stages      one command per stage: `sw2s weak | encode | pik | select | ceiling | student`
    transfer    `sw2s pik-transfer`: cross-task P(IK) from finished runs
    options     options derived from the config's fields (`config.py`), declared once there

Each command only parses and calls. The commands of the experiment half import it when they run,
not when the CLI loads, so `sw2s knn`, `sw2s smooth` and every `--help` work without torch.
"""

from __future__ import annotations

import sys

from ..graph.errors import INTERRUPTED, ExactFallbackWarning, Sw2sError, ThreadsCappedWarning
from ..graph.io import write_error
from . import knn_smooth, run, stages, transfer  # noqa: F401  (each registers its commands)
from ._app import app

TRAINING_COMMANDS = ("train", "weak", "ceiling", "student", "report", "encode", "pik", "select", "pik-transfer")
# the packages of the [train] extra (pyproject.toml) that the experiment half imports
TRAIN_EXTRA = ("torch", "transformers", "datasets", "sklearn", "matplotlib", "safetensors")

# Exit codes (README "Exit codes"): 0 success, 1 error, 2 usage, 130 interrupted.
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def main() -> None:
    """Entry point: a user error is one red line and exit code 1, a usage error click's message
    and exit code 2, Ctrl-C exit code 130; never a traceback for a user's mistake."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, soft_wrap=True)
    _catch_ctrl_c()
    _show_our_warnings(err)
    try:
        rc = app(standalone_mode=False)
    except Sw2sError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(EXIT_INTERRUPTED if isinstance(e, KeyboardInterrupt) else EXIT_ERROR)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
    except ModuleNotFoundError as e:  # the experiment half, imported when its command runs
        if len(sys.argv) < 2 or sys.argv[1] not in TRAINING_COMMANDS or e.name not in TRAIN_EXTRA:
            raise
        hint = escape("pip install 'selective-w2sg[train]'")
        err.print(f"[bold red]error:[/] `sw2s {sys.argv[1]}` needs the training extra: {hint} "
                  f"(missing module: {e.name})", highlight=False)
        sys.exit(EXIT_ERROR)
    except OSError as e:  # the machine's (disk full, read-only, permissions), not a bug: one line
        if e.errno is None:
            raise
        err.print(f"[bold red]error:[/] {escape(_os_error_line(e))}", highlight=False)
        sys.exit(EXIT_ERROR)
    except Exception as e:
        code = _click_exit_code(e, err)
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
        from ..experiment import dist

        dist.shutdown()


def _catch_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual and also sets `cache.INTERRUPTED`, so a
    KeyboardInterrupt lost in a `__del__` still stops the run at its next stage."""
    import signal

    def on_sigint(signum: int, frame: object) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (an embedding host): keep Python's handler
        pass


def _show_our_warnings(err: object) -> None:
    """The package's warnings (threads capped, exact fallback) as one yellow line each, not
    Python's two-line `file:line: Category: message` form."""
    import warnings

    from rich.markup import escape

    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: object, **kw: object) -> None:
        if issubclass(category, (ThreadsCappedWarning, ExactFallbackWarning)):
            err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)  # type: ignore[attr-defined]
        else:
            shown(message, category, *args, **kw)  # type: ignore[arg-type]

    warnings.showwarning = show


def _ctrl_c_seen() -> bool:
    return INTERRUPTED.is_set()


def _os_error_line(e: OSError) -> str:
    """An OSError as one line naming the file: `cannot write '/x/y': No space left on device`."""
    import errno

    names = [str(f) for f in (e.filename, e.filename2) if f is not None]
    where = " -> ".join(repr(n) for n in names) or "a file"
    typed = write_error(names[0] if names else "a file", e)
    if typed is not None:
        return str(typed)
    verb = "cannot read" if e.errno in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR) else "cannot access"
    return f"{verb} {where}: {e.strerror or e}"


def _click_exit_code(e: BaseException, err: object = None) -> int | None:
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
        # click turns an EOFError (np.load of an empty file, a truncated pickle ...) into the
        # same Abort as Ctrl-C; that is a corrupt input, not an interrupt: exit 1, not 130
        if isinstance(e.__cause__, EOFError) or isinstance(e.__context__, EOFError):
            if err is not None:
                from rich.markup import escape

                cause = e.__cause__ or e.__context__
                err.print(f"[bold red]error:[/] unexpected end of file: an input is empty or truncated "  # type: ignore[attr-defined]
                          f"({escape(str(cause) or 'EOFError')})", highlight=False)
            return EXIT_ERROR
        return EXIT_INTERRUPTED
    return None
