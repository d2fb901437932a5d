"""The one-shot search's NSGA-II: the same proposals as Optuna's, from a running generation count."""

from __future__ import annotations

import optuna
import pytest

from autoprune.search._nsga import OneWriterNSGAII

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _search(sampler: optuna.samplers.BaseSampler, trials: int, *, study: optuna.Study | None = None) -> optuna.Study:
    study = study or optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for _ in range(trials):
        trial = study.ask()
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("y", 0, 10)
        if trial.number % 7 == 3:  # some fail: they take a generation but do not fill it
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, [x * y, x + y])
    return study


def _proposals(study: optuna.Study) -> list[tuple[dict, object]]:
    return [(t.params, t.system_attrs.get(optuna.samplers.NSGAIISampler._get_generation_key())) for t in study.trials]


@pytest.mark.parametrize("population", [4, 5])
def test_it_proposes_what_optunas_nsga2_does(population: int) -> None:
    theirs = _search(optuna.samplers.NSGAIISampler(seed=3, population_size=population), 60)
    ours = _search(OneWriterNSGAII(seed=3, population_size=population), 60)
    assert _proposals(ours) == _proposals(theirs)
    assert max(g for _, g in _proposals(ours)) >= 8  # many generations were bred, not only the first


def test_a_resumed_study_goes_on_from_its_generations() -> None:
    started = _search(optuna.samplers.NSGAIISampler(seed=3, population_size=4), 25)
    went_on = []
    for sampler in (
        optuna.samplers.NSGAIISampler(seed=9, population_size=4),
        OneWriterNSGAII(seed=9, population_size=4),
    ):
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        for trial in started.trials:  # a new process opens the study: the count starts from its trials
            study.add_trial(trial)
        went_on.append(_proposals(_search(sampler, 25, study=study))[25:])
    assert went_on[1] == went_on[0]
    assert went_on[1][0][1] >= 4  # it went on from the fifth generation, not from the first
