"""Importing the user's own code from an explicit ``"package.module:function"`` factory key.

This is the only place autoprune imports code named in a configuration file, and only for the
``factory`` keys of ``data`` and ``model``.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["FACTORY_PATTERN", "import_callable"]

FACTORY_PATTERN = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"


def import_callable(path: str, *, key: str, search_dirs: Sequence[str | Path] = ()) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` and return the callable it names.

    ``search_dirs`` (typically the pipeline file's directory) and the working directory are tried
    before the installed packages, so a ``models.py`` beside the pipeline is found. They stay on
    ``sys.path`` afterwards, so the factory can import its sibling modules when it is called.

    Raises:
        ConfigError: The path is malformed, does not import, or does not name a callable; the error
            names ``key``.
    """
    if not re.match(FACTORY_PATTERN, path or ""):
        raise ConfigError(f"must look like 'package.module:function'. Got {path!r}.", key=key)
    module_name, attribute = path.split(":", 1)
    extra = [str(Path(d).resolve()) for d in (*search_dirs, Path.cwd())]
    sys.path[:0] = [d for d in dict.fromkeys(extra) if d not in sys.path]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing user code is reported the same way
        raise ConfigError(f"cannot import '{module_name}' for {path!r}: {type(exc).__name__}: {exc}", key=key) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"module '{module_name}' has no attribute '{attribute}' (from {path!r})", key=key)
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{path!r} is a {type(target).__name__}, not a callable", key=key)
    return target
