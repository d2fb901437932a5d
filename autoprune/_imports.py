"""Importing the user's own code from an explicit ``"package.module:function"`` factory key.

This is the only place autoprune imports code named in a configuration file, and only for the
``factory`` keys of ``data`` and ``model``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["FACTORY_PATTERN", "import_callable"]

FACTORY_PATTERN = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"


@contextlib.contextmanager
def _on_path(directories: Sequence[str]) -> Iterator[None]:
    """``directories`` first on ``sys.path`` inside the block (those not on it already), taken off after."""
    added = [d for d in dict.fromkeys(directories) if d not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for directory in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def import_callable(path: str, *, key: str, search_dirs: Sequence[str | Path] = ()) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` and return the callable it names.

    ``search_dirs`` (typically the pipeline file's directory) and the working directory are tried
    before the installed packages, so a ``models.py`` beside the pipeline is found. They are on
    ``sys.path`` while the module is imported and while the returned callable runs (so the factory can
    import its sibling modules when it is called), and off it otherwise.

    Raises:
        ConfigError: The path is malformed, does not import, or does not name a callable; the error
            names ``key``.
    """
    if not re.match(FACTORY_PATTERN, path or ""):
        raise ConfigError(f"must look like 'package.module:function', but got {path!r}", key=key)
    module_name, attribute = path.split(":", 1)
    directories = [str(Path(d).resolve()) for d in (*search_dirs, Path.cwd())]
    try:
        with _on_path(directories):
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
    function: Callable[..., Any] = target

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _on_path(directories):
            return function(*args, **kwargs)

    return call
