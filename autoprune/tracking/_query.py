"""Reading finished searches back from MLflow: the latest search's front, a front member named the way a
person has it at hand (run id or its prefix, registered version, alias), and a member's exports."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrackingError, UsageError
from ..search import DenseReference, FinalizedMember
from ._client import FRONT_FILTER, KIND_TAG, PARENT_TAG, TRIAL_TAG, Tracker
from ._front import member_where

__all__ = ["EXPORT_FORMATS", "FrontView", "Member", "export_run", "find_member", "latest_front"]

EXPORT_FORMATS = {"onnx": ("model.onnx",), "state-dict": ("plan.json", "state_dict.pt")}
MEMBER_FORMS = "a run id (or its first 7+ characters), a version (3 or v3), an alias (champion) or models:/NAME@ALIAS"
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")
_VERSION = re.compile(r"[vV]?(?P<version>\d{1,6})")
_RUN_ID = re.compile(r"[0-9a-f]{7,32}")


_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # MLflow's codes for an unknown or malformed id


@contextlib.contextmanager
def _not_found(message: str) -> Iterator[None]:
    """``message`` as a `TrackingError` when MLflow says what was asked for does not exist; any other
    failure (an unreachable server, a broken store) goes on as it is."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND:
            raise
        raise TrackingError(message) from exc


@dataclass
class FrontView:
    """A finished search read back from MLflow: its parent run, the dense reference it logged (empty
    while it has not), its finalized members and the registered model they are versions of."""

    parent_run_id: str
    parent_name: str
    status: str
    trials: int
    dense: DenseReference | None
    members: list[FinalizedMember]
    registered_model: str | None = None
    hypervolume: float = 0.0
    on_front: int = 0  # trials tagged pareto, the finalized members and those repeating one of them
    copies: dict[int, int] = dataclasses.field(default_factory=dict)  # trial -> the member it repeats


def _versions(tracker: Tracker, parent: str) -> tuple[str | None, dict[int, tuple[int, list[str]]]]:
    """The registered model this search created versions of, and trial -> (version, aliases)."""
    found: dict[int, tuple[int, list[str]]] = {}
    name = None
    for model in tracker.client.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for version in tracker.client.search_model_versions(f"name = '{model.name}'"):
            if version.tags.get("autoprune.parent_run") == parent and TRIAL_TAG in version.tags:
                found[int(version.tags[TRIAL_TAG])] = (
                    int(version.version),
                    sorted(aliases.get(str(version.version), [])),
                )
                name = model.name
    return name, found


def latest_front(tracker: Tracker, parent: str | None = None) -> FrontView:
    """The front of search ``parent`` (default: the most recent search in the experiment), with the
    final figures of its members, as ``autoprune run`` printed them."""
    if parent is None:
        searches = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = 'search'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not searches:
            raise TrackingError(f"experiment {tracker.experiment!r} in {tracker.uri} has no search yet")
        parent_run = searches[0]
    else:
        with _not_found(f"no search run {parent!r} in {tracker.uri}"):
            parent_run = tracker.client.get_run(parent)
    parent_id = parent_run.info.run_id
    runs = tracker.search(f"tags.`{PARENT_TAG}` = '{parent_id}'")
    registered, versions = _versions(tracker, parent_id)
    members, on_front, copies = [], 0, {}
    for run in runs:
        if run.data.tags.get("pareto") != "true":
            continue
        on_front += 1
        trial = int(run.data.tags.get(TRIAL_TAG, -1))
        if SAME_AS_TAG in run.data.tags:
            copies[trial] = int(run.data.tags[SAME_AS_TAG])
        version, aliases = versions.get(trial, (None, []))
        member = FinalizedMember.from_metrics(trial, run.data.metrics, **member_where(run))
        if member is not None:
            members.append(member.registered(version, aliases))
    return FrontView(
        parent_id,
        parent_run.info.run_name,
        parent_run.info.status,
        len(runs),
        _dense_reference(parent_run.data.metrics),
        members,
        registered,
        float(parent_run.data.metrics.get("hypervolume", 0.0)),
        on_front,
        copies,
    )


SAME_AS_TAG = "autoprune.same_as_trial"  # a front trial finalized once, as the member it repeats


def _dense_reference(metrics: Mapping[str, float]) -> DenseReference | None:
    """The dense reference a search logged on its parent run (``dense_*``), None before it has."""
    names = [f.name for f in dataclasses.fields(DenseReference)]
    if any(f"dense_{name}" not in metrics for name in names):
        return None
    figure = {name: float(metrics[f"dense_{name}"]) for name in names}
    return DenseReference(
        val_accuracy=figure["val_accuracy"],
        test_accuracy=figure["test_accuracy"],
        params=int(figure["params"]),
        macs=int(figure["macs"]),
        size_bytes=int(figure["size_bytes"]),
        latency_ms=figure["latency_ms"],
    )


