"""The contract every zoo model must meet under the engine, in one parametrized place."""

from __future__ import annotations

import copy
import itertools
import json
import random

import pytest
import torch

from autoprune import engine

from ..conftest import DIGITS_SHAPE


def _inputs(count: int = 4) -> torch.Tensor:
    return torch.randn(count, *DIGITS_SHAPE, generator=torch.Generator().manual_seed(42))


def _pruned(model: torch.nn.Module, plan: engine.PrunePlan) -> torch.nn.Module:
    clone = copy.deepcopy(model)
    engine.apply_plan(clone, plan, DIGITS_SHAPE)
    return clone.eval()


def _random_plan(model: torch.nn.Module, seed: int = 7) -> engine.PrunePlan:
    rng = random.Random(seed)
    groups = engine.discover(model, DIGITS_SHAPE)
    return engine.PrunePlan(ratios={g.name: round(rng.uniform(0.05, 0.8), 2) for g in groups})


def test_zero_ratio_plan_leaves_outputs_unchanged(zoo_model: torch.nn.Module) -> None:
    plan = engine.PrunePlan.uniform(engine.discover(zoo_model, DIGITS_SHAPE), 0.0)
    pruned = _pruned(zoo_model, plan)
    x = _inputs()
    assert torch.equal(pruned(x), zoo_model(x))
    assert engine.count_params(pruned) == engine.count_params(zoo_model)


@pytest.mark.parametrize("kind", ["uniform_half", "random_non_uniform"])
def test_pruned_model_runs_forward_and_backward_and_is_smaller(zoo_model: torch.nn.Module, kind: str) -> None:
    groups = engine.discover(zoo_model, DIGITS_SHAPE)
    plan = engine.PrunePlan.uniform(groups, 0.5) if kind == "uniform_half" else _random_plan(zoo_model)
    pruned = _pruned(zoo_model, plan).train()
    x = _inputs(8)
    out = pruned(x)
    assert out.shape == (8, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in pruned.parameters() if p.requires_grad)
    assert engine.count_params(pruned) < engine.count_params(zoo_model)
    assert engine.count_macs(pruned, DIGITS_SHAPE) < engine.count_macs(zoo_model, DIGITS_SHAPE)


def test_channels_are_physically_removed(zoo_model: torch.nn.Module) -> None:
    groups = engine.discover(zoo_model, DIGITS_SHAPE)
    pruned = _pruned(zoo_model, engine.PrunePlan.uniform(groups, 0.5))
    for group in groups:
        module = pruned.get_submodule(group.name)
        width = module.out_channels if hasattr(module, "out_channels") else module.out_features
        assert width == group.size - group.size // 2, group.name


def test_macs_fall_monotonically_with_ratio(zoo_model: torch.nn.Module) -> None:
    groups = engine.discover(zoo_model, DIGITS_SHAPE)
    macs = [
        engine.count_macs(_pruned(zoo_model, engine.PrunePlan.uniform(groups, r)), DIGITS_SHAPE)
        for r in (0.0, 0.25, 0.5, 0.75)
    ]
    assert all(a > b for a, b in itertools.pairwise(macs)), macs


def test_plan_json_replay_gives_identical_model(zoo_model: torch.nn.Module) -> None:
    plan = _random_plan(zoo_model)
    replayed = engine.PrunePlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert replayed == plan
    first, second = _pruned(zoo_model, plan), _pruned(zoo_model, replayed)
    x = _inputs()
    assert torch.equal(first(x), second(x))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_rebuild_from_resolved_plan_and_state_dict(zoo_model: torch.nn.Module, tmp_path) -> None:
    plan = _random_plan(zoo_model)
    clone = copy.deepcopy(zoo_model)
    outcome = engine.apply_plan(clone, plan, DIGITS_SHAPE)
    clone.eval()
    engine.save_pruned(clone, plan.resolved(outcome.kept), tmp_path, input_shape=DIGITS_SHAPE)

    def fresh_architecture() -> torch.nn.Module:  # same architecture, different weights
        fresh = copy.deepcopy(zoo_model)
        with torch.no_grad():
            for parameter in fresh.parameters():
                parameter.normal_()
        return fresh

    rebuilt = engine.load_pruned(tmp_path, fresh_architecture)
    x = _inputs()
    assert torch.equal(rebuilt(x), clone(x))


def test_onnx_export_matches_torch(zoo_model: torch.nn.Module, tmp_path) -> None:
    pruned = _pruned(zoo_model, _random_plan(zoo_model))
    difference = engine.export_onnx(pruned, DIGITS_SHAPE, tmp_path / "model.onnx")
    assert difference <= 1e-4
    assert (tmp_path / "model.onnx").stat().st_size > 0


def test_evaluates_alike_with_channels_last_inputs(zoo_model: torch.nn.Module, digits) -> None:
    pruned = _pruned(zoo_model, _random_plan(zoo_model))
    for model in (zoo_model.eval(), pruned):
        plain = engine.evaluate(model, digits.with_layout(False).val)
        fast = engine.evaluate(model, digits.with_layout(True).val)
        assert plain.accuracy == fast.accuracy and abs(plain.loss - fast.loss) < 1e-5
