"""What autoprune relies on that Optuna and Ray do not promise, in one place, with the versions it was
written for (a test pins them: a new version is read against this module before the pins move).

- Optuna's RDB schema: the ``trials`` and ``trial_heartbeats`` tables, read to find trials a killed
  process left RUNNING before its first heartbeat (`never_beaten`).
- Optuna's trial: ``Trial._trial_id``, to also write a trial's constraints in the list form Optuna 4
  used (system attribute ``constraints``), which optuna-dashboard 0.21 reads, beside Optuna 5's named
  ones (``constraints:<name>``); Optuna 5 reads both (`set_constraints`).
- Optuna's log: the logger ``optuna.study._optimize`` and the wording of its "Trial N failed" lines,
  filtered so a failure the search records on purpose is not also printed with a traceback
  (`quiet_failed_trials`).

Ray is used through its public API only (``tune.Tuner``, ``tune.search.Searcher``, ``tune.report``,
``ray.get_runtime_context``); its version is pinned beside Optuna's so both move together.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LIST_CONSTRAINTS_KEY",
    "WRITTEN_FOR",
    "installed_versions",
    "named_constraints",
    "never_beaten",
    "quiet_failed_trials",
    "set_constraints",
]

WRITTEN_FOR = {"optuna": "5.0.0", "ray": "2.60.0"}

OPTIMIZE_LOGGER = "optuna.study._optimize"
_OPTUNA_FAILURE = re.compile(
    r"Trial \d+ failed with (parameters: .* because of the following error: (TrialFailed|KeyboardInterrupt|Interrupted)"
    r"\(|value None\.$)",
    re.S,
)


LIST_CONSTRAINTS_KEY = "constraints"


def set_constraints(trial: Any, constraints: Mapping[str, float]) -> None:
    """Give ``trial`` its constraint values (feasible when all <= 0), named as Optuna 5 keeps them and
    as one list in their order, as Optuna 4 kept them and optuna-dashboard reads them: every view of
    the study then sees the same feasible trials, so the same front."""
    for key, value in constraints.items():
        trial.set_constraint(key, value)
    if constraints:
        trial.storage.set_trial_system_attr(
            trial._trial_id, LIST_CONSTRAINTS_KEY, [float(v) for v in constraints.values()]
        )


def named_constraints(trial: Any) -> dict[str, float]:
    """A finished trial's constraints by name (the list form `set_constraints` also writes is the same
    values again, which Optuna 5 reads back under the keys "0", "1", ...)."""
    return {key: value for key, value in trial.constraints.items() if not key.isdigit()}


def installed_versions() -> dict[str, str | None]:
    """The installed versions of the packages `WRITTEN_FOR` names (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for package in WRITTEN_FOR:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def never_beaten(storage: Any, study_name: str, grace_s: float) -> list[int]:
    """RUNNING trials of the study with no heartbeat row that started over ``grace_s`` ago.

    A trial is created (RUNNING) before its process records the first heartbeat, after the sampler's
    work; a process killed in between leaves such a trial, and Optuna's ``fail_stale_trials`` only
    looks at trials with a heartbeat. Its public API cannot see heartbeats, so this reads its
    schema's two tables.
    """
    from sqlalchemy import DateTime, Integer, text

    query = text(
        "SELECT t.trial_id, t.datetime_start FROM trials t WHERE t.study_id = :study AND t.state = 'RUNNING' "
        "AND NOT EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)"
    ).columns(trial_id=Integer, datetime_start=DateTime)
    with storage.engine.connect() as connection:
        rows = connection.execute(query, {"study": storage.get_study_id_from_name(study_name)}).all()
    now = datetime.datetime.now()  # Optuna stores datetime_start as naive local time
    return [trial_id for trial_id, start in rows if start is not None and (now - start).total_seconds() > grace_s]


def _drop_failure_lines(record: logging.LogRecord) -> bool:
    """Drops Optuna's report of a failed trial: the line with a traceback when our objective failed it
    on purpose (`TrialFailed`: the search has recorded the reason on the trial), and the "failed with
    value None" line that follows any failure."""
    return not _OPTUNA_FAILURE.match(record.getMessage())


def quiet_failed_trials() -> None:
    """Install the filter (`_drop_failure_lines`) on Optuna's optimize logger (a no-op once added)."""
    logging.getLogger(OPTIMIZE_LOGGER).addFilter(_drop_failure_lines)
