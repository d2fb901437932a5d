"""Importing the user's own code from an explicit ``"package.module:function"`` factory key.

This is the only place autoprune imports code named in a configuration file, and only for the
``factory`` keys of ``data`` and ``model``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ._deadline import Expired, deadline, innermost
from .errors import ConfigError

__all__ = ["FACTORY_LIMIT_S", "FACTORY_PATTERN", "UserExit", "import_callable", "what_went_wrong"]

FACTORY_PATTERN = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"


FACTORY_LIMIT_S = 600.0
"""How long importing a factory's module, or one call of the factory, may take before it is stopped."""


class UserExit(Exception):
    """The user's code called ``sys.exit`` (or raised ``SystemExit``) where it should return, or did
    not return within `FACTORY_LIMIT_S`."""


_OURS = (str(Path(__file__).resolve().parent), sys.prefix, sys.base_prefix)


def _shown(filename: str, line: int | str | None) -> str:
    """``models.py:12``, relative to the working directory where the file is under it."""
    if filename.startswith("<"):
        return ""
    where = Path(filename)
    try:
        shown = os.path.relpath(where) if where.resolve().is_relative_to(Path.cwd().resolve()) else where.name
    except (ValueError, OSError, RuntimeError):
        shown = where.name
    return f"{shown}:{line}"


def _user_frame(exc: BaseException) -> str:
    """`` (at models.py:12)``: the deepest line of the user's own code in ``exc``'s traceback
    (not autoprune's, not an installed package's)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_OURS)]
    shown = _shown(frames[-1].filename, frames[-1].lineno) if frames else ""
    return f" (at {shown})" if shown else ""


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """Stop the user's code after `FACTORY_LIMIT_S` with `UserExit` naming where it was."""
    try:
        with deadline(FACTORY_LIMIT_S):
            yield
    except Expired as exc:
        found = innermost(exc.frame, lambda f: not f.startswith(_OURS))
        where = f" (stopped in {found[0]} at {_shown(*found[1].rsplit(':', 1))})" if found else ""
        raise UserExit(f"did not return within {FACTORY_LIMIT_S:g} s{where}") from None


def what_went_wrong(exc: BaseException) -> str:
    """One line on how the user's code failed: ``raised ValueError: its first line (at models.py:12)``."""
    if isinstance(exc, UserExit):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}){_user_frame(exc)}"
    lines = str(exc).strip().splitlines()
    message = f": {lines[0][:200]}" if lines else ""
    more = " …" if len(lines) > 1 else ""
    return f"raised {type(exc).__name__}{message}{more}{_user_frame(exc)}"


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
        with _on_path(directories), _bounded():
            module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # any error while importing user code is reported the same way
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]:
            raise ConfigError(f"cannot import '{module_name}' for {path!r}: no such module", key=key) from exc
        raise ConfigError(f"cannot import '{module_name}' for {path!r}: it {what_went_wrong(exc)}", key=key) from exc
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
        with _on_path(directories), _bounded():
            try:
                return function(*args, **kwargs)
            except SystemExit as exc:
                raise UserExit(f"called sys.exit({exc.code!r}) instead of returning{_user_frame(exc)}") from exc

    return call
