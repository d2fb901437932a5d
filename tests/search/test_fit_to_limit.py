"""search.fit_to_limit in the search space: every candidate's plan is fitted to the size limit, so
proposals that differ only in how much they prune become one candidate (a twin), and trials log the
ratios their groups were actually pruned at."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna

from autoprune import config, engine, models, search
from autoprune.search import Budget, NullReporter, Objectives, Study
from autoprune.search.backends._budget import BudgetRules

from ..conftest import DIGITS_SHAPE

TILT = {"pruning": {"ratio": {"low": 0.1, "high": 0.6, "step": 0.05}, "tilt": {"low": -0.5, "high": 0.5, "step": 0.25}}}


def _space(limit: float) -> tuple[search.SearchSpace, engine.FitToLimit, int]:
    dense = models.build(config.CNNModel(arch="cnn", widths=[8, 16, 32]), DIGITS_SHAPE, 10)
    groups = engine.discover(dense, DIGITS_SHAPE)
    space = search.SearchSpace(config.SpaceConfig.model_validate(TILT), groups)
    params = int(limit * engine.count_params(dense))
    fit = engine.FitToLimit(dense, DIGITS_SHAPE, groups, {"params": params}, space.smallest_plan().ratios)
    space.fit = fit
    return space, fit, params


def test_candidates_are_fitted_and_trials_log_the_fitted_ratios() -> None:
    space, fit, limit = _space(0.35)
    candidate = space.candidate({"ratio": 0.2, "tilt": 0.5})
    kept = {name: candidate.plan.kept_channels(name, size) for name, size in fit.sizes.items()}
    assert fit.costs(kept)["params"] <= limit
    unfitted = search.SearchSpace(space.config, space.groups).candidate({"ratio": 0.2, "tilt": 0.5})
    assert candidate.plan.ratios != unfitted.plan.ratios and candidate.finetune == unfitted.finetune

    logged = space.logged_params({"ratio": 0.2, "tilt": 0.5})
    assert logged["ratio"] == 0.2 and logged["tilt"] == 0.5  # the proposal, as sampled
    fitted = {name.removeprefix("fitted."): value for name, value in logged.items() if name.startswith("fitted.")}
    assert fitted == {name: round(candidate.plan.ratios.get(name, 0.0), 4) for name in space.searched}
    assert space.describe()["fit_to_limit"] == {"params": limit}
    assert (
        "fit_to_limit" not in search.SearchSpace(space.config, space.groups).describe()
    )  # old studies resume as before


def test_proposals_of_one_shape_are_one_candidate_and_skipped_as_twins(tmp_path: Path) -> None:
    space, _, _ = _space(0.35)
    assert space.candidate({"ratio": 0.2, "tilt": 0.5}) == space.candidate(
        {"ratio": 0.4, "tilt": 0.5}
    )  # 0.1/0.2/0.3 and 0.2/0.4/0.6
    assert space.candidate({"ratio": 0.2, "tilt": 0.5}) != space.candidate({"ratio": 0.2, "tilt": -0.5})

    study = Study(f"sqlite:///{tmp_path / 'optuna.db'}", "fit", objectives=Objectives(["accuracy"])).connect()
    study.open(resume=False)
    study.optuna.add_trial(
        optuna.trial.create_trial(params={"ratio": 0.2, "tilt": 0.5}, distributions=space.distributions, values=[0.9])
    )
    session = BudgetRules(study, SimpleNamespace(space=space), NullReporter(), Budget(trials=4))
    assert session.twin({"ratio": 0.4, "tilt": 0.5}) == 0
    assert session.twin({"ratio": 0.4, "tilt": 0.0}) is None
