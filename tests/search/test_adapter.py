"""What autoprune relies on that Optuna and Ray do not promise was written for these versions: moving
a pin means reading `autoprune/search/_adapter.py` against the new release first."""

from __future__ import annotations

import logging

from autoprune.search import _adapter


def test_the_installed_versions_are_the_ones_the_adapter_was_written_for() -> None:
    assert _adapter.installed_versions() == _adapter.WRITTEN_FOR


def test_optunas_failed_trial_lines_are_dropped_and_other_lines_kept() -> None:
    _adapter.quiet_failed_trials()
    logger = logging.getLogger(_adapter.OPTIMIZE_LOGGER)

    def kept(message: str) -> bool:
        record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, message, (), None)
        return bool(logger.filter(record))

    assert not kept("Trial 3 failed with parameters: {'a': 1} because of the following error: TrialFailed('x')")
    assert not kept("Trial 3 failed with value None.")
    assert kept("Trial 3 failed with parameters: {'a': 1} because of the following error: ValueError('x')")


def test_constraints_are_written_as_optuna_5_and_optuna_dashboard_read_them() -> None:
    import warnings

    import optuna
    from optuna.study._constrained_optimization import _get_feasible_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy, size, drop in ((0.9, 5.0, -0.01), (0.95, 9.0, 0.02), (0.8, 2.0, -0.1)):
        trial = study.ask()
        _adapter.set_constraints(trial, {"max_accuracy_drop": drop})
        study.tell(trial, [accuracy, size])
    frozen = study.get_trials()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both forms at once raise no "overwrite" warning
        assert [t.number for t in _get_feasible_trials(frozen)] == [0, 2]
    assert [t.system_attrs[_adapter.LIST_CONSTRAINTS_KEY] for t in frozen] == [[-0.01], [0.02], [-0.1]]
    assert all(t.system_attrs["constraints:max_accuracy_drop"] == v for t, v in zip(frozen, (-0.01, 0.02, -0.1)))
    assert sorted(t.number for t in study.best_trials) == [0, 2]  # the infeasible trial 1 is on no front
