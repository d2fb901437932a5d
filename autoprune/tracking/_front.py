"""Marking the Pareto front in MLflow: tags on every trial run, artifacts and models for front members,
a registered model version per member, and aliases a person can pick from."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._vocab import DEPLOYABLE_FILES
from ..search import DenseReference, FinalizedMember
from ._client import FRONT_FILTER, FRONT_VIEW_TAG, PARENT_TAG, STATE_TAG, TRIAL_TAG, Tracker

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FinalizeCurve",
    "finalized_members",
    "log_member",
    "mark_front",
    "member_where",
    "register_members",
    "save_front_view",
]

log = logging.getLogger("autoprune")

FINALIZED_TAG = "autoprune.finalized"
MODEL_URI_TAG = "autoprune.model_uri"
COMPRESSION_TAG = "autoprune.compression"  # how a front member's deployable is stored (fp32, int8, ...)


def member_where(run: Any) -> dict[str, Any]:
    """What a finalized member's run says besides its metrics: its recipe, ids and how it is stored."""
    tags = run.data.tags
    return {
        "params": run.data.params,
        "run_id": run.info.run_id,
        "model_uri": tags.get(MODEL_URI_TAG),
        "compression": tags.get(COMPRESSION_TAG, "fp32"),
    }


def mark_front(tracker: Tracker, parent: str, front: Sequence[int], ranks: Mapping[int, int]) -> dict[int, str]:
    """Tag every trial run of ``parent``: ``pareto`` true/false and ``pareto_rank`` (or ``infeasible``).

    Returns the run id of every trial.
    """
    runs = tracker.children(parent)
    members = set(front)
    for number, run in runs.items():
        rank = ranks.get(number)
        state = run.data.tags.get(STATE_TAG)
        tags = {
            "pareto": str(number in members).lower(),
            "pareto_rank": str(rank)
            if rank is not None
            else ("infeasible" if state == "complete" else state or "failed"),
        }
        if any(run.data.tags.get(k) != v for k, v in tags.items()):
            tracker.log(run.info.run_id, tags=tags)
    return {number: run.info.run_id for number, run in runs.items()}


def save_front_view(tracker: Tracker, parent: str, members: Sequence[FinalizedMember]) -> None:
    """Save the experiment's view of the front of the search ``parent`` (`FRONT_VIEW`): the runs table
    filtered to that front's finalized members, their final figures as the columns (how each is stored too, when one
    is compressed), the most accurate first. `Tracker.front_url` opens it."""
    columns = [f"metrics.`{name}`" for name in FinalizedMember.metric_names() if not name.endswith("val_accuracy")]
    if any(member.compression != "fp32" for member in members):
        columns.append(f"tags.`{COMPRESSION_TAG}`")
    columns.append("attributes.`Models`")  # the registered version, a click away
    view = {
        # the members with models (a front trial repeating one's channels and score is not finalized again)
        "searchFilter": f"{FRONT_FILTER} and tags.`{PARENT_TAG}` = '{parent}' and tags.`{FINALIZED_TAG}` = 'true'",
        "orderByKey": columns[0],
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns,
        "columnOrder": ["attributes.`Run Name`", *columns],
        "columnWidths": {"attributes.`Run Name`": 250, **{c: 110 for c in columns if c.startswith("metrics.")}},
    }
    tracker.client.set_experiment_tag(tracker.experiment_id, FRONT_VIEW_TAG, json.dumps(view))


class FinalizeCurve:
    """A front member's final fine-tune, epoch by epoch, as the series ``finalize.train_loss`` and
    ``finalize.val_accuracy`` on its run, so a fine-tune of half an hour can be followed in the UI.
    Epochs are written together at most every ``every`` seconds (a write per epoch would slow the
    short fine-tunes of small models); `flush` writes the rest."""

    def __init__(self, tracker: Tracker, run_id: str, every: float = 5.0) -> None:
        self.tracker, self.run_id, self.every = tracker, run_id, every
        self.pending: dict[int, dict[str, float]] = {}
        self.written = time.monotonic()

    def __call__(self, report: Any) -> None:
        """Record one `EpochReport`."""
        self.pending[report.epoch] = {
            "finalize.train_loss": round(report.train_loss, 4),
            "finalize.val_accuracy": round(report.val_accuracy, 4),
        }
        if time.monotonic() - self.written >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.tracker.log(self.run_id, steps=self.pending)
            self.pending = {}
        self.written = time.monotonic()


def finalized_members(tracker: Tracker, parent: str) -> dict[int, FinalizedMember]:
    """Front members an earlier session already finalized: trial -> their logged figures."""
    done = {}
    for number, run in tracker.children(parent).items():
        if run.data.tags.get(FINALIZED_TAG) == "true":
            member = FinalizedMember.from_metrics(number, run.data.metrics, **member_where(run))
            if member is not None:
                done[number] = member
    return done


