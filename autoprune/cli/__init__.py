"""The ``autoprune`` command line: thin commands that parse, call `autoprune.workflow` and print.

Nothing heavy (torch, MLflow, Ray, Optuna) is imported until a command needs it, so ``--help``
answers at once.
"""

from __future__ import annotations

from ._app import app
from ._console import console, err_console
from ._main import main

__all__ = ["app", "console", "err_console", "main"]
