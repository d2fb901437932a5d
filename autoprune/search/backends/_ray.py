"""The Ray Tune backend: the ``trials`` strategy with trials spread over a Ray cluster's CPUs.

A searcher on the pipeline's study (`_ray_tune.StudySearcher`) proposes candidates from it (same
storage, sampler, objectives), so the study stays the record of truth exactly as with the Optuna
backend: the budget, duplicate skipping, constraints, heartbeats and ``--resume`` all work on it,
and the MLflow layout is the same. What Ray adds: trials run as Ray tasks (``max_concurrent_trials``
at once, ``cpus_per_trial`` each, torch threads matched), the dense model and data reach the workers
once through the object store, and ASHA can stop fine-tunes early on validation accuracy.

Everything that talks to the study or to MLflow runs in the driver (the searcher's callbacks); workers
only call the engine and report epochs (`_ray_worker`).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ..._vocab import Metric
from ...errors import ConfigError
from .._contract import Budget, SearchOutcome, SearchStrategy
from .._evaluator import CandidateEvaluator, TrialReporter
from .._study import Study
from ._budget import BudgetRules, spend
from ._ray_worker import max_epochs, trainable

if TYPE_CHECKING:
    from ...config import RaySettings
    from ._ray_tune import Heartbeat

__all__ = ["RayBackend", "join_ray", "leave_ray"]

log = logging.getLogger("autoprune")

_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # a failed trial's report has no accuracy
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # Ctrl-C reaches the pipeline, which marks the trials it ran
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
}


def _check_reachable(address: str | None) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nobody listens on: Ray itself retries for minutes."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r} ({type(exc).__name__}); is it running? "
            "(scripts/ray-cluster.sh status)",
            key="ray.address",
        ) from exc


def join_ray(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (else ``RAY_ADDRESS``, else start a local one); returns
    False when this process was in one already. Sets Ray's quiet defaults in the environment first
    (its workers inherit them).

    Raises:
        ConfigError: Ray is not installed, or the cluster cannot be reached.
    """
    for key, value in _RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "the ray backend needs Ray: pip install 'autoprune[ray]' (make setup installs it)", key="search.backend"
        ) from exc
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS")
    _check_reachable(target)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": dict(_RAY_ENV)},
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {target!r} ({type(exc).__name__}); is it running? "
            "(scripts/ray-cluster.sh status)",
            key="ray.address",
        ) from exc
    return True


def leave_ray() -> None:
    import ray

    ray.shutdown()


class RayBackend(SearchStrategy):
    """Runs the ``trials`` strategy with Ray Tune (see the module docstring).

    Args:
        settings: The pipeline's ``ray:`` settings (address, concurrency, resources, ASHA).
        results_dir: Where Tune keeps its experiment folders.
    """

    name = "ray"

    def __init__(self, settings: RaySettings, results_dir: Path) -> None:
        self.settings = settings
        self.results_dir = Path(results_dir).resolve()

    def describe(self) -> str:
        where = self.settings.address or "a local Ray instance"
        return f"trials on Ray Tune ({where}, {self.settings.max_concurrent_trials} at once)"

    def run(
        self, study: Study, evaluator: CandidateEvaluator, reporter: TrialReporter, budget: Budget
    ) -> SearchOutcome:
        """Run Tune experiments on the study until ``budget`` is spent (counted in the study)."""
        import optuna

        from .._adapter import quiet_failed_trials
        from ._ray_tune import Heartbeat

        join_ray(self.settings.address)  # a no-op when the pipeline joined the cluster already
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        quiet_failed_trials()
        rules = BudgetRules(study, evaluator, reporter, budget)
        with Heartbeat(study) as heartbeat:
            return spend(rules, lambda timeout: self._fit(rules, heartbeat, timeout))

    def _fit(self, rules: BudgetRules, heartbeat: Heartbeat, timeout_s: float | None) -> None:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        from ._ray_tune import ParetoASHA, StudySearcher

        settings, asha = self.settings, self.settings.asha
        # max_t one past the longest fine-tune: ASHA stops trials at its rungs, never at their natural end
        max_t = max_epochs(rules.evaluator) + 1
        scheduler: FIFOScheduler
        if not asha.enabled:
            scheduler = FIFOScheduler()
        elif asha.rank_by == "pareto":
            scheduler = ParetoASHA(rules.study.objectives, max_t, asha.grace_period, asha.reduction_factor)
        else:
            scheduler = ASHAScheduler(
                metric=str(Metric.VAL_ACCURACY),
                mode="max",
                time_attr="epoch",
                max_t=max_t,
                grace_period=asha.grace_period,
                reduction_factor=asha.reduction_factor,
            )
        searcher = StudySearcher(rules, heartbeat)
        resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
        runnable = tune.with_resources(tune.with_parameters(trainable, evaluator=rules.evaluator), resources)
        tuner = tune.Tuner(
            runnable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=-1,
                max_concurrent_trials=settings.max_concurrent_trials,
                time_budget_s=timeout_s,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=rules.study.name.replace("#", "-"),
                storage_path=str(self.results_dir),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        try:
            tuner.fit()  # the outcome of every trial is in the study
        finally:
            searcher.release()
