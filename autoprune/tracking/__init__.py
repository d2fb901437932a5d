"""MLflow tracking (the only package that imports mlflow): experiment and run layout, the trial
reporter, Pareto tags, front artifacts, plots, the model registry and its aliases."""

from __future__ import annotations

from ._client import (
    KIND_TAG,
    PARENT_TAG,
    STATE_TAG,
    TRIAL_TAG,
    Tracker,
    probe_server,
    sqlite_path,
    store_errors,
    ui_base,
)
from ._front import (
    FinalizeCurve,
    finalized_members,
    log_member,
    mark_front,
    member_where,
    register_members,
    save_front_view,
)
from ._query import EXPORT_FORMATS, SAME_AS_TAG, FrontView, Member, export_run, find_member, latest_front
from ._relocate import moved_from, relocate
from ._reporter import MlflowReporter, run_name
from ._retrain import champion_version, last_front_params, log_retrain_report, set_champion
from ._server import MlflowServer
from ._summary import PARENT_DESCRIPTION, log_search_inputs, log_summary

__all__ = [
    "EXPORT_FORMATS",
    "KIND_TAG",
    "PARENT_DESCRIPTION",
    "PARENT_TAG",
    "SAME_AS_TAG",
    "STATE_TAG",
    "TRIAL_TAG",
    "FinalizeCurve",
    "FrontView",
    "Member",
    "MlflowReporter",
    "MlflowServer",
    "Tracker",
    "champion_version",
    "export_run",
    "finalized_members",
    "find_member",
    "last_front_params",
    "latest_front",
    "log_member",
    "log_retrain_report",
    "log_search_inputs",
    "log_summary",
    "mark_front",
    "member_where",
    "moved_from",
    "probe_server",
    "register_members",
    "relocate",
    "run_name",
    "save_front_view",
    "set_champion",
    "sqlite_path",
    "store_errors",
    "ui_base",
]
