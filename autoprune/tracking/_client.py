"""`Tracker`: the MLflow client wrapper (experiment, parent run per search, child run per trial).

This package is the only place autoprune imports MLflow. The core is an explicit `MlflowClient`; the
fluent API is touched only where MLflow offers nothing else (``log_model``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._sqlite import absolute_sqlite_uri, sqlite_path, tune_sqlite
from ..errors import ConfigError, TrackingError, UsageError
from ._relocate import check_in_place

__all__ = [
    "FRONT_VIEW_TAG",
    "KIND_TAG",
    "PARENT_TAG",
    "STATE_TAG",
    "TRIAL_TAG",
    "Tracker",
    "sqlite_path",
    "store_errors",
    "ui_base",
]

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "autoprune.trial"
STATE_TAG = "autoprune.state"
KIND_TAG = "autoprune.kind"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
FRONT_FILTER = 'tags.pareto = "true"'
FRONT_VIEW = "autoprune-front"  # the experiment's saved view of the front (MLflow's shared view state)
FRONT_VIEW_TAG = f"mlflow.sharedViewState.{FRONT_VIEW}"
DEFAULT_UI = "http://127.0.0.1:5000"

_QUIET = {  # no telemetry, no progress bars, warnings only: set (unless the user did) before mlflow is imported
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}

log = logging.getLogger("autoprune")


def ui_base(uri: str) -> str:
    """Where a person opens the UI for this store: the server itself, or what ``autoprune ui`` starts."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else DEFAULT_UI


