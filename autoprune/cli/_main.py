"""The console script: run the command line and turn what escapes it into an exit status.

Known errors (bad input, unreachable stores) print one red line ``file:line: key: message`` and exit
with status 2; an unexpected one prints one line and exits 1 (``AUTOPRUNE_DEBUG=1`` shows its
traceback); Ctrl-C exits with 130 after saying how to resume, SIGTERM and SIGHUP likewise (with 143
and 129; see `_signals`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer
from rich.markup import escape

from ..errors import AutoPruneError
from . import _stores  # noqa: F401 - registers pareto, export and ui on the app
from ._app import app
from ._console import err_console
from ._signals import exit_status, stop_signals_interrupt

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point. Known errors become one red line and exit status 2; an unexpected
    one becomes one line and status 1 (``AUTOPRUNE_DEBUG=1`` shows its traceback); Ctrl-C is 130."""
    import click

    try:
        with stop_signals_interrupt():
            status = app(args=argv, standalone_mode=False, prog_name="autoprune")
    except AutoPruneError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort, typer.Abort) as exc:
        sys.exit(exit_status(exc))
    except OSError as exc:
        if exc.filename is None or os.environ.get("AUTOPRUNE_DEBUG"):
            _unexpected(exc)
        err_console.print(f"[red]error:[/] {escape(_os_failure(exc, argv))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (click.ClickException, typer.TyperException) as exc:  # usage errors: unknown option, missing argument
        # typer vendors its own click, whose errors are not the click package's: both are caught here
        if hasattr(exc, "show"):
            exc.show()
        else:
            err_console.print(f"Error: {escape(str(exc))}", highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        _unexpected(exc)
    sys.exit(status if isinstance(status, int) else 0)


def _unexpected(exc: BaseException) -> None:
    """One line and exit status 1 (the traceback with ``AUTOPRUNE_DEBUG``)."""
    if os.environ.get("AUTOPRUNE_DEBUG"):
        raise exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    err_console.print(
        f"[red]unexpected error:[/] {escape(type(exc).__name__)}: {escape(first)} (set AUTOPRUNE_DEBUG=1 for the "
        "traceback)",
        highlight=False,
        soft_wrap=True,
    )
    sys.exit(1)


def _os_failure(exc: OSError, argv: Sequence[str] | None) -> str:
    """``cannot write mlflow/artifacts/x: Permission denied`` (the machine refused a file: a read-only
    folder, a full disk), and for ``run`` that what finished is kept."""
    reason = exc.strerror or type(exc).__name__
    line = f"{exc.filename}: {reason}"
    command = list(argv if argv is not None else sys.argv[1:])[:1]
    if command == ["run"]:
        line += " (every finished trial is kept: fix this and continue with autoprune run --resume)"
    return line
