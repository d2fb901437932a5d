"""Nested channels, the one-shot supernet's sandwich step and BatchNorm recalibration."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from autoprune import config, engine, models
from autoprune.errors import PruningError

from ..conftest import DIGITS_SHAPE


def _nested(model: nn.Module, importance: str = "l1") -> engine.NestedChannels:
    order = engine.nested_order(engine.GroupGraph(copy.deepcopy(model), DIGITS_SHAPE), importance)
    return engine.NestedChannels(model, DIGITS_SHAPE, order)


def test_a_width_keeps_exactly_the_top_channels_of_each_group_by_the_criterion(zoo_model: nn.Module) -> None:
    nested = _nested(zoo_model)
    graph = engine.GroupGraph(copy.deepcopy(zoo_model), DIGITS_SHAPE)
    scorer = engine._importance.importance_fn("l1")
    for group in graph.groups:
        scores = scorer(group.name, graph.tp_group(group.name, range(group.size)))
        order = nested.order[group.name]
        assert sorted(order) == list(range(group.size))
        if group.blocks == 1:  # most important first (ties by index)
            assert [float(scores[c]) for c in order] == sorted((float(v) for v in scores), reverse=True)
    plan = engine.PrunePlan.uniform(nested.groups, 0.5)
    kept = nested.kept(plan)
    outcome = engine.apply_plan(copy.deepcopy(zoo_model), nested.plan(plan), DIGITS_SHAPE)
    for name, removed in outcome.removed.items():
        assert sorted(removed) == sorted(nested.order[name][kept[name] :])  # the first k stay, the rest go


_NOT_ZERO_PRESERVING = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm, nn.MultiheadAttention)


@pytest.mark.parametrize("ratio", [0.25, 0.6])
def test_the_extracted_subnet_computes_what_the_masked_supernet_does(zoo_model: nn.Module, ratio: float) -> None:
    nested = _nested(zoo_model)
    plan = engine.PrunePlan.uniform(nested.groups, ratio)
    inputs = torch.randn(6, *DIGITS_SHAPE, generator=torch.Generator().manual_seed(1))
    normalises_channels = any(isinstance(m, _NOT_ZERO_PRESERVING) for m in zoo_model.modules())
    assert bool(nested.inexact) == normalises_channels  # said exactly where masking is only close to removal
    if not nested.inexact:
        assert nested.mismatch(plan, inputs) < 1e-4


def test_masking_leaves_no_hook_behind_and_copies_made_later_carry_none() -> None:
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), DIGITS_SHAPE, 10).eval()
    nested = _nested(model)
    with nested.masking():
        assert any(module._forward_hooks for module in model.modules())
    assert not any(module._forward_hooks for module in copy.deepcopy(model).modules())


def test_a_sandwich_step_trains_the_widths_it_samples_and_leaves_the_others(digits) -> None:
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), DIGITS_SHAPE, 10)
    nested = _nested(model.eval())
    groups = list(nested.groups.values())
    half, quarter = engine.PrunePlan.uniform(groups, 0.5), engine.PrunePlan.uniform(groups, 0.75)
    choice = engine.SubnetChoice(largest=half, smallest=quarter, sample=lambda g: quarter, random=0)
    first = groups[0].name
    conv = model.get_submodule(first)
    before = conv.weight.detach().clone()
    recipe = engine.FinetuneConfig(epochs=1, lr=0.1, batch_size=256, temperature=1.0, weight_decay=0.0)
    calibration = [digits.train.x[:64]]
    engine.train_supernet(nested, digits, recipe, choice, calibration=calibration)
    changed = (conv.weight.detach() - before).flatten(1).abs().amax(dim=1) > 0
    inside = nested.order[first][: nested.kept(half)[first]]
    assert changed[inside].all()  # the largest sampled subnet's channels were trained
    assert not changed[[c for c in range(groups[0].size) if c not in inside]].any()  # channels no subnet kept were not


def test_calibration_changes_only_batchnorm_running_statistics(trained_cnn: nn.Module, digits) -> None:
    model = copy.deepcopy(trained_cnn)
    engine.apply_plan(model, engine.PrunePlan.uniform(engine.discover(model, DIGITS_SHAPE), 0.5), DIGITS_SHAPE)
    model.train()
    before = copy.deepcopy(model.state_dict())
    assert engine.recalibrate_batchnorm(model, [digits.train.x[:64], digits.train.x[64:128]]) == 2
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.endswith(("running_mean", "running_var", "num_batches_tracked")) for name in changed)
    assert model.training  # given back in the mode it was in
    assert all(layer.momentum == 0.1 for layer in engine.batchnorm_layers(model))


def test_recalibrated_accuracy_of_a_pruned_model_is_no_worse_than_its_stale_statistics(trained_cnn, digits) -> None:
    model = copy.deepcopy(trained_cnn)
    engine.apply_plan(model, engine.PrunePlan.uniform(engine.discover(model, DIGITS_SHAPE), 0.6), DIGITS_SHAPE)
    stale = engine.evaluate(model, digits.val).accuracy
    engine.recalibrate_batchnorm(model, [digits.train.x[i : i + 128] for i in range(0, 1024, 128)])
    assert engine.evaluate(model, digits.val).accuracy >= stale - 0.02


def test_an_order_that_is_not_a_ranking_of_the_groups_channels_is_refused() -> None:
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), DIGITS_SHAPE, 10).eval()
    name = engine.discover(model, DIGITS_SHAPE)[0].name
    plan = engine.PrunePlan(ratios={name: 0.5}, order={name: [0, 0, 1, 2, 3, 4, 5, 6]})
    with pytest.raises(PruningError, match="must rank each of its 8 channels once"):
        engine.apply_plan(model, plan, DIGITS_SHAPE)


def test_a_plan_with_an_order_round_trips_through_json() -> None:
    plan = engine.PrunePlan(ratios={"a": 0.5}, order={"a": [2, 0, 1, 3]})
    assert engine.PrunePlan.from_json(plan.to_json()) == plan
    assert "order" not in engine.PrunePlan(ratios={"a": 0.5}).to_dict()  # plans without one read as they did
