"""NSGA-II for the one-shot candidates: one process asks, scores and tells one candidate at a time."""

from __future__ import annotations

from collections.abc import Sequence

from optuna import Study
from optuna.samplers import NSGAIISampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["OneWriterNSGAII"]


class OneWriterNSGAII(NSGAIISampler):
    """Optuna's NSGA-II, with a new trial's generation taken from a running count.

    Optuna finds a new trial's generation by a pass over every completed trial (the latest generation
    and how many of its trials completed), and its parents by another pass over all trials, each time
    it asks: over a search of n candidates that is n^2 steps, most of the sampler's time at 1,000
    candidates. When one process asks, scores and tells one trial at a time, the same answers follow
    from a count kept as trials complete (started from one such pass, so a resumed study goes on where
    it was) and from the parents kept while their generation fills. Only for such studies: with
    several writers the count would miss the others' trials.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._latest: list[int] | None = None  # [generation, its completed trials]
        self._assigned: dict[int, int] = {}  # trial id -> generation, until it is told
        self._parents: dict[int, list[FrozenTrial]] = {}  # the latest generation's parents

    @classmethod
    def _get_generation_key(cls) -> str:  # Optuna's own keys: a study goes on under either sampler
        return NSGAIISampler._get_generation_key()

    @classmethod
    def _get_parent_cache_key_prefix(cls) -> str:
        return NSGAIISampler._get_parent_cache_key_prefix()

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        known = trial.system_attrs.get(self._get_generation_key())
        if known is not None:
            return int(known)
        if self._latest is None:
            self._latest = _latest_generation(study, self._get_generation_key())
        generation, completed = self._latest
        assert self.population_size is not None, "Population size must be set."
        if completed >= self.population_size:
            generation += 1
        study._storage.set_trial_system_attr(trial._trial_id, self._get_generation_key(), generation)
        self._assigned[trial._trial_id] = generation
        return generation

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        """Optuna's answer, kept for the generation being filled (Optuna keeps the parents' ids in
        the study and finds the trials again in a pass over all of them, each time it asks)."""
        if generation in self._parents:
            return self._parents[generation]
        parents = super().get_parent_population(study, generation)  # in selection order the first time,
        self._parents = {generation: sorted(parents, key=lambda t: t._trial_id)}  # then in the study's
        return parents

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        generation = self._assigned.pop(trial._trial_id, None)
        if state == TrialState.COMPLETE and generation is not None and self._latest is not None:
            if generation > self._latest[0]:
                self._latest = [generation, 1]
            elif generation == self._latest[0]:
                self._latest[1] += 1
        super().after_trial(study, trial, state, values)


def _latest_generation(study: Study, key: str) -> list[int]:
    """The latest generation among the completed trials and how many of them it holds (Optuna's pass)."""
    latest, count = 0, 0
    for trial in study._get_trials(deepcopy=False, states=[TrialState.COMPLETE], use_cache=True):
        generation = trial.system_attrs.get(key, -1)
        if generation > latest:
            latest, count = generation, 1
        elif generation == latest:
            count += 1
    return [latest, count]
