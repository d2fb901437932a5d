"""The one-shot strategy's parts: the space it proposes from, candidates scored as extracted and
recalibrated models, the candidates' own study (resumed after a kill), and the trials it adds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from autoprune import config, engine, search
from autoprune.search import Metric, NullReporter, Objectives, Study, TrialState
from autoprune.search._candidates import CandidateScorer, CandidateStudy
from autoprune.search._supernet import calibration_batches, prepare_supernet, sample_params

from ..conftest import DIGITS_SHAPE

SPACE = {
    "pruning": {"ratio": {"low": 0.0, "high": 0.7, "step": 0.1}, "importance": ["l2", "l1"]},
    "finetune": {"lr": {"low": 0.001, "high": 0.1, "log": True}, "epochs": [3, 6], "distill_alpha": 0.5},
}


@pytest.fixture(scope="module")
def space(trained_cnn: torch.nn.Module) -> search.SearchSpace:
    groups = engine.discover(trained_cnn, DIGITS_SHAPE)
    return search.SearchSpace(config.SpaceConfig.model_validate(SPACE), groups).plans_only()


def _evaluator(dense: torch.nn.Module, digits, space: search.SearchSpace) -> search.CandidateEvaluator:
    reference = search.DenseReference(
        val_accuracy=engine.evaluate(dense, digits.val).accuracy,
        test_accuracy=0.99,
        params=engine.count_params(dense),
        macs=engine.count_macs(dense, DIGITS_SHAPE),
        size_bytes=engine.size_bytes(dense),
        latency_ms=1.0,
    )
    measure = engine.MeasureConfig(latency=engine.LatencyConfig(repeats=3, warmup=1))
    return search.CandidateEvaluator(dense, digits, space, measure=measure, reference=reference, constraints={})


def test_a_one_shot_space_searches_plans_only(space: search.SearchSpace) -> None:
    assert set(space.distributions) == {f"ratio.{name}" for name in space.searched}
    fixed = space.fixed
    assert fixed["importance"] == "l2"  # the first criterion orders the nested channels
    assert fixed["lr"] == pytest.approx(0.01) and fixed["epochs"] == 3 and fixed["distill_alpha"] == 0.5
    assert space.largest_plan().ratios == {} and set(space.smallest_plan().ratios.values()) == {0.7}


def test_sampled_parameters_stay_on_their_grids(space: search.SearchSpace) -> None:
    generator = torch.Generator().manual_seed(0)
    draws = [sample_params(space.distributions, generator) for _ in range(200)]
    values = {round(v, 10) for draw in draws for v in draw.values()}
    assert values == {round(0.1 * k, 10) for k in range(8)}  # every point of the grid, nothing off it


def test_a_candidate_is_scored_as_its_extracted_recalibrated_model(trained_cnn, digits, space) -> None:
    calibration = calibration_batches(digits, 4, seed=0)
    supernet = prepare_supernet(
        trained_cnn,
        digits,
        space,
        config.OneShotConfig(supernet_epochs=0),
        cache_dir=Path("unused"),
        seed=0,
        calibration=calibration,
    )
    evaluator = _evaluator(trained_cnn, digits, space.with_order(supernet.nested.order))
    scorer = CandidateScorer(evaluator, supernet.nested, calibration, digits.val, trained_cnn)
    params = dict.fromkeys(space.distributions, 0.5)
    record = scorer(0, params)
    subnet = copy.deepcopy(trained_cnn)
    engine.apply_plan(subnet, evaluator.space.candidate(params).plan, DIGITS_SHAPE)
    engine.recalibrate_batchnorm(subnet, calibration)
    assert record.state == TrialState.COMPLETE and record.metrics[Metric.CALIBRATED] == 1.0
    assert record.metrics[Metric.VAL_ACCURACY] == engine.evaluate(subnet, digits.val).accuracy
    assert record.metrics[Metric.PARAMS] == engine.count_params(subnet) and record.epochs == []
    again = scorer(1, params)  # the same architecture: scored once
    assert again.metrics[Metric.VAL_ACCURACY] == record.metrics[Metric.VAL_ACCURACY] and len(scorer._scored) == 1


def test_the_candidate_study_goes_on_after_a_kill(tmp_path: Path, space: search.SearchSpace) -> None:
    objectives = Objectives(["accuracy", "macs"])

    def sampler(done: int) -> object:
        return search.make_sampler("random", seed=done, trials=10)

    def score(number: int, params: dict) -> search.TrialRecord:
        metrics = {Metric.VAL_ACCURACY: 0.5 + number / 100, Metric.MACS: 1000.0 - number}
        return search.TrialRecord(number, TrialState.COMPLETE, dict(params), metrics=metrics)

    path = tmp_path / "oneshot" / "s.journal"
    first = CandidateStudy(path, "s", objectives, sampler).open()
    for _ in range(3):
        first.score_one(space.distributions, score)
    first.study.ask(fixed_distributions=space.distributions)  # the process dies while scoring this one
    again = CandidateStudy(path, "s", objectives, sampler).open()
    assert again.done() == 4  # the interrupted one ended as failed; the three scored are kept
    assert [r.state for r in again.records()] == [TrialState.COMPLETE] * 3 + [TrialState.FAILED]
    again.score_one(space.distributions, score)
    assert again.done() == 5 and again.records()[-1].metrics[Metric.MACS] == 996.0


def test_the_fronts_best_become_trials_once(tmp_path: Path, trained_cnn, digits, space) -> None:
    settings = config.OneShotConfig(supernet_epochs=0, candidates=24, calibration_batches=2, population_size=8)
    strategy = search.OneShotStrategy(
        settings, work_dir=tmp_path / "oneshot", cache_dir=tmp_path / "cache", sampler="nsga2", seed=0, members=3
    )
    evaluator = strategy.prepare(_evaluator(trained_cnn, digits, space), NullReporter())
    assert evaluator.dense is not trained_cnn and evaluator.teacher is trained_cnn and evaluator.space.order
    study = Study(f"sqlite:///{tmp_path / 'optuna.db'}", "s", objectives=Objectives(["accuracy", "macs"]))
    study.connect().open(resume=False)
    outcome = strategy.run(study, evaluator, NullReporter(), search.Budget(trials=24))
    assert outcome.stop_reason is None
    records = study.records()
    assert len(records) == 3 and all(r.state == TrialState.COMPLETE for r in records)
    candidates = CandidateStudy(tmp_path / "oneshot" / "s.journal", "s", study.objectives, lambda d: None)
    front, _ = search.front_of(candidates.open().records(), study.objectives, evaluator.reference)
    by_params = {tuple(sorted(r.params.items())) for r in candidates.records() if r.number in front}
    assert all(tuple(sorted((k, r.params[k]) for k in evaluator.space.distributions)) in by_params for r in records)
    strategy.run(study, evaluator, NullReporter(), search.Budget(trials=24))  # a resumed run adds nothing
    assert len(study.records()) == 3
