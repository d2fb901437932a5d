"""Typed configuration of the search: strategy, backend, space, budget, and the one-shot and Ray
settings; with the checks of store URLs that the tracking section shares."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .._vocab import Sampler, Strategy
from ._base import Strict, shown
from ._space import SpaceConfig

__all__ = [
    "DATABASE_SCHEMES",
    "URI_SCHEMES",
    "AshaSettings",
    "OneShotConfig",
    "RaySettings",
    "SearchConfig",
    "refuse_memory",
]

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "mysql", "mysql+pymysql")
URI_SCHEMES = (*DATABASE_SCHEMES, "http", "https", "file")


class AshaSettings(Strict):
    """Asynchronous successive halving on validation accuracy per fine-tune epoch (Ray backend only)."""

    enabled: bool = False
    grace_period: int = Field(1, ge=1, description="epochs every trial gets before it may be stopped")
    reduction_factor: float = Field(2.0, gt=1, description="keep 1/reduction_factor of the trials at each rung")
    rank_by: Literal["accuracy", "pareto"] = Field(
        "pareto",
        description="rank a rung by Pareto dominance on all objectives, or by validation accuracy (Ray's ASHA)",
    )


class RaySettings(Strict):
    """How the Ray Tune backend runs trials (``search.backend: ray``)."""

    address: str | None = Field(None, description="a running cluster (auto, host:port, ray://...); default local")
    max_concurrent_trials: int = Field(1, ge=1)
    cpus_per_trial: float = Field(1.0, gt=0, description="also the torch threads of each trial (rounded up)")
    gpus_per_trial: float = Field(0.0, ge=0, description="reserved per trial where the cluster has GPUs")
    asha: AshaSettings = Field(default_factory=AshaSettings)


class OneShotConfig(Strict):
    """The one-shot strategy (``search.strategy: oneshot``): a weight-sharing supernet fine-tuned once,
    then many candidates scored by their BatchNorm-recalibrated accuracy, and only the front's best
    fine-tuned in full."""

    supernet_epochs: int = Field(
        4, ge=0, le=100_000, description="sandwich-rule epochs of the supernet (0: cut candidates from the dense model)"
    )
    lr: float = Field(0.01, gt=0, le=10, description="peak learning rate of the supernet's training (SGD, cosine)")
    random_subnets: int = Field(2, ge=0, le=32, description="random subnets per step besides the largest and smallest")
    # 8 batches rank candidates as 20 did (Kendall tau within +-0.06 on the CNN's and ResNet-20's
    # evaluator sets, BENCHMARKS.md) in about 2/3 of a BatchNorm model's scoring time
    calibration_batches: int = Field(
        8, ge=1, le=100_000, description="training batches each candidate's BatchNorm is recalibrated on"
    )
    candidates: int = Field(1000, ge=1, le=10_000_000, description="candidates the sampler proposes and scores")
    population_size: int = Field(50, ge=2, le=100_000, description="NSGA-II population of the candidate search")
    score_samples: int | None = Field(
        None, ge=10, description="validation samples a candidate is scored on (a stratified subset; null: all)"
    )
    members: int = Field(
        8,
        ge=1,
        le=1000,
        description="front candidates that become trials and are finalized (finalize.max_members wins)",
    )
    distill_alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="distillation from the dense model in the members' final fine-tune (finalize.distill_alpha wins)",
    )


class SearchConfig(Strict):
    strategy: Strategy = Field(
        "trials",
        description="trials: each candidate pruned and fine-tuned in turn; oneshot: a supernet, candidates scored by "
        "calibrated accuracy",
    )
    backend: Literal["optuna", "ray"] = "optuna"
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    sampler: Sampler = "nsga2"
    trials: int = Field(24, ge=1, description="completed trials the search ends with")
    timeout_s: float | None = Field(None, gt=0, description="stop starting new trials after this many seconds")
    storage: str | None = Field(None, description="Optuna RDB URL; default sqlite beside the tracking store")
    study: str | None = Field(None, description="Optuna study name; default the pipeline name")
    train_fraction: float = Field(1.0, gt=0, le=1, description="share of the training split each trial fine-tunes on")
    population_size: int | None = Field(None, ge=2, description="NSGA-II population; default trials // 4, 4..50")
    max_failed_trials: int | None = Field(None, ge=1, description="end the search after this many failures")
    heartbeat_s: int = Field(10, ge=1, description="RDB heartbeat; a silent trial is failed after 3 beats")
    seed_uniform: int = Field(
        0,
        ge=0,
        description="a new study first tries this many uniform plans spread up to the highest ratios (the rest "
        "sampled)",
    )
    skip_over_limit: bool = Field(
        True,
        description="a trial whose params, MACs or bytes break a constraint is not fine-tuned (no fine-tune "
        "can make it feasible): it is evaluated as pruned and recorded as infeasible",
    )
    fit_to_limit: bool = Field(
        False,
        description="scale each proposal's ratios by one factor so the pruned model fills constraints.max_params "
        "/ max_macs / max_size_bytes without breaking them: the search then chooses how the budget is spread over the "
        "groups (and the fine-tune), not how much to prune",
    )

    @field_validator("space")
    @classmethod
    def _compression_fixed_for_oneshot(cls, value: SpaceConfig, info: ValidationInfo) -> SpaceConfig:
        if info.data.get("strategy") == "oneshot" and value.compression.searched:
            raise ValueError(
                "strategy oneshot scores fp32 widths, not compression: give compression.quantize and "
                "compression.weight_clusters one value each (the front's models are compressed so), or search "
                "them with strategy: trials"
            )
        return value

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is not None and value.split(":", 1)[0] not in DATABASE_SCHEMES:
            raise ValueError(
                "must be an RDB URL such as sqlite:///path/optuna.db or postgresql://user@host/db, "
                f"but got {shown(value)}"
            )
        if value is not None and value.startswith("sqlite:") and not value.startswith("sqlite:///"):
            raise ValueError(f"a sqlite URL needs three slashes (sqlite:///relative.db), but got {shown(value)}")
        refuse_memory(value)
        return value


def refuse_memory(url: str | None) -> None:
    """A store must outlive the process: no in-memory sqlite (``sqlite://``, ``sqlite:///:memory:``)."""
    if url is not None and url.startswith("sqlite:") and url.removeprefix("sqlite:").strip("/") in ("", ":memory:"):
        raise ValueError(
            f"an in-memory database is gone when the run ends (no resume, no UI): give a file such as "
            f"sqlite:///mlflow/optuna.db, but got {shown(url)}"
        )
