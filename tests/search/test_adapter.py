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
