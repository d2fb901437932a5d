"""The pipeline's search: its study and the strategy that fills it, as its ``search`` block names them."""

from __future__ import annotations

from ..config import FinalizeConfig, PipelineConfig
from ..search import Objectives, OneShotStrategy, OptunaBackend, RayBackend, SearchSpace, SearchStrategy, Study
from ._locations import cache_dir, state_dir, storage_url

__all__ = ["finalize_settings", "make_strategy", "make_study", "oneshot_members", "search_space"]


def make_study(config: PipelineConfig, objectives: Objectives, space: SearchSpace) -> Study:
    """The pipeline's study (not connected yet)."""
    search = config.search
    return Study(
        storage_url(config),
        config.study_name,
        objectives=objectives,
        fixed=space.fixed,
        sampler=search.sampler,
        seed=config.seed,
        trials=search.trials,
        population_size=search.population_size,
        heartbeat_s=search.heartbeat_s,
    )


def oneshot_members(config: PipelineConfig) -> int:
    """How many front candidates of a one-shot search become trials: ``finalize.max_members`` when set,
    else ``oneshot.members``."""
    return config.finalize.max_members or config.oneshot.members


def make_strategy(config: PipelineConfig) -> SearchStrategy:
    """The strategy the pipeline's ``search`` block names. The one-shot strategy scores candidates in
    this process whatever the backend (its module docstring says why)."""
    if config.search.strategy == "oneshot":
        return OneShotStrategy(
            config.oneshot,
            work_dir=state_dir(config) / "oneshot",
            cache_dir=cache_dir(config),
            sampler=config.search.sampler,
            seed=config.seed,
            members=oneshot_members(config),
        )
    if config.search.backend == "ray":
        return RayBackend(config.ray, state_dir(config) / "ray")
    return OptunaBackend()


def finalize_settings(config: PipelineConfig) -> FinalizeConfig:
    """How front members are finalized: the pipeline's ``finalize``; for a one-shot search, distilled
    from the dense model at ``oneshot.distill_alpha`` unless ``finalize.distill_alpha`` says otherwise."""
    if config.search.strategy != "oneshot" or config.finalize.distill_alpha is not None:
        return config.finalize
    return config.finalize.model_copy(update={"distill_alpha": config.oneshot.distill_alpha})


def search_space(config: PipelineConfig, space: SearchSpace) -> SearchSpace:
    """The space the strategy proposes from: a one-shot search proposes plans only."""
    return space.plans_only() if config.search.strategy == "oneshot" else space
