"""Trials of a dead process end FAIL, whether it died after its first heartbeat or before it."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from optuna.trial import TrialState

from autoprune.search import Objectives
from autoprune.search.backends import OptunaBackend


def test_running_trials_without_a_live_process_are_failed_after_the_grace_period(tmp_path: Path) -> None:
    backend = OptunaBackend(f"sqlite:///{tmp_path / 'optuna.db'}", "stale", objectives=Objectives(["accuracy"]), heartbeat_s=1)
    backend.open(resume=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna: heartbeats are meant for optimize()
        never_beaten = backend.study.ask()  # its process died before the first beat
        beaten = backend.study.ask()
    backend.storage.record_heartbeat(beaten._trial_id)  # its process died after one beat
    backend.fail_stale_trials()
    assert [t.state for t in backend.study.trials] == [TrialState.RUNNING] * 2  # still within the grace period
    time.sleep(4.5)  # past the grace period of 3 heartbeats (sqlite keeps whole seconds)
    backend.fail_stale_trials()
    assert [t.state for t in backend.study.trials] == [TrialState.FAIL] * 2
    assert never_beaten.number == 0 and beaten.number == 1