class Tracker:
    """An MLflow experiment and the runs of one search in it.

    The constructor only stores; `open` (or ``with Tracker(...) as tracker``) checks the store can be
    reached, creating a new sqlite store's folder and tables, and selects the experiment.

    Args:
        uri: Tracking URI (the registry uses the same store).
        experiment: Experiment name; created if missing (None: only run-level calls are used). For
            sqlite stores its artifacts go to an ``artifacts/`` folder beside the database, so the whole
            store lives in one place.
        ui: Base address of the UI for links (default: the server, or what ``autoprune ui`` starts).
        create: Create the experiment (and a sqlite store) when missing; False only reads an existing one.
    """

    def __init__(self, uri: str, experiment: str | None, *, ui: str | None = None, create: bool = True) -> None:
        self.uri = uri
        self.ui = ui or ui_base(uri)
        self.experiment = experiment
        self.create = create
        self.experiment_id = ""
        self._client: Any = None

    def __enter__(self) -> Tracker:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def client(self) -> Any:
        """The `MlflowClient` (after `open`)."""
        if self._client is None:
            raise UsageError("call Tracker.open() first")
        return self._client

    def open(self) -> Tracker:
        """Reach the store (creating a new sqlite store's folder and tables when ``create``) and select
        the experiment. Returns this tracker.

        Raises:
            ConfigError: The store cannot be reached, or (``create`` off) does not exist.
        """
        if self._client is not None:
            return self
        database = sqlite_path(self.uri)
        if database is not None and not self.create and not database.is_file():
            raise ConfigError(
                f"no MLflow store at {database}: run a pipeline into it first, or name the one it used "
                "(the pipeline's tracking.uri, or --tracking-uri)",
                key="tracking.uri",
            )
        for key, value in _QUIET.items():
            os.environ.setdefault(key, value)
        from mlflow.tracking import MlflowClient

        if database is not None:
            check_in_place(database)  # a moved or copied store would read and write its old folder
            database.parent.mkdir(parents=True, exist_ok=True)
            tune_sqlite()
        client = MlflowClient(tracking_uri=absolute_sqlite_uri(self.uri))
        try:  # say now if the store cannot be reached (this also creates a new store's tables)
            _probe_server(self.uri)
            client.search_experiments(max_results=1)
        except Exception as exc:  # MlflowException, connection errors, bad database URLs
            reason = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"cannot reach the MLflow store {self.uri!r}: {type(exc).__name__}: {reason}", key="tracking.uri"
            ) from exc
        self._client = client
        if self.experiment is not None:
            self.use_experiment(self.experiment, create=self.create)
        return self

    def close(self) -> None:
        """Forget the client (MLflow keeps no connection that needs closing)."""
        self._client = None

    def use_experiment(self, name: str, *, create: bool = True) -> str:
        """Select the experiment ``name``, creating it if missing and ``create`` (for sqlite stores
        with its artifacts in an ``artifacts/`` folder beside the database)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "deleted":
            raise ConfigError(
                f"experiment {name!r} was deleted in {self.uri}; restore it in the UI, remove it for good with "
                "'mlflow gc', or choose another tracking.experiment",
                key="tracking.experiment",
            )
        if found is None and not create:
            raise TrackingError(f"no experiment {name!r} in {self.uri}: run the pipeline first")
        if found is None:
            database = sqlite_path(self.uri)
            location = (database.parent / "artifacts").resolve().as_uri() if database is not None else None
            self.experiment_id = self.client.create_experiment(name, artifact_location=location)
        else:
            self.experiment_id = found.experiment_id
        if create and (found is None or EXPERIMENT_KIND_TAG not in found.tags):
            # open in the UI's "model training" view (runs and charts), not the GenAI traces overview
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
        self.experiment = name
        return self.experiment_id

    # --- runs ------------------------------------------------------------------------------------

    def create_run(self, name: str, *, tags: Mapping[str, str], parent: str | None = None) -> str:
        all_tags = dict(tags)
        if parent:
            all_tags[PARENT_TAG] = parent
        return self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        step: int = 0,
        steps: Mapping[int, Mapping[str, float]] | None = None,
    ) -> None:
        """Params, metrics (at ``step``, plus per-step series in ``steps``) and tags in one batched call
        (MLflow splits batches above its limits)."""
        import time

        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        series = [Metric(k, float(v), now, s) for s, values in (steps or {}).items() for k, v in values.items()]
        self.client.log_batch(
            run_id,
            metrics=series + [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
            params=[Param(k, _param_text(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0) -> None:
        self.client.log_metric(run_id, key, float(value), step=step)

    def children(self, parent: str) -> dict[int, Any]:
        """Child runs of ``parent`` by trial number (every worker's, every session's)."""
        runs = self.search(f"tags.`{PARENT_TAG}` = '{parent}'")
        by_trial: dict[int, Any] = {}
        for run in runs:
            number = run.data.tags.get(TRIAL_TAG)
            if number is not None and number.isdigit():
                by_trial.setdefault(int(number), run)
        return by_trial

    def search(self, filter_string: str, experiment_ids: list[str] | None = None) -> list[Any]:
        """Every run matching ``filter_string`` in this experiment (or in ``experiment_ids``), all pages."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                experiment_ids or [self.experiment_id], filter_string=filter_string, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    # --- artifacts -------------------------------------------------------------------------------

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_dict(self, run_id: str, data: Mapping[str, Any], path: str) -> None:
        self.client.log_dict(run_id, dict(data), path)

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        """Log a matplotlib figure as an image, then close it (pyplot keeps every open figure)."""
        import matplotlib.pyplot as plt

        try:
            self.client.log_figure(run_id, figure, path)
        finally:
            plt.close(figure)

    @contextlib.contextmanager
    def as_global(self) -> Iterator[None]:
        """MLflow's fluent calls (``log_model``) and the registry's resolution of ``models:/`` sources
        read the process-wide tracking URI: it is this store's inside the block, and put back after."""
        import mlflow

        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(absolute_sqlite_uri(self.uri))
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)

    def log_model(self, run_id: str, model: Any, *, example: Any, metadata: Mapping[str, str] | None = None) -> str:
        """Log ``model`` as the run's MLflow model (``model``, traced into TorchScript: it loads as an
        ordinary module without autoprune; ``example`` as its input example and signature;
        ``metadata`` in its MLmodel file); returns its URI."""
        import torch

        from .. import engine  # torch: only when a model is logged

        module = engine.traced(model, torch.as_tensor(example))
        quiet = logging.getLogger("mlflow.pytorch")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # its caution about pickle: a TorchScript archive holds no pickled code
        try:
            return self._log_torchscript(run_id, module, example, metadata)
        finally:
            quiet.setLevel(level)

    def _log_torchscript(self, run_id: str, module: Any, example: Any, metadata: Mapping[str, str] | None) -> str:
        import torch

        import mlflow

        with self.as_global(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")  # MLflow's own reload
            mlflow.set_experiment(experiment_id=self.experiment_id)  # else the model lands in experiment 0
            info = mlflow.pytorch.log_model(
                module,
                name="model",
                input_example=example,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                run_id=run_id,
                serialization_format="pickle",  # TorchScript is saved with torch.jit.save
                metadata=dict(metadata or {}),
            )
        return str(info.model_uri)

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str) -> None:
        for file in files:
            self.client.log_artifact(run_id, str(file), artifact_path=artifact_path)

    # --- addresses -------------------------------------------------------------------------------

    @property
    def experiment_url(self) -> str:
        return f"{self.ui}/#/experiments/{self.experiment_id}"

    @property
    def front_url(self) -> str:
        """The experiment's runs, already filtered to the Pareto front: its saved view (the members' final
        figures as columns) when a search saved one, else the filter alone."""
        if FRONT_VIEW_TAG in self.client.get_experiment(self.experiment_id).tags:
            return f"{self.experiment_url}/runs?viewStateShareKey={FRONT_VIEW}"
        return f"{self.experiment_url}/runs?searchFilter={quote(FRONT_FILTER)}"

    def run_url(self, run_id: str) -> str:
        return f"{self.experiment_url}/runs/{run_id}"

    def model_url(self, name: str) -> str:
        return f"{self.ui}/#/models/{quote(name, safe='')}"


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn MLflow's exceptions (and the HTTP errors behind them) into one-line `TrackingError`s."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise TrackingError(f"MLflow: {_first_line(exc.message)}") from exc
    except OSError as exc:  # requests' connection errors are OSErrors
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise TrackingError(f"MLflow server: {type(exc).__name__}: {_first_line(str(exc))}") from exc
        raise


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _probe_server(uri: str) -> None:
    """Ask an MLflow server's health endpoint once, with a short timeout: MLflow's own client retries
    an unreachable server for minutes."""
    if uri.startswith(("http://", "https://")):
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            pass


def probe_server(uri: str) -> None:
    """Whether the MLflow server of an ``http(s)://`` tracking URI answers (reads only; other URIs pass).

    Raises:
        ConfigError: It does not, within 10 s (with the key ``tracking.uri``).
    """
    try:
        _probe_server(uri)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(f"the MLflow server at {uri} does not answer: {reason}", key="tracking.uri") from exc


def _param_text(value: Any) -> str:
    # round first: a step grid from a negative low (pruning.spread's offsets) gives 2.8e-17 for 0
    text = f"{round(value, 12):.6g}" if isinstance(value, float) else str(value)
    return text[:6000]
