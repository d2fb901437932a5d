"""Typed configuration of a whole pipeline: data, model, search, objectives, tracking."""

from __future__ import annotations

import difflib
import re
import unicodedata
import zoneinfo
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .._vocab import DEVICE_PATTERN, OBJECTIVES, Precision
from ._base import Strict, shown
from ._data import DataConfig, DigitsData
from ._engine import LatencyConfig
from ._model import CNNModel, ModelConfig
from ._search import URI_SCHEMES, OneShotConfig, RaySettings, SearchConfig, refuse_memory

__all__ = [
    "ChampionConfig",
    "Constraints",
    "FinalizeConfig",
    "PipelineConfig",
    "ScheduleConfig",
    "ScheduleResources",
    "TrackingConfig",
]


class Constraints(Strict):
    """Trials that break a constraint are kept (and logged) but never put on the front."""

    max_accuracy_drop: float | None = Field(None, ge=0, le=1, description="vs the dense model's val accuracy")
    max_latency_ms: float | None = Field(None, gt=0)
    max_params: int | None = Field(None, ge=1)
    max_macs: int | None = Field(None, ge=1)
    max_size_bytes: int | None = Field(None, ge=1)

    def active(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


class TrackingConfig(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    uri: str = Field("sqlite:///mlflow/mlflow.db", description="MLflow tracking URI")
    experiment: str | None = Field(None, description="default: the pipeline name")
    register_models: bool = Field(True, alias="register", description="register front models in the registry")
    registered_model: str | None = Field(None, description="default: the pipeline name")

    @field_validator("experiment", "registered_model")
    @classmethod
    def _names(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if value != value.strip() or not value or len(value) > 200:
            raise ValueError(f"must be 1 to 200 characters without surrounding spaces, but got {shown(value)}")
        hidden = sorted({c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})
        if hidden:
            raise ValueError(
                "must be printable text, but holds control or direction characters "
                f"({', '.join(f'U+{ord(c):04X}' for c in hidden)}): {shown(value)}"
            )
        banned = sorted(set(value) & set("/:@%")) if info.field_name == "registered_model" else []
        if banned or (info.field_name == "registered_model" and value in (".", "..")):
            raise ValueError(
                f"a registered model's name cannot hold {' '.join(banned) or 'only dots'} (MLflow names models in "
                f"paths and models:/NAME@ALIAS URIs), but got {shown(value)}"
            )
        return value

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        scheme = value.split(":", 1)[0] if ":" in value else ""
        if scheme not in URI_SCHEMES:
            raise ValueError(
                "must be a tracking URI such as sqlite:///mlflow/mlflow.db, postgresql://user@host/db or "
                f"http://127.0.0.1:5000, but got {shown(value)}"
            )
        if scheme == "sqlite" and not value.startswith("sqlite:///"):
            raise ValueError(f"a sqlite URI needs three slashes (sqlite:///relative.db), but got {shown(value)}")
        refuse_memory(value)
        return value


class FinalizeConfig(Strict):
    """Front members only: a longer fine-tune before the single test-split evaluation."""

    epochs: int | None = Field(10, ge=0, description="null: keep each trial's own fine-tune")
    lr: float | None = Field(None, gt=0, description="learning rate of the final fine-tune (null: each trial's own)")
    distill_alpha: float | None = Field(
        None, ge=0, le=1, description="distillation weight of the final fine-tune (null: each trial's own)"
    )
    ema_decay: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="moving average of the weights in the final fine-tune, e.g. 0.999 (0: off; null: each trial's own)",
    )
    onnx: bool = Field(True, description="export front models to ONNX")
    compile: bool = Field(False, description="the final fine-tune's training steps through torch.compile")
    max_members: int | None = Field(
        None,
        ge=1,
        description="finalize at most this many front members, those adding the most hypervolume (null: all)",
    )


class ChampionConfig(Strict):
    """Which front member gets the ``champion`` alias: the best by ``prefer`` among those within
    ``max_accuracy_drop`` of the dense model's test accuracy (the most accurate if none is)."""

    prefer: Literal["accuracy", "params", "macs", "size_bytes", "latency_ms"] = "macs"
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)
    retrain_margin: float = Field(
        0.0,
        ge=0,
        le=1,
        description="retrain moves champion only if the new candidate's test accuracy is higher by more than this",
    )


_CRON_FIELD = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*|[A-Za-z]{3}(-[A-Za-z]{3})?"


class ScheduleResources(Strict):
    """What one retraining pod (or each Ray node) asks Kubernetes for."""

    cpu: float = Field(2.0, gt=0)
    memory: str = Field("4Gi", pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$", description="a Kubernetes quantity")
    gpu: int = Field(0, ge=0)


class ScheduleConfig(Strict):
    """Scheduled retraining (``autoprune schedule render`` writes the manifests into ``deploy/``)."""

    cron: str = Field(..., description="five fields: minute hour day-of-month month day-of-week")
    timezone: str | None = Field(None, description="IANA name, e.g. Europe/Berlin (default: the controller's)")
    image: str = Field("autoprune:latest", min_length=1, description="a container image with this project installed")
    namespace: str = "default"
    pipeline_path: str | None = Field(
        None, description="the pipeline's path inside the image (default: pipelines/<file>)"
    )
    ray_address: str | None = Field(
        None, description="the CronJob submits to this running cluster (default: Ray in the pod)"
    )
    workers: int = Field(1, ge=0, description="worker pods of the RayJob's cluster")
    args: list[str] = Field(
        default_factory=list, description="extra retrain arguments, e.g. [--set, tracking.uri=http://mlflow:5000]"
    )
    resources: ScheduleResources = Field(default_factory=ScheduleResources)

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(re.fullmatch(_CRON_FIELD, f) for f in fields):
            raise ValueError(
                "a cron expression has five fields (minute hour day month weekday), e.g. '0 3 * * *'; "
                f"got {shown(value)}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        known = zoneinfo.available_timezones()  # empty where the system has no zone database: not checked
        if value is None or not known or value in known:
            return value
        close = difflib.get_close_matches(value, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"must be an IANA time zone such as 'Europe/Berlin' or 'UTC', but got {shown(value)}{hint}")

    @field_validator("namespace")
    @classmethod
    def _kubernetes_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
            raise ValueError(
                "must be a Kubernetes namespace: lower-case letters, digits and '-', at most 63, starting and "
                f"ending with a letter or digit; got {shown(value)}"
            )
        return value


class PipelineConfig(Strict):
    name: str
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: str = Field(
        "auto",
        description="where models train, are evaluated and timed: auto (CUDA if present), cpu, cuda, cuda:N, mps",
    )
    precision: Precision = Field(
        "fp32", description="training steps in bf16 or fp16 mixed precision; evaluation stays float32"
    )
    data: DataConfig = Field(default_factory=DigitsData)
    model: ModelConfig = Field(default_factory=lambda: CNNModel(arch="cnn"))
    search: SearchConfig = Field(default_factory=SearchConfig)
    objectives: dict[str, str] = Field(default_factory=lambda: {"accuracy": "max", "macs": "min"})
    constraints: Constraints = Field(default_factory=Constraints)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    ray: RaySettings = Field(default_factory=RaySettings)
    oneshot: OneShotConfig = Field(default_factory=OneShotConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    finalize: FinalizeConfig = Field(default_factory=FinalizeConfig)
    champion: ChampionConfig = Field(default_factory=ChampionConfig)
    schedule: ScheduleConfig | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value):
            raise ValueError(
                "must start with a letter or digit and hold only letters, digits, '_', '.' and '-' (at most 100): "
                f"it names the experiment, the study and the registered model; got {shown(value)}"
            )
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(DEVICE_PATTERN, value):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N (N a device number) or mps, but got {shown(value)}")
        return value

    @field_validator("constraints")
    @classmethod
    def _fill_what_is_deployed(cls, value: Constraints, info: ValidationInfo) -> Constraints:
        search = info.data.get("search")
        if not isinstance(search, SearchConfig) or not search.fit_to_limit or value.max_size_bytes is None:
            return value
        if not search.space.compression.off:
            raise ValueError(
                "search.fit_to_limit fills max_size_bytes with fp32 weights, but a compressed candidate's size is its "
                "deployable file's: give max_params or max_macs as the limit to fill instead"
            )
        return value

    @field_validator("data", "model", mode="before")
    @classmethod
    def _default_kind(cls, value: Any, info: ValidationInfo) -> Any:
        tag, default = ("source", "digits") if info.field_name == "data" else ("arch", "cnn")
        if isinstance(value, dict) and tag not in value:
            return {tag: default, **value}
        return value

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, value: Any) -> Any:
        if isinstance(value, list):  # [accuracy, macs] is accepted: directions are implied
            if len(set(map(str, value))) != len(value):
                raise ValueError(f"each objective may appear once, but got {value}")
            value = {name: OBJECTIVES[name].short if name in OBJECTIVES else "max" for name in value}
        if not isinstance(value, dict) or not value:
            raise ValueError(f"give 1 to 3 objectives from {', '.join(OBJECTIVES)}, but got {shown(value)}")
        for name, direction in value.items():
            if name not in OBJECTIVES:
                close = difflib.get_close_matches(str(name), OBJECTIVES, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"unknown objective {name!r}{hint}; choose from {', '.join(OBJECTIVES)}")
            expected = OBJECTIVES[name].short
            if direction != expected:
                raise ValueError(
                    f"{name} can only be {'maximised' if expected == 'max' else 'minimised'} "
                    f"({name}: {expected}), but got {direction!r}"
                )
        if len(value) > 3:  # after the names, so a misspelt or added name is named first
            raise ValueError(f"give at most 3 objectives, but got {len(value)}: {', '.join(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if "latency_ms" in self.objectives and self.latency.repeats < 5:
            raise ValueError("latency_ms as an objective needs latency.repeats >= 5 for a usable median")
        return self

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def registered_model(self) -> str:
        return self.tracking.registered_model or self.name

    @property
    def study_name(self) -> str:
        return self.search.study or self.name
