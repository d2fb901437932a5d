"""The Pareto-ranked ASHA scheduler: a rung keeps the best 1/rf by non-dominated sorting, not by accuracy alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autoprune.search import Objectives

pytest.importorskip("ray.tune")

from ray.tune.schedulers import TrialScheduler

from autoprune.search.backends._ray_tune import ParetoASHA


def _report(scheduler, name: str, epoch: int, accuracy: float, macs: float) -> str:
    return scheduler.on_trial_result(
        None, SimpleNamespace(trial_id=name), {"epoch": epoch, "val_accuracy": accuracy, "macs": macs}
    )


def test_a_small_model_that_trails_in_accuracy_goes_on_but_a_dominated_one_stops() -> None:
    scheduler = ParetoASHA(Objectives(["accuracy", "macs"]), max_t=5, grace_period=1, reduction_factor=2)
    assert _report(scheduler, "big", 1, 0.95, 1000.0) == TrialScheduler.CONTINUE  # the first at a rung always goes on
    # accuracy alone would stop it (0.60 < 0.95); it is the cheap end of the front, so it continues
    assert _report(scheduler, "small", 1, 0.60, 100.0) == TrialScheduler.CONTINUE
    # dominated by "big" (less accurate and costlier): 3 at the rung keep 2, and it ranks last
    assert _report(scheduler, "worse", 1, 0.50, 2000.0) == TrialScheduler.STOP
    # epochs between rungs (rungs are 1, 2, 4 here) and the final report are never judged
    assert _report(scheduler, "worse", 3, 0.10, 2000.0) == TrialScheduler.CONTINUE


def test_asha_is_off_by_default_and_ranks_by_pareto_dominance_when_on() -> None:
    from autoprune.config import AshaSettings

    assert not AshaSettings().enabled and AshaSettings().rank_by == "pareto"
