"""The Ray Tune backend: the same Optuna study, with trials spread over a Ray cluster's CPUs.

Ray Tune's `OptunaSearch` proposes candidates from the pipeline's study (same storage, sampler,
objectives), so the study stays the record of truth exactly as with the Optuna backend: the budget,
duplicate skipping, constraints, heartbeats and ``--resume`` all work on it, and the MLflow layout is
the same. What Ray adds: trials run as Ray tasks (``max_concurrent_trials`` at once, ``cpus_per_trial``
each, torch threads matched), the dense model and data reach the workers once through the object
store, and ASHA can stop fine-tunes early on validation accuracy.

Everything that talks to the study or to MLflow runs in the driver (the searcher's callbacks, in
`_ray_tune`, which imports Ray and so is imported only when a search starts); workers only call the
engine and report epochs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution

from ...engine import EpochReport, FinetuneConfig
from ...errors import ConfigError
from .._objective import CandidateEvaluator, Objectives, TrialRecord, TrialReporter
from ._base import Budget
from ._optuna import OptunaBackend, _Accounting

if TYPE_CHECKING:
    from ...config import RaySettings

__all__ = ["RayBackend", "join_ray", "leave_ray", "max_epochs"]

log = logging.getLogger("autoprune")

OUTCOME_KEY = "autoprune_outcome"  # the final report of a trial carries the whole TrialRecord
NUMBER_KEY = "autoprune_trial"  # the study's trial number, passed to the worker with the params
COST_KEYS = ("params", "macs", "size_bytes", "latency_ms", "latency_ratio")
_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # a failed trial's report has no accuracy
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # Ctrl-C reaches the pipeline, which marks the trials it ran
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
}


def max_epochs(evaluator: CandidateEvaluator) -> int:
    """The most fine-tune epochs a candidate of this space can get (ASHA's ``max_t``)."""
    distribution = evaluator.space.distributions.get("epochs")
    if isinstance(distribution, IntDistribution):
        return int(distribution.high)
    if isinstance(distribution, CategoricalDistribution):
        return int(max(distribution.choices))
    return int(evaluator.space.fixed.get("epochs", FinetuneConfig().epochs))


def _trainable(config: dict[str, Any], evaluator: CandidateEvaluator) -> None:
    """One trial, in a Ray worker: the engine call, an epoch report per fine-tune epoch, one final report."""
    import ray
    import torch
    from ray import tune

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, math.ceil(cpus)))
    params = {key: value for key, value in config.items() if key != NUMBER_KEY}
    costs: dict[str, float] = {}

    def on_epoch(report: EpochReport) -> None:
        tune.report(
            {
                "epoch": report.epoch,
                "val_accuracy": report.val_accuracy,
                "val_loss": report.val_loss,
                "train_loss": report.train_loss,
                "epoch_seconds": report.seconds,
                **costs,
            }
        )

    record, _ = evaluator(int(config.get(NUMBER_KEY, -1)), params, on_epoch=on_epoch, on_measured=costs.update)
    outcome = {
        "state": record.state,
        "metrics": record.metrics,
        "epochs": record.epochs,
        "kept": record.kept,
        "error": record.error,
    }
    tune.report(
        {"epoch": len(record.epochs), **record.metrics, OUTCOME_KEY: json.dumps(outcome)}
    )  # Tune flattens dicts


class _Heartbeat:
    """Beats for the study trials this driver runs, so a killed driver's trials end FAIL (as with Optuna)."""

    def __init__(self, storage: optuna.storages.RDBStorage, interval_s: float) -> None:
        self.storage = storage
        self.interval_s = interval_s
        self.live: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="autoprune-heartbeat", daemon=True)
        self._thread.start()

    def add(self, trial_id: int) -> None:
        self.live.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            for trial_id in list(self.live):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # a missed beat is retried; a long outage fails the trial later
                    log.debug("heartbeat of trial %d failed: %s", trial_id, exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _RaySession(_Accounting):
    """One `RayBackend.run`: the budget rules (shared with the Optuna backend), the evaluator, the
    reporter and the heartbeat the searcher uses."""

    def __init__(
        self,
        backend: RayBackend,
        evaluator: CandidateEvaluator,
        objectives: Objectives,
        reporter: TrialReporter,
        budget: Budget,
    ) -> None:
        super().__init__(backend, evaluator, objectives, reporter, budget)
        self.heartbeat = _Heartbeat(backend.storage, backend.heartbeat_s)


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
    False when this process was in one already.

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


class RayBackend(OptunaBackend):
    """Runs the pipeline's Optuna study with Ray Tune (see the module docstring).

    Args:
        ray: The pipeline's ``ray:`` settings (address, concurrency, resources, ASHA).
        results_dir: Where Tune keeps its experiment folders.
        Everything else as for `OptunaBackend`.
    """

    name = "ray"

    def __init__(
        self, storage_url: str, study_name: str, *, ray: RaySettings, results_dir: Path, **kwargs: Any
    ) -> None:
        super().__init__(storage_url, study_name, **kwargs)
        self.settings = ray
        self.results_dir = Path(results_dir).resolve()

    def run(
        self, evaluator: CandidateEvaluator, objectives: Objectives, reporter: TrialReporter, budget: Budget
    ) -> list[TrialRecord]:
        """Run Tune experiments on the study until ``budget`` is spent (counted in the study)."""
        join_ray(self.settings.address)  # a no-op when the pipeline joined the cluster already
        session = self._begin(_RaySession, evaluator, objectives, reporter, budget)
        try:
            self._spend(session, lambda timeout: self._fit(session, timeout))
        finally:
            session.heartbeat.close()
        return self.records()

    def _fit(self, session: _RaySession, timeout_s: float | None) -> None:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        from ._ray_tune import ParetoASHA, StudySearcher

        settings = self.settings
        asha = settings.asha
        # max_t one past the longest fine-tune: ASHA stops trials at its rungs, never at their natural end
        max_t = max_epochs(session.evaluator) + 1
        if not asha.enabled:
            scheduler = FIFOScheduler()
        elif asha.rank_by == "pareto":
            scheduler = ParetoASHA(session.objectives, max_t, asha.grace_period, asha.reduction_factor)
        else:
            scheduler = ASHAScheduler(
                metric="val_accuracy",
                mode="max",
                time_attr="epoch",
                max_t=max_t,
                grace_period=asha.grace_period,
                reduction_factor=asha.reduction_factor,
            )
        searcher = StudySearcher(session, self.fresh_sampler())
        resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(_trainable, evaluator=session.evaluator), resources)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=-1,
                max_concurrent_trials=settings.max_concurrent_trials,
                time_budget_s=timeout_s,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=self.study_name.replace("#", "-"),
                storage_path=str(self.results_dir),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        try:
            tuner.fit()  # the outcome of every trial is in the study
        finally:
            searcher.release()
