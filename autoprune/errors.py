"""The exceptions autoprune raises.

One root (`AutoPruneError`) so callers can catch everything the tool reports on purpose, and a few
specific subclasses. Every error may carry the dotted key path of the configuration value it is about
(``key``); the config layer turns that into ``file:line: key: message``.
"""

from __future__ import annotations

__all__ = [
    "AutoPruneError",
    "ConfigError",
    "DataError",
    "Interrupted",
    "ModelError",
    "PruningError",
    "TrackingError",
    "TrialDiverged",
    "TrialFailed",
    "UsageError",
]


class AutoPruneError(Exception):
    """Root of every error autoprune raises on purpose.

    Args:
        message: What went wrong and what must hold instead, in one line.
        key: Dotted path of the configuration key the error is about (``"data.path"``), if any.
        location: Where that key was written (``"pipelines/x.yaml:12"``), once known.
    """

    def __init__(self, message: str, *, key: str | None = None, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.location = location

    def __str__(self) -> str:
        parts = [part for part in (self.location, self.key) if part]
        return ": ".join([*parts, self.message])


class ConfigError(AutoPruneError):
    """A pipeline or search-space file (or a value in it) is not valid."""


class DataError(AutoPruneError):
    """A dataset cannot be found, read or split."""


class ModelError(AutoPruneError):
    """A model cannot be built, loaded or traced."""


class PruningError(AutoPruneError):
    """A prune plan cannot be applied to a model (unknown group, bad ratio, empty layer)."""


class TrackingError(AutoPruneError):
    """A store refused or failed a call: MLflow's tracking store, registry or server (unreachable
    server, deleted run, unknown run or alias), or the Optuna storage's study lock."""


class UsageError(AutoPruneError):
    """A command or call is used wrongly in a way no configuration key names (a missing argument,
    two options that exclude each other, a port already taken)."""


class TrialFailed(AutoPruneError):
    """A candidate could not be evaluated; the search records it as failed and goes on."""


class TrialDiverged(TrialFailed):
    """The fine-tune loss became NaN or infinite."""


class Interrupted(KeyboardInterrupt):
    """A stop signal other than Ctrl-C (SIGTERM from ``timeout`` or a scheduler, SIGHUP from a closed
    terminal), raised where Ctrl-C's KeyboardInterrupt would be so it is handled the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