def export_run(tracker: Tracker, run_id: str, export_format: str, out: Path) -> list[Path]:
    """Copy a front member's exported files (ONNX, or plan + state dict) into ``out``."""
    if export_format not in EXPORT_FORMATS:
        raise UsageError(f"unknown format {export_format!r}; choose {' or '.join(EXPORT_FORMATS)}")
    with _not_found(f"no run {run_id!r} in {tracker.uri}"):
        run = tracker.client.get_run(run_id)
    names = {item.path.rsplit("/", 1)[-1] for item in tracker.client.list_artifacts(run_id, "pruned")}
    missing = [name for name in EXPORT_FORMATS[export_format] if name not in names]
    if missing:
        hint = (
            " (only Pareto-front runs, tagged pareto=true, have exports)"
            if run.data.tags.get("pareto") != "true"
            else ""
        )
        raise TrackingError(f"run {run_id} has no {', '.join(missing)}{hint}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXPORT_FORMATS[export_format]:
        local = tracker.client.download_artifacts(run_id, f"pruned/{name}")
        target = out / name
        shutil.copyfile(local, target)
        written.append(target)
    return written


@dataclass(frozen=True)
class Member:
    """A front member's run, and the registered version a reference named (if any)."""

    run_id: str
    trial: int | None = None
    version: str | None = None

    def describe(self) -> str:
        trial = f"trial {self.trial}, " if self.trial is not None else ""
        return f"{self.version + ' = ' if self.version else ''}{trial}run {self.run_id}"


def find_member(tracker: Tracker, reference: str, registered_model: str | None = None) -> Member:
    """The run that ``reference`` names: a run id or its first 7+ characters (front runs only), a registered
    version (``3``, ``v3``), an alias (``champion``, ``@champion``), or ``models:/NAME@ALIAS`` / ``models:/NAME/3``.
    Bare versions and aliases belong to ``registered_model`` (default: the store's only registered model).

    Raises:
        AutoPruneError: Nothing, or more than one run, answers to ``reference``.
    """
    reference = reference.strip()
    if reference.startswith("models:/"):
        uri = _MODEL_URI.fullmatch(reference)
        if not uri:
            raise TrackingError(
                f"{reference!r}: a model URI names an alias or a version number, models:/NAME@ALIAS or models:/NAME/3"
            )
        return _registered(tracker, uri["name"], uri["alias"], uri["version"])
    version = _VERSION.fullmatch(reference)
    if version:
        return _registered(tracker, registered_model or _only_model(tracker), None, version["version"])
    if _RUN_ID.fullmatch(reference.lower()):
        return _run(tracker, reference.lower())
    return _registered(tracker, registered_model or _only_model(tracker), reference.removeprefix("@"), None)


def _run(tracker: Tracker, run_id: str) -> Member:
    if len(run_id) < 32:  # a prefix, as `autoprune pareto` prints them: only front members can be exported
        experiments = [experiment.experiment_id for experiment in tracker.client.search_experiments()]
        runs = tracker.search(FRONT_FILTER, experiments) if experiments else []
        found = sorted({run.info.run_id for run in runs if run.info.run_id.startswith(run_id)})
        if len(found) != 1:
            raise TrackingError(
                f"{len(found) or 'no'} front runs in {tracker.uri} start with {run_id!r}"
                + (f": {', '.join(found)}" if found else "; give the whole run id")
            )
        run_id = found[0]
    with _not_found(f"no run {run_id!r} in {tracker.uri}"):
        run = tracker.client.get_run(run_id)
    trial = run.data.tags.get(TRIAL_TAG)
    return Member(run_id, int(trial) if trial is not None else None)


def _only_model(tracker: Tracker) -> str:
    names = sorted(model.name for model in tracker.client.search_registered_models())
    if len(names) != 1:
        have = f"it has {', '.join(names)}" if names else "it has none"
        raise TrackingError(f"which registered model? give --pipeline or models:/NAME@ALIAS ({tracker.uri}: {have})")
    return names[0]


def _registered(tracker: Tracker, name: str, alias: str | None, version: str | None) -> Member:
    from mlflow.exceptions import MlflowException

    with _not_found(f"no registered model {name!r} in {tracker.uri}"):
        model = tracker.client.get_registered_model(name)
    if alias is not None:
        if alias not in (model.aliases or {}):
            have = ", ".join(sorted(model.aliases or {})) or "none"
            raise TrackingError(f"{name} has no alias {alias!r} (its aliases: {have}); or give {MEMBER_FORMS}")
        version = str(model.aliases[alias])
    try:
        found = tracker.client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND:
            raise
        raise TrackingError(f"{name} has no version {version} ({_versions_of(tracker, name)})") from exc
    label = f"{name} v{found.version}" + (f" (@{alias})" if alias else "")
    trial = found.tags.get(TRIAL_TAG)
    return Member(found.run_id, int(trial) if trial is not None else None, label)


def _versions_of(tracker: Tracker, name: str) -> str:
    """The versions registered model ``name`` has, for an error message."""
    from mlflow.exceptions import MlflowException

    try:
        numbers = sorted(int(v.version) for v in tracker.client.search_model_versions(f"name = '{name}'"))
    except MlflowException:  # a name the filter cannot quote: say less rather than fail differently
        return "see the registry"
    if not numbers:
        return "it has no versions"
    shown = ", ".join(map(str, numbers[:12])) + (f", ... {numbers[-1]}" if len(numbers) > 12 else "")
    return f"it has versions {shown}"
