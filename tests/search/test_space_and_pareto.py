"""The search space bound to groups, and the Pareto utilities."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from autoprune import config, engine, models, search
from autoprune.errors import ConfigError

from ..conftest import DIGITS_SHAPE


@pytest.fixture(scope="module")
def resnet_groups() -> list[engine.Group]:
    return engine.discover(models.build(config.ResNetModel(arch="resnet"), DIGITS_SHAPE, 10), DIGITS_SHAPE)


def _space(**pruning) -> config.SpaceConfig:
    return config.SpaceConfig.model_validate(
        {
            "pruning": pruning,
            "finetune": {"lr": {"low": 1e-3, "high": 0.1, "log": True}, "epochs": [1, 2], "optimizer": "adamw"},
        }
    )


def test_one_ratio_per_group_with_overrides_and_excludes(resnet_groups) -> None:
    space = search.SearchSpace(
        _space(
            ratio={"low": 0.0, "high": 0.8, "step": 0.1},
            overrides={"layer3.*": {"high": 0.5}},
            exclude=["conv1"],
            importance=["l1", "taylor"],
        ),
        resnet_groups,
        batch_size=64,
        seed=3,
    )
    dists = space.distributions
    assert "ratio.conv1" not in dists and space.excluded == {"conv1"}
    assert dists["ratio.layer1.0.conv1"] == FloatDistribution(0.0, 0.8, step=0.1)
    assert dists["ratio.layer3.1.conv1"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert dists["importance"] == CategoricalDistribution(["l1", "taylor"])
    assert dists["lr"] == FloatDistribution(1e-3, 0.1, log=True) and dists["epochs"] == CategoricalDistribution([1, 2])
    assert space.fixed["optimizer"] == "adamw" and "weight_decay" in space.fixed
    params = {name: 0.3 for name in dists if name.startswith("ratio.")} | {
        "importance": "taylor",
        "lr": 0.01,
        "epochs": 2,
    }
    candidate = space.candidate(params)
    assert candidate.plan.ratios["layer2.0.conv1"] == 0.3 and "conv1" not in candidate.plan.ratios
    assert candidate.plan.importance == "taylor" and candidate.plan.seed == 3
    assert (
        candidate.finetune.epochs,
        candidate.finetune.lr,
        candidate.finetune.optimizer,
        candidate.finetune.batch_size,
    ) == (2, 0.01, "adamw", 64)
    assert space.candidate(space.params_of(candidate)) == candidate


def test_uniform_space_has_one_ratio(resnet_groups) -> None:
    space = search.SearchSpace(_space(uniform=True, ratio={"low": 0.1, "high": 0.55, "step": 0.1}), resnet_groups)
    assert space.distributions["ratio"] == FloatDistribution(0.1, 0.5, step=0.1)  # high kept on the step grid
    plan = space.candidate({"ratio": 0.4, "lr": 0.01, "epochs": 1}).plan
    assert set(plan.ratios) == {g.name for g in resnet_groups} and set(plan.ratios.values()) == {0.4}


def test_spread_space_keeps_every_group_near_one_shared_ratio(resnet_groups) -> None:
    space = search.SearchSpace(
        _space(ratio={"low": 0.0, "high": 0.8, "step": 0.1}, spread=0.25, overrides={"layer3.*": {"high": 0.5}}),
        resnet_groups,
    )
    dists = space.distributions
    offsets = {k for k in dists if k.startswith("offset.")}
    assert dists["ratio"] == FloatDistribution(0.0, 0.8, step=0.1) and not any(k.startswith("ratio.") for k in dists)
    assert offsets == {f"offset.{g.name}" for g in resnet_groups}
    assert all(dists[k] == FloatDistribution(-0.2, 0.2, step=0.1) for k in offsets)  # the spread, kept on the step grid
    params = {"ratio": 0.5, "lr": 0.01, "epochs": 1} | dict.fromkeys(offsets, 0.0)
    params |= {
        "offset.layer1.0.conv1": 0.2,
        "offset.layer2.0.conv1": -0.2,
        "offset.layer3.0.conv1": 0.2,
        "offset.conv1": -0.2,
    }
    ratios = space.candidate(params).plan.ratios
    assert (ratios["layer1.0.conv1"], ratios["layer2.0.conv1"], ratios["layer2.1.conv1"]) == (0.7, 0.3, 0.5)
    assert ratios["layer3.0.conv1"] == 0.5  # 0.7 asked, the override's highest given
    assert space.candidate(params | {"ratio": 0.0}).plan.ratios.get("conv1", 0.0) == 0.0  # never below the range
    seeds = space.uniform_seeds(2)
    assert [s["ratio"] for s in seeds] == [0.4, 0.8] and all(s[k] == 0.0 for s in seeds for k in offsets)
    assert (
        space.smallest_plan().ratios["layer3.0.conv1"] == 0.5 and space.smallest_plan().ratios["layer1.0.conv1"] == 0.8
    )
    candidate = space.candidate(params)
    assert space.candidate(space.params_of(candidate)) == candidate


def test_tilt_leans_the_shared_ratio_from_the_first_group_to_the_last() -> None:
    cnn = [engine.Group(name=name, size=32, members=(name,)) for name in ("conv1", "conv2", "conv3")]
    space = search.SearchSpace(_space(ratio={"low": 0.0, "high": 0.9, "step": 0.05}, tilt={}), cnn)
    dists = space.distributions
    assert dists["tilt"] == FloatDistribution(-0.75, 0.75, step=0.05) and not any("." in k for k in dists)  # no offsets
    plan = space.candidate({"ratio": 0.4, "tilt": 0.75, "lr": 0.01, "epochs": 1}).plan
    assert plan.ratios == {"conv1": 0.1, "conv2": 0.4, "conv3": 0.7}  # 0.4 x (0.25, 1, 1.75)
    assert space.candidate({"ratio": 0.4, "tilt": -0.5, "lr": 0.01, "epochs": 1}).plan.ratios == {
        "conv1": 0.6,
        "conv2": 0.4,
        "conv3": 0.2,
    }
    assert (
        space.candidate({"ratio": 0.8, "tilt": 0.5, "lr": 0.01, "epochs": 1}).plan.ratios["conv3"] == 0.9
    )  # kept in range
    assert [s["tilt"] for s in space.uniform_seeds(3)] == [0.0, 0.0, 0.0]  # uniform seeds do not lean
    candidate = space.candidate({"ratio": 0.4, "tilt": 0.75, "lr": 0.01, "epochs": 1})
    assert space.params_of(candidate)["tilt"] == 0.75 and space.candidate(space.params_of(candidate)) == candidate


def test_tilt_and_spread_together_offset_the_leant_ratio(resnet_groups) -> None:
    space = search.SearchSpace(
        _space(ratio={"low": 0.0, "high": 0.8, "step": 0.1}, spread=0.2, tilt={"low": 0.0, "high": 0.5, "step": 0.5}),
        resnet_groups,
    )
    first, last = resnet_groups[0].name, resnet_groups[-1].name
    params = {"ratio": 0.4, "tilt": 0.5, "lr": 0.01, "epochs": 1} | {
        k: 0.0 for k in space.distributions if k.startswith("offset.")
    }
    ratios = space.candidate(params | {f"offset.{first}": 0.1}).plan.ratios
    assert (ratios[first], ratios[last]) == (0.3, 0.6)  # 0.4 x 0.5 + 0.1 and 0.4 x 1.5
    candidate = space.candidate(params)
    assert space.candidate(space.params_of(candidate)) == candidate


def test_tilt_and_uniform_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="a tilt with depth needs uniform: false"):
        _space(uniform=True, tilt={})


def test_spread_and_uniform_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="a spread around it needs uniform: false"):
        _space(uniform=True, spread=0.1)


def test_integer_epoch_ranges(resnet_groups) -> None:
    cfg = config.SpaceConfig.model_validate({"finetune": {"epochs": {"low": 1, "high": 5}}})
    assert search.SearchSpace(cfg, resnet_groups).distributions["epochs"] == IntDistribution(1, 5)


def test_weight_averaging_is_a_fine_tune_setting_left_out_of_old_descriptions_while_off(resnet_groups) -> None:
    off = search.SearchSpace(_space(), resnet_groups)
    assert (
        off.fixed["ema_decay"] == 0.0
        and off.candidate({"lr": 0.01, "epochs": 1} | _ratios(off)).finetune.ema_decay == 0.0
    )
    assert "ema_decay" not in off.describe()["fixed"]  # studies begun before the setting still resume
    cfg = config.SpaceConfig.model_validate({"finetune": {"ema_decay": [0.0, 0.999]}})
    searched = search.SearchSpace(cfg, resnet_groups)
    assert searched.distributions["ema_decay"] == CategoricalDistribution([0.0, 0.999])
    assert searched.candidate({"ema_decay": 0.999} | _ratios(searched)).finetune.ema_decay == 0.999
    fixed = search.SearchSpace(config.SpaceConfig.model_validate({"finetune": {"ema_decay": 0.99}}), resnet_groups)
    assert fixed.describe()["fixed"]["ema_decay"] == 0.99
    with pytest.raises(ValueError, match=r"ema_decay\n.*values must be less than 1"):
        config.SpaceConfig.model_validate({"finetune": {"ema_decay": 1.0}})


def _ratios(space: search.SearchSpace) -> dict[str, float]:
    return {name: 0.2 for name in space.distributions if name.startswith("ratio.")}


@pytest.mark.parametrize(
    ("pruning", "key", "message"),
    [
        (
            {"overrides": {"layer9.*": {"high": 0.3}}},
            "search.space.pruning.overrides.layer9.*",
            re.escape("'layer9.*' matches no group"),
        ),
        ({"exclude": ["conv1", "head*"]}, "search.space.pruning.exclude.1", re.escape("'head*' matches no group")),
        ({"exclude": ["*"]}, "search.space.pruning.exclude", "every group is excluded"),
        (
            {"ratio": {"low": 0.5, "high": 0.8}, "overrides": {"layer1.*": {"high": 0.3}}},
            "search.space.pruning.overrides",
            "low <= high must hold for group 'layer1.0.conv1' after overrides",
        ),
    ],
)
def test_space_errors_name_their_key(resnet_groups, pruning, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        search.SearchSpace(_space(**pruning), resnet_groups)
    assert info.value.key == key


def test_non_dominated_and_ranks() -> None:
    points = [(1, 5), (2, 2), (3, 1), (3, 3), (4, 4), (2, 2)]
    assert search.non_dominated(points) == [0, 1, 2, 5]
    assert search.pareto_ranks(points) == [1, 1, 1, 2, 3, 1]
    assert search.dominates((1, 1), (1, 2)) and not search.dominates((1, 2), (1, 2))


@pytest.mark.parametrize("dims", [2, 3])
def test_hypervolume_matches_optuna(dims: int) -> None:
    from optuna._hypervolume import compute_hypervolume

    rng = random.Random(dims)
    for _ in range(20):
        points = [tuple(rng.uniform(0, 1.2) for _ in range(dims)) for _ in range(rng.randint(1, 25))]
        reference = [1.0] * dims
        inside = np.array([p for p in points if all(x < 1 for x in p)]).reshape(-1, dims)
        expected = compute_hypervolume(inside, np.array(reference)) if len(inside) else 0.0
        assert search.hypervolume(points, reference) == pytest.approx(expected, abs=1e-12)


def test_hypervolume_of_simple_shapes() -> None:
    assert search.hypervolume([(0.5, 0.5)], [1, 1]) == pytest.approx(0.25)
    assert search.hypervolume([(0.0, 0.5), (0.5, 0.0)], [1, 1]) == pytest.approx(0.75)
    assert search.hypervolume([(0.5, 0.5, 0.5)], [1, 1, 1]) == pytest.approx(0.125)
    assert search.hypervolume([(1.5, 0.1)], [1, 1]) == 0.0


def test_objectives_losses_are_normalised() -> None:
    objectives = search.Objectives(["accuracy", "macs", "latency_ms"])
    dense = search.DenseReference(0.99, 0.98, 1000, 2000, 4000, 0.5)
    metrics = {"val_accuracy": 0.9, "macs": 500.0, "latency_ratio": 0.8}
    assert objectives.directions == ["maximize", "minimize", "minimize"]
    assert objectives.values(metrics) == [0.9, 500.0, 0.8]
    assert objectives.losses(metrics, dense) == pytest.approx([0.1, 0.25, 0.8])
    assert list(itertools.chain(objectives.metrics)) == ["val_accuracy", "macs", "latency_ratio"]


def test_uniform_seeds_spread_each_group_over_its_own_range(resnet_groups) -> None:
    space = search.SearchSpace(
        _space(ratio={"low": 0.0, "high": 0.8, "step": 0.1}, overrides={"layer3.*": {"high": 0.5}}),
        resnet_groups,
        batch_size=64,
    )
    seeds = space.uniform_seeds(4)
    assert len(seeds) == 4
    assert [s["ratio.layer1.0.conv1"] for s in seeds] == [0.2, 0.4, 0.6, 0.8]  # the last at the highest ratios
    assert [s["ratio.layer3.1.conv1"] for s in seeds] == [0.1, 0.2, 0.4, 0.5]  # snapped to the step, within its range
    assert all(
        set(s) == {k for k in space.distributions if k.startswith("ratio.")} for s in seeds
    )  # the rest is sampled


def test_finalized_members_are_those_adding_the_most_hypervolume() -> None:
    from autoprune.search import choose_members

    # (1 - accuracy, MACs share): a knee at trial 2, a cheap end at 0, a bunch of near-copies at 3-5
    losses = {0: (0.40, 0.05), 1: (0.05, 0.90), 2: (0.10, 0.20), 3: (0.08, 0.50), 4: (0.079, 0.51), 5: (0.078, 0.52)}
    front = sorted(losses)
    assert choose_members(front, losses, None) == front
    assert choose_members(front, losses, 6) == front
    assert choose_members(front, losses, 1) == [2]  # the largest volume alone: 0.9 x 0.8
    assert choose_members(front, losses, 2) == [0, 2]  # the cheap end adds 0.15 x 0.6; a near-copy less
    assert len(choose_members(front, losses, 3)) == 3
    assert not {3, 4, 5} <= set(choose_members(front, losses, 4))  # never all of the bunch


def test_final_candidate_applies_the_finalize_recipe_over_the_trials() -> None:
    from autoprune.workflow._members import final_candidate

    plan = engine.PrunePlan(ratios={"features.0": 0.5})
    trial = engine.Candidate(plan, engine.FinetuneConfig(epochs=1, lr=0.03, distill_alpha=0.5, train_fraction=0.2))
    longer = final_candidate(trial, config.FinalizeConfig(epochs=10))
    assert (longer.finetune.epochs, longer.finetune.train_fraction) == (10, 1.0)
    assert (longer.finetune.lr, longer.finetune.distill_alpha) == (0.03, 0.5)  # the trial's own recipe
    own = final_candidate(trial, config.FinalizeConfig(epochs=10, lr=0.02, distill_alpha=0.0))
    assert (own.finetune.lr, own.finetune.distill_alpha, own.finetune.epochs) == (0.02, 0.0, 10)
    assert own.plan is plan
    kept = final_candidate(trial, config.FinalizeConfig(epochs=None, lr=0.01))
    assert (kept.finetune.epochs, kept.finetune.train_fraction, kept.finetune.lr) == (1, 0.2, 0.01)
    assert kept.finetune.ema_decay == 0.0  # the trial's own: off
    assert final_candidate(trial, config.FinalizeConfig(ema_decay=0.999)).finetune.ema_decay == 0.999
    with pytest.raises(ValueError):
        config.FinalizeConfig(distill_alpha=1.5)
    with pytest.raises(ValueError):
        config.FinalizeConfig(ema_decay=1.0)


def test_a_front_member_keeping_the_same_channels_as_an_earlier_one_is_finalized_once() -> None:
    from autoprune.search import TrialRecord
    from autoprune.workflow._members import copies_of_earlier

    def trial(number: int, kept: dict[str, int], accuracy: float) -> TrialRecord:
        return TrialRecord(number, "complete", {}, metrics={"val_accuracy": accuracy}, kept=kept)

    members = [
        trial(19, {"a": 8, "b": 16}, 0.90),  # other ratios, the same channels and score as trial 7
        trial(7, {"a": 8, "b": 16}, 0.90),
        trial(9, {"a": 8, "b": 16}, 0.89),  # the same channels, another recipe: its own model
        trial(3, {"a": 4, "b": 16}, 0.90),
        trial(5, {}, 0.90),  # nothing known about its channels: kept
    ]
    assert copies_of_earlier(members) == {19: 7}
    assert copies_of_earlier(members[2:]) == {}


def test_trials_of_one_architecture_share_its_median_latency_on_the_front() -> None:
    from autoprune.search import DenseReference, Objectives, TrialRecord, architecture_latency, front_of

    def trial(
        number: int, kept: dict[str, int], accuracy: float, latency: float, state: str = "complete"
    ) -> TrialRecord:
        metrics = {"val_accuracy": accuracy, "macs": 100.0 * sum(kept.values()), "latency_ratio": latency}
        return TrialRecord(number, state, {}, metrics=metrics, kept=kept)

    small, large = {"a": 4, "b": 8}, {"a": 8, "b": 16}
    records = [
        trial(0, small, 0.90, 0.50),
        trial(1, small, 0.88, 0.44),  # the same model, a worse recipe and a lucky timing
        trial(2, small, 0.89, 0.53),
        trial(3, large, 0.95, 0.80),
        trial(4, {}, 0.80, 0.30),  # channels unknown: its own latency
        trial(5, large, 0.0, 0.10, state="failed"),  # failed: no measurement to pool
    ]
    assert architecture_latency(records) == {0: 0.50, 1: 0.50, 2: 0.50, 3: 0.80}
    dense = DenseReference(val_accuracy=0.96, test_accuracy=0.96, params=1, macs=2400, size_bytes=1, latency_ms=1.0)
    objectives = Objectives(["accuracy", "macs", "latency_ms"])
    front, ranks = front_of(records, objectives, dense)
    assert front == [0, 3, 4]  # trial 1 is trial 0's model, less accurate: its timing no longer saves it
    assert ranks[1] > 1 and ranks[2] > 1
    assert front_of(records, objectives, dense, pool_latency=False)[0] == [0, 1, 3, 4]  # each trial's own timing
    assert front_of(records, Objectives(["accuracy", "macs"]), dense)[0] == [
        0,
        3,
        4,
    ]  # no latency objective: nothing pooled
