"""A proposal that the space turns into an earlier trial's candidate is skipped as its twin."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna

from autoprune import config, engine, models, search
from autoprune.search import Budget, NullReporter, Objectives, Study
from autoprune.search.backends._budget import BudgetRules

from ..conftest import DIGITS_SHAPE


def test_offsets_kept_inside_the_range_make_the_same_candidate_a_twin(tmp_path: Path) -> None:
    groups = engine.discover(models.build(config.CNNModel(arch="cnn", widths=[8, 16]), DIGITS_SHAPE, 10), DIGITS_SHAPE)
    space_config = {
        "pruning": {"ratio": {"low": 0.0, "high": 0.6, "step": 0.1}, "spread": 0.2},
        "finetune": {"lr": 0.01, "epochs": 1},
    }
    space = search.SearchSpace(config.SpaceConfig.model_validate(space_config), groups)
    offsets = sorted(name for name in space.distributions if name.startswith("offset."))
    assert len(offsets) == 2

    def params(ratio: float, *offset: float) -> dict[str, float]:
        return {"ratio": ratio} | dict(zip(offsets, offset))

    study = Study(f"sqlite:///{tmp_path / 'optuna.db'}", "twins", objectives=Objectives(["accuracy"])).connect()
    study.open(resume=False)
    earlier = optuna.trial.create_trial(params=params(0.6, 0.1, 0.0), distributions=space.distributions, values=[0.9])
    study.optuna.add_trial(earlier)  # asked 0.7 for the first group: kept at the range's 0.6
    session = BudgetRules(study, SimpleNamespace(space=space), NullReporter(), Budget(trials=2))

    assert session.twin(params(0.6, 0.0, 0.0)) == 0  # other parameters, the same plan and recipe
    assert session.twin(params(0.6, 0.2, 0.0)) == 0
    assert session.twin(params(0.5, 0.1, 0.0)) is None  # 0.6 / 0.5: another plan
    assert session.twin(params(0.6, 0.0, -0.1)) is None
    assert session.twin(params(0.6, 0.1, 0.0)) is None  # two skips taken: the budget's trials allow no more
