"""Scheduled retraining: a new search warm-started from the last front, and a champion that moves
only when the new candidate wins on today's held-out test split.

One retrain = (1) read the last finished search's front from MLflow; (2) run the pipeline as a new
study on today's data (the dense model is retrained when the data changed: its cache key hashes
the data), trying the earlier front's candidates first (each replays its plan on today's dense
model and fine-tunes it) and then the rest of the budget; (3) evaluate the new champion candidate
and the registry's current ``champion`` on the same test split; (4) move ``champion`` only if the
new one is more accurate by more than ``champion.retrain_margin``; (5) log the report on the new
search's parent run. Retrains of one pipeline take a lock: a second one waits for the first.
"""

from __future__ import annotations

import datetime
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import data, engine
from ..config import LoadedPipeline
from ..errors import AutoPruneError
from ..search import storage_lock
from ._dense import build_dense
from ._locations import storage_url
from ._observer import Observer, QuietObserver
from ._result import PipelineResult
from ._run import run_loaded

if TYPE_CHECKING:
    from ..tracking import Tracker

__all__ = ["RetrainReport", "retrain_loaded"]

log = logging.getLogger("autoprune")


@dataclass
class RetrainReport:
    """What a retrain compared and decided (logged as ``retrain_report.json`` on the parent run)."""

    pipeline: str
    date: str
    previous_search: str | None
    warm_start: int
    new_search: str
    new_trial: int | None
    new_version: int | None
    new_test_accuracy: float | None
    champion_version: int | None
    champion_test_accuracy: float | None
    margin: float
    decision: str  # promoted | kept | first-champion | no-candidate | not-registered
    reason: str

    def text(self) -> str:
        """A short readable report (Markdown)."""

        def acc(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        lines = [
            f"# Retrain of {self.pipeline} ({self.date})",
            f"- warm start: {self.warm_start} front candidates of search {self.previous_search or '(none)'}",
            f"- new candidate: trial {self.new_trial}, version {self.new_version}, test accuracy "
            f"{acc(self.new_test_accuracy)}",
            f"- champion before: version {self.champion_version}, test accuracy {acc(self.champion_test_accuracy)} "
            "(on the same test split)",
            f"- margin: {self.margin:g}",
            f"- decision: **{self.decision}**: {self.reason}",
        ]
        return "\n".join(lines) + "\n"


def _champion_accuracy(loaded: LoadedPipeline, tracker: Tracker, run_id: str, splits: data.Splits) -> float:
    """Test accuracy of the champion's model (rebuilt from its plan and weights) on today's test split."""
    from ..tracking import export_run

    config = loaded.config
    with tempfile.TemporaryDirectory(prefix="autoprune-champion-") as workdir:
        export_run(tracker, run_id, "state-dict", Path(workdir))
        model = engine.load_pruned(workdir, lambda: build_dense(config, splits, base_dir=loaded.base_dir))
    return float(engine.evaluate(model, splits.test).accuracy)


def _decide(
    result: PipelineResult, champion: tuple[int, str] | None, champion_accuracy: float | None, margin: float
) -> tuple[str, str]:
    candidate = result.member(result.candidate)
    if not result.config.tracking.register_models:
        return "not-registered", "tracking.register_models is off, so there is no champion alias to move"
    if candidate is None:
        return "no-candidate", "the new search has no front member to promote; the champion stays"
    if champion is None:
        return "first-champion", "the registry had no champion; the new candidate becomes it"
    if champion_accuracy is None:
        return "kept", "the current champion could not be evaluated on today's test split (see the log); it stays"
    new = candidate.test_accuracy
    if new > champion_accuracy + margin:
        return (
            "promoted",
            f"test accuracy {new:.4f} beats the champion's {champion_accuracy:.4f} by more than {margin:g}",
        )
    return (
        "kept",
        f"test accuracy {new:.4f} does not beat the champion's {champion_accuracy:.4f} by more than {margin:g}",
    )


def _promote(result: PipelineResult, tracker: Tracker) -> None:
    """Point the registry's ``champion`` at the new candidate, and say so in ``result``."""
    from ..tracking import set_champion

    member = result.member(result.candidate)
    assert member is not None and member.version is not None  # only a registered candidate is promoted
    set_champion(tracker, result.config.registered_model, member.version)
    result.aliases["champion"] = member.trial
    result.members = [m.registered(m.version, [*m.aliases, "champion"]) if m is member else m for m in result.members]


def retrain_loaded(loaded: LoadedPipeline, *, observer: Observer | None = None) -> tuple[RetrainReport, PipelineResult]:
    """Run one scheduled retrain of ``loaded`` (see the module docstring)."""
    from ..tracking import Tracker, champion_version, last_front_params, log_retrain_report

    config = loaded.config
    watcher = observer or QuietObserver()

    def waiting() -> None:
        watcher.phase(f"another retrain of {config.name} is running; waiting for it to finish")

    with storage_lock(storage_url(config), None, f"autoprune:{config.study_name}:retrain", on_wait=waiting):
        tracker = Tracker(config.tracking.uri, None).open()
        previous: str | None = None
        front: list[dict[str, Any]] = []
        if tracker.client.get_experiment_by_name(config.experiment) is not None:
            tracker.use_experiment(config.experiment)
            previous, front = last_front_params(tracker)
        champion = champion_version(tracker, config.registered_model) if config.tracking.register_models else None
        result = run_loaded(loaded, observer=watcher, warm_start=front, hold_champion=champion is not None)
        champion_accuracy = None
        if champion is not None and result.candidate is not None:
            try:
                champion_accuracy = _champion_accuracy(loaded, tracker, champion[1], result.splits)
            except AutoPruneError as exc:
                log.warning("the champion (version %d) could not be evaluated: %s", champion[0], exc)
        decision, reason = _decide(result, champion, champion_accuracy, config.champion.retrain_margin)
        if decision == "promoted":
            _promote(result, tracker)
        member = result.member(result.candidate)
        report = RetrainReport(
            pipeline=config.name,
            date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            previous_search=previous,
            warm_start=len(front),
            new_search=result.parent_run_id,
            new_trial=result.candidate,
            new_version=member.version if member else None,
            new_test_accuracy=member.test_accuracy if member else None,
            champion_version=champion[0] if champion else None,
            champion_test_accuracy=champion_accuracy,
            margin=config.champion.retrain_margin,
            decision=decision,
            reason=reason,
        )
        tracker.use_experiment(config.experiment)
        log_retrain_report(tracker, result.parent_run_id, asdict(report), report.text())
    return report, result
