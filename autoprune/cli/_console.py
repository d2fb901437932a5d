"""Where the command line writes: the consoles, the options every command shares, and logging."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import typer
from rich.console import Console, RenderableType
from rich.logging import RichHandler

__all__ = [
    "ADDRESS",
    "BACKEND",
    "DEFAULT_TRACKING_URI",
    "PIPELINE",
    "SET",
    "VERBOSE",
    "console",
    "err_console",
    "print_whole",
    "setup_logging",
    "with_backend",
]

PIPE_WIDTH = 160  # into a file or pipe rich assumes 80 columns and would cut the front table's figures
DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"


def _console(*, stderr: bool = False) -> Console:
    """A console that is as wide as the terminal, or `PIPE_WIDTH` when writing to a file (unless COLUMNS says)."""
    console = Console(log_path=False, stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


console = _console()
err_console = _console(stderr=True)


def print_whole(console: Console, table: RenderableType) -> None:
    """Print a table with every column readable: into a file or pipe it takes the width it needs when
    that is wider than `PIPE_WIDTH` (rich would shorten its headers: a compressed front has 12 columns);
    a terminal's width stays the terminal's."""
    if console.is_terminal or "COLUMNS" in os.environ:
        console.print(table)
        return
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    width = console.width
    console.width = max(width, needed)  # print's own width argument cannot exceed the console's
    try:
        console.print(table)
    finally:
        console.width = width


PIPELINE = typer.Argument(..., help="Pipeline YAML file.")
SET = typer.Option([], "--set", "-s", metavar="KEY.PATH=VALUE", help="Override a value of the pipeline (repeatable).")
BACKEND = typer.Option(
    None, "--backend", metavar="optuna|ray", help="optuna or ray (default: the pipeline's search.backend)."
)
ADDRESS = typer.Option(
    None, "--address", metavar="HOST:PORT", help="Ray cluster address (default: ray.address, RAY_ADDRESS, or local)."
)
VERBOSE = typer.Option(False, "--verbose", "-v", metavar="", help="Log each phase and trial.")  # a flag: no value


def with_backend(overrides: Sequence[str], backend: str | None, address: str | None) -> list[str]:
    """``--backend``/``--address`` are shorthands for ``--set search.backend=...``/``--set ray.address=...``."""
    return [
        *overrides,
        *([f"search.backend={backend}"] if backend else []),
        *([f"ray.address={address}"] if address else []),
    ]


def setup_logging(verbose: bool) -> None:
    """autoprune's log to stderr through rich (INFO with ``verbose``, else warnings); the libraries'
    own chatter (ONNX export, MLflow's migrations, Optuna) at errors only."""
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    logger = logging.getLogger("autoprune")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch._export", "mlflow", "alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
