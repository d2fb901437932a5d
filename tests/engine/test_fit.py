"""`FitToLimit` (search.fit_to_limit): a plan's ratios scaled by one factor until the pruned model just
fits the size limits, checked against pruned copies counted independently and a brute-force scan."""

from __future__ import annotations

import copy

import pytest
import torch

from autoprune import config, engine, models

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def dense() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(config.CNNModel(arch="cnn", widths=[8, 16, 32]), SHAPE, 10).eval()


@pytest.fixture(scope="module")
def groups(dense: torch.nn.Module) -> list[engine.Group]:
    return engine.discover(dense, SHAPE)


def _costs(dense: torch.nn.Module, plan: engine.PrunePlan) -> dict[str, int]:
    pruned = copy.deepcopy(dense)
    engine.apply_plan(pruned, plan, SHAPE)
    return {"params": engine.count_params(pruned), "macs": engine.count_macs(pruned, SHAPE)}


def _fit(
    dense: torch.nn.Module, groups: list[engine.Group], limits: dict[str, float], cap: float = 0.9
) -> engine.FitToLimit:
    return engine.FitToLimit(dense, SHAPE, groups, limits, {group.name: cap for group in groups})


def test_a_fitted_plan_keeps_its_shape_and_is_the_largest_of_that_shape_within_the_limit(
    dense: torch.nn.Module, groups: list[engine.Group]
) -> None:
    limit = 0.3 * engine.count_params(dense)
    shape = dict(zip([g.name for g in groups], [0.1, 0.4, 0.7], strict=True))  # early layers wide
    fitted = _fit(dense, groups, {"params": limit})(engine.PrunePlan(ratios=shape, importance="l2", round_to=None))

    assert fitted.importance == "l2"  # only the ratios change
    assert _costs(dense, fitted)["params"] <= limit
    ratios = [fitted.ratios.get(g.name, 0.0) for g in groups]
    assert ratios == sorted(ratios) and ratios[0] < ratios[-1]  # the shape is kept: conv1 pruned least
    # brute force: the smallest factor of the same shape whose model fits keeps the same channels
    sizes = {g.name: g.size for g in groups}
    seen = set()
    for factor in [i / 1000 for i in range(1, 1300)]:
        plan = engine.PrunePlan(ratios={name: min(ratio * factor, 0.9) for name, ratio in shape.items()})
        kept = {name: plan.kept_channels(name, size) for name, size in sizes.items()}
        if tuple(kept.values()) not in seen and _costs(dense, plan)["params"] <= limit:
            break
        seen.add(tuple(kept.values()))
    assert {name: fitted.kept_channels(name, size) for name, size in sizes.items()} == kept


def test_every_limit_holds_and_the_tightest_one_decides(dense: torch.nn.Module, groups: list[engine.Group]) -> None:
    dense_costs = _costs(dense, engine.PrunePlan())
    limits = {"params": 0.6 * dense_costs["params"], "macs": 0.25 * dense_costs["macs"]}
    fitted = _fit(dense, groups, limits)(engine.PrunePlan.uniform(groups, 0.5))
    costs = _costs(dense, fitted)
    assert costs["params"] <= limits["params"] and costs["macs"] <= limits["macs"]
    ratios = fitted.ratios.values()  # a uniform plan stays uniform, to within one channel of the smallest group
    assert len(ratios) == len(groups) and max(ratios) - min(ratios) < 1 / min(g.size for g in groups)


def test_a_limit_the_dense_model_meets_prunes_nothing_and_one_out_of_reach_stops_at_the_caps(
    dense: torch.nn.Module, groups: list[engine.Group]
) -> None:
    plan = engine.PrunePlan.uniform(groups, 0.5)
    assert _fit(dense, groups, {"params": engine.count_params(dense)})(plan).ratios == {}
    capped = _fit(dense, groups, {"params": 10}, cap=0.5)(engine.PrunePlan.uniform(groups, 0.2))
    assert all(ratio <= 0.5 for ratio in capped.ratios.values())
    assert capped.kept_channels(groups[0].name, groups[0].size) == groups[0].size // 2  # at its cap, not beyond


def test_a_plan_that_prunes_nothing_is_fitted_as_a_uniform_one_and_round_to_holds(
    dense: torch.nn.Module, groups: list[engine.Group]
) -> None:
    limit = 0.4 * engine.count_params(dense)
    fitted = _fit(dense, groups, {"params": limit})(engine.PrunePlan(round_to=4))
    assert _costs(dense, fitted)["params"] <= limit
    kept = [fitted.kept_channels(g.name, g.size) for g in groups]
    assert all(count % 4 == 0 for count in kept) and all(count < g.size for count, g in zip(kept, groups, strict=True))


def test_a_fitted_plan_keeps_every_groupnorm_block_alike() -> None:
    from tests import user_models

    model = user_models.groupnorm_concat((1, 8, 8), 10).eval()
    groups = engine.discover(model, SHAPE)
    limit = 0.75 * engine.count_params(model)
    fit = engine.FitToLimit(model, SHAPE, groups, {"params": limit}, {group.name: 0.9 for group in groups})
    fitted = fit(engine.PrunePlan(ratios={"mix": 0.6, "a.0": 0.2}))
    assert fit.kept(fitted)["mix"] % 4 == 0 and fit.kept(fitted)["mix"] < 32
    assert _costs(model, fitted)["params"] == fit.costs(fit.kept(fitted))["params"] <= limit  # counted as it prunes


@pytest.mark.parametrize("limit", [170, 230, 300])
def test_a_fitted_plan_with_round_to_and_blocks_replays_to_the_counts_it_was_fitted_with(limit: int) -> None:
    class Normed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.head = (
                torch.nn.Conv2d(1, 36, 3, padding=1),
                torch.nn.GroupNorm(6, 36),
                torch.nn.Linear(36, 3),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.norm(self.conv(x))).mean((2, 3)))

    model = Normed().eval()
    groups = engine.discover(model, SHAPE)
    fit = engine.FitToLimit(model, SHAPE, groups, {"params": limit}, {"conv": 0.9})
    fitted = fit(engine.PrunePlan(ratios={"conv": 0.5}, round_to=8, min_channels=8))
    pruned = copy.deepcopy(model)
    assert engine.apply_plan(pruned, fitted, SHAPE).kept == fit.kept(fitted)  # steps of lcm(8, 6) = 24: 24 or all 36
    assert engine.count_params(pruned) <= limit or fit.kept(fitted)["conv"] == 24  # 24 is as small as the steps go


def test_fitting_needs_a_size_limit(dense: torch.nn.Module, groups: list[engine.Group]) -> None:
    with pytest.raises(ValueError, match="needs a limit"):
        _fit(dense, groups, {"latency_ms": 1.0})