def log_member(
    tracker: Tracker,
    member: FinalizedMember,
    *,
    export_dir: Path,
    model: nn.Module,
    example: np.ndarray,
    metadata: Mapping[str, str] | None = None,
) -> FinalizedMember:
    """Log a front member's final figures, exported files and MLflow model (``model`` as it is
    deployed, ``example`` its raw inputs) on its run; returns the member with its model URI."""
    tracker.log(member.run_id, metrics=member.metrics(), params=member.recipe())
    tracker.log_files(member.run_id, sorted(p for p in export_dir.iterdir() if p.is_file()), "pruned")
    uri = tracker.log_model(member.run_id, model, example=example.astype(np.float32), metadata=metadata)
    tags = {FINALIZED_TAG: "true", MODEL_URI_TAG: uri, COMPRESSION_TAG: member.compression}
    tracker.log(member.run_id, tags=tags)
    return dataclasses.replace(member, model_uri=uri)


def _description(member: FinalizedMember, dense: DenseReference, run_url: str) -> str:
    """What a person compares versions by, the summary first (the UI's table shows its beginning)."""
    return (
        f"test acc {member.test_accuracy:.4f} · {member.params / dense.params:.0%} params · "
        f"{member.macs / dense.macs:.0%} MACs · {member.speedup:.2f}x faster{_stored(member, dense)} — "
        f"Pareto-front model from trial {member.trial}. Test accuracy {member.test_accuracy:.4f} (dense model "
        f"{dense.test_accuracy:.4f}); "
        f"{member.params:,} params; {member.macs:,} MACs per input; CPU latency {member.speedup:.2f}x the dense "
        f"model's speed (measured side by side). Run: {run_url}"
    )


def _stored(member: FinalizedMember, dense: DenseReference) -> str:
    """`` · int8, 21,312 bytes (9.4x smaller)`` for a compressed member, else nothing."""
    if member.compression == "fp32":
        return ""
    return f" · {member.compression}, {member.size_bytes:,} bytes ({dense.size_bytes / member.size_bytes:.1f}x smaller)"


def _deployable(member: FinalizedMember) -> dict[str, str]:
    """A compressed member's version tags: how it is stored and where its deployable file is."""
    if member.compression == "fp32":
        return {}
    kind = "onnx-int8" if member.compression.endswith("int8") else "shared"
    return {
        COMPRESSION_TAG: member.compression,
        "autoprune.deployable": f"runs:/{member.run_id}/pruned/{DEPLOYABLE_FILES[kind]}",
    }


def register_members(
    tracker: Tracker,
    name: str,
    members: Sequence[FinalizedMember],
    *,
    parent: str,
    dense: DenseReference,
    aliases: Mapping[str, int],
) -> dict[int, int]:
    """One registered version per front member (reused if this search registered it already), with a
    description, tags and the aliases. Returns trial -> version."""
    client = tracker.client
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(
            name,
            description="Pareto-front models found by autoprune. Aliases: champion, smallest, fastest, most-accurate.",
        )
    existing = {
        int(v.tags[TRIAL_TAG]): int(v.version)
        for v in client.search_model_versions(f"name = '{name}'")
        if v.tags.get("autoprune.parent_run") == parent and TRIAL_TAG in v.tags
    }
    versions: dict[int, int] = {}
    for member in members:
        number = member.trial
        description = _description(member, dense, tracker.run_url(member.run_id))
        if number in existing:
            versions[number] = existing[number]
            client.update_model_version(name, str(existing[number]), description=description)
            continue
        with tracker.as_global():  # the registry resolves the models:/ source through the global URI
            version = client.create_model_version(
                name,
                source=str(member.model_uri),
                run_id=member.run_id,
                description=description,
                tags={TRIAL_TAG: str(number), "autoprune.parent_run": parent, "pareto": "true", **_deployable(member)},
            )
        versions[number] = int(version.version)
    front = set(versions)
    for number, version in existing.items():
        if number not in front:  # left the front when the search went on
            client.set_model_version_tag(name, str(version), "pareto", "false")
    for alias, number in aliases.items():
        client.set_registered_model_alias(name, alias, str(versions[number]))
    if not members:
        for alias in ("champion", "smallest", "fastest", "most-accurate"):  # this search's front is empty
            current = {str(v) for v in existing.values()}
            model = client.get_registered_model(name)
            if str((model.aliases or {}).get(alias)) in current:
                client.delete_registered_model_alias(name, alias)
    return versions
