"""Pruning specifics: residual stages, importance ranking, threshold mode and bad plans."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from autoprune import config, engine, models
from autoprune.errors import ConfigError, ModelError, PruningError

from ..conftest import DIGITS_SHAPE


def _widths(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


@pytest.mark.parametrize("depth", [20, 32])
def test_resnet_stage_blocks_end_at_the_same_width(depth: int) -> None:
    model = models.build(config.ResNetModel(arch="resnet", depth=depth), DIGITS_SHAPE, 10).eval()
    groups = engine.discover(model, DIGITS_SHAPE)
    plan = engine.PrunePlan(ratios={g.name: 0.1 + 0.05 * (i % 8) for i, g in enumerate(groups)})
    engine.apply_plan(model, plan, DIGITS_SHAPE)
    for stage in model.stages:
        blocks = list(getattr(model, stage))
        ends = {block.conv2.out_channels for block in blocks} | {block.bn2.num_features for block in blocks}
        ends |= {block.shortcut[0].out_channels for block in blocks if isinstance(block.shortcut, nn.Sequential)}
        assert len(ends) == 1, (stage, ends)
    assert model(torch.randn(2, *DIGITS_SHAPE)).shape == (2, 10)


def test_mobilenet_residual_projections_stay_coupled() -> None:
    model = models.build(config.MobileNetV2Model(arch="mobilenet_v2"), DIGITS_SHAPE, 10).eval()
    groups = engine.discover(model, DIGITS_SHAPE)
    engine.apply_plan(model, engine.PrunePlan.uniform(groups, 0.4), DIGITS_SHAPE)
    residual_blocks = [block for block in model.features if getattr(block, "use_residual", False)]
    assert residual_blocks
    for block in residual_blocks:
        first_conv = block.block[0][0]
        projection = block.block[-2]
        assert projection.out_channels == first_conv.in_channels  # both sides of the add shrank together
        depthwise = block.block[-3][0]
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
    assert model(torch.randn(2, *DIGITS_SHAPE)).shape == (2, 10)


def test_classifier_outputs_are_never_a_group() -> None:
    model = models.build(config.CNNModel(arch="cnn"), DIGITS_SHAPE, 10)
    graph = engine.GroupGraph(model, DIGITS_SHAPE)
    assert [g.name for g in graph.groups] == ["features.0", "features.4"]
    assert ("classifier", "its outputs are the model's outputs") in graph.unprunable()


def _cnn_with_dead_channels(dead: list[int]) -> nn.Module:
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16], batch_norm=False), DIGITS_SHAPE, 10)
    with torch.no_grad():
        first = model.features[0]
        first.weight[dead] *= 1e-3
        first.bias[dead] *= 1e-3
        model.features[3].weight[:, dead] *= 1e-3  # and their uses in the next layer
    return model.eval()


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_magnitude_criteria_remove_the_weakest_channels(criterion: str) -> None:
    model = _cnn_with_dead_channels([1, 5])
    outcome = engine.apply_plan(
        model, engine.PrunePlan(ratios={"features.0": 0.25}, importance=criterion), DIGITS_SHAPE
    )
    assert outcome.removed == {"features.0": [1, 5]}
    assert model.features[0].out_channels == 6


def test_threshold_mode_removes_channels_below_normalised_importance() -> None:
    model = _cnn_with_dead_channels([0, 2, 3])
    plan = engine.PrunePlan(threshold=0.05, importance="l1")
    outcome = engine.apply_plan(model, plan, DIGITS_SHAPE)
    assert outcome.removed["features.0"] == [0, 2, 3]
    assert outcome.kept["features.0"] == 5


def test_random_criterion_is_seeded() -> None:
    model = models.build(config.CNNModel(arch="cnn"), DIGITS_SHAPE, 10).eval()
    removed = [
        engine.apply_plan(
            copy.deepcopy(model),
            engine.PrunePlan(ratios={"features.4": 0.5}, importance="random", seed=s),
            DIGITS_SHAPE,
        ).removed
        for s in (1, 1, 2)
    ]
    assert removed[0] == removed[1] != removed[2]


def test_taylor_needs_batches_and_uses_them(digits) -> None:
    model = models.build(config.CNNModel(arch="cnn"), DIGITS_SHAPE, 10).eval()
    plan = engine.PrunePlan(ratios={"features.0": 0.5}, importance="taylor")
    with pytest.raises(PruningError, match="taylor criterion needs labelled batches"):
        engine.apply_plan(copy.deepcopy(model), plan, DIGITS_SHAPE)
    batches = list(digits.train.batches(64))[:2]
    outcome = engine.apply_plan(model, plan, DIGITS_SHAPE, batches=batches)
    assert outcome.kept["features.0"] == 16
    assert all(p.grad is None for p in model.parameters())


def test_bn_scale_falls_back_to_l1_without_batchnorm() -> None:
    model = _cnn_with_dead_channels([4])
    outcome = engine.apply_plan(model, engine.PrunePlan(keep={"features.0": 7}, importance="bn_scale"), DIGITS_SHAPE)
    assert outcome.removed == {"features.0": [4]}


def test_round_to_and_min_channels() -> None:
    plan = engine.PrunePlan(ratios={"g": 0.7}, round_to=8, min_channels=4)
    assert plan.kept_channels("g", 64) == 24  # 64 - floor(44.8) = 20 -> nearest multiple of 8
    assert engine.PrunePlan(ratios={"g": 0.95}, min_channels=4).kept_channels("g", 32) == 4
    assert engine.PrunePlan(ratios={"g": 0.99}).kept_channels("g", 8) == 1


def test_groupnorm_and_attention_channels_shrink_alike_in_every_block() -> None:
    from tests import user_models

    model = user_models.groupnorm_concat((1, 8, 8), 10).eval()
    assert {g.name: g.blocks for g in engine.discover(model, DIGITS_SHAPE)} == {
        "stem.0": 1,
        "a.0": 1,
        "b.0": 1,
        "mix": 4,
    }
    outcome = engine.apply_plan(model, engine.PrunePlan(ratios={"mix": 0.3}), DIGITS_SHAPE)
    assert outcome.kept["mix"] == 24  # 32 - floor(9.6) = 23, to the nearest multiple of the 4 GroupNorm groups
    per_block = [
        {i - block * 8 for i in outcome.removed["mix"] if block * 8 <= i < (block + 1) * 8} for block in range(4)
    ]
    assert len(per_block[0]) == 2 and all(
        positions == per_block[0] for positions in per_block
    )  # the same 2 of 8 in each
    assert (model.norm.num_channels, model.norm.num_groups) == (24, 4)
    assert model(torch.randn(3, *DIGITS_SHAPE)).shape == (3, 10)

    attention = user_models.patch_attention((1, 8, 8), 10).eval()
    assert [g.blocks for g in engine.discover(attention, DIGITS_SHAPE)] == [4, 1]  # patch (with the 4 heads), mlp.0
    engine.apply_plan(attention, engine.PrunePlan(ratios={"patch": 0.45}), DIGITS_SHAPE)
    assert (attention.attn.embed_dim, attention.attn.head_dim) == (20, 5)  # 32 - 14 = 18: 4.5 per head, half up
    assert attention(torch.randn(3, *DIGITS_SHAPE)).shape == (3, 10)


class _GroupedAndChunked(nn.Module):
    """A 1x1 conv into a 4-group conv, and a conv whose output is chunked in two halves."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(1, 32, 1)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.halves = nn.Conv2d(32, 16, 3, padding=1)
        self.left, self.right = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.grouped(torch.relu(self.expand(x))))
        a, b = torch.chunk(torch.relu(self.halves(y)), 2, dim=1)
        return self.head(torch.cat([self.left(a), self.right(b)], dim=1).mean((2, 3)))


def test_grouped_convs_and_chunks_lose_the_same_dead_channels_in_every_block_and_nothing_else() -> None:
    torch.manual_seed(0)
    model = _GroupedAndChunked().eval()
    with torch.no_grad():  # dead channels: position 3 of each of expand's 4 blocks, position 5 of each half of halves
        for module, channels in ((model.expand, [3, 11, 19, 27]), (model.halves, [5, 13])):
            module.weight[channels] = 0.0
            module.bias[channels] = -1.0  # ReLU makes them exactly zero
        for reader, position in ((model.grouped, 3), (model.left, 5), (model.right, 5)):
            reader.weight[:, position] = 0.0  # and what reads them has nothing to lose: the lowest L1 by far
    blocks = {g.name: g.blocks for g in engine.discover(model, DIGITS_SHAPE)}
    assert (blocks["expand"], blocks["grouped"], blocks["halves"]) == (4, 4, 2)
    x = torch.randn(5, *DIGITS_SHAPE)
    expected = model(x)
    outcome = engine.apply_plan(model, engine.PrunePlan(keep={"expand": 28, "halves": 14}), DIGITS_SHAPE)
    assert outcome.removed == {"expand": [3, 11, 19, 27], "halves": [5, 13]}
    assert (model.grouped.in_channels, model.left.in_channels) == (28, 7)
    torch.testing.assert_close(model(x), expected)  # the grouped conv and both halves read the right channels


class _PartialBlocks(nn.Module):
    """A GroupNorm on one half of a chunk; a GroupNorm over a concatenation of two branches; a
    depthwise conv with a channel multiplier into a GroupNorm of one channel per group."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.half_norm = nn.Conv2d(1, 32, 3, padding=1), nn.GroupNorm(4, 16)
        self.left, self.right = nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 1)
        self.a, self.b, self.cat_norm = nn.Conv2d(32, 16, 1), nn.Conv2d(32, 16, 1), nn.GroupNorm(4, 32)
        self.pw, self.dw, self.unit_norm = (
            nn.Conv2d(32, 16, 1),
            nn.Conv2d(16, 32, 3, padding=1, groups=16),
            nn.GroupNorm(32, 32),
        )
        self.head = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = torch.chunk(self.conv(x), 2, dim=1)
        y = torch.cat([self.left(torch.relu(self.half_norm(left))), self.right(right)], dim=1)
        z = torch.relu(self.cat_norm(torch.cat([self.a(y), self.b(y)], dim=1)))
        w = torch.relu(self.unit_norm(self.dw(torch.relu(self.pw(y)))))
        return self.head(torch.cat([z, w], dim=1).mean((2, 3)))


def test_a_group_over_part_of_a_blocked_layer_is_held_whole_and_a_layer_over_part_of_a_group_sets_finer_blocks() -> (
    None
):
    model = _PartialBlocks().eval()
    graph = engine.GroupGraph(model, DIGITS_SHAPE)
    assert {g.name: (g.size, g.blocks) for g in graph.groups}["conv"] == (32, 8)  # 2 chunks x 4 GroupNorm blocks in one
    held = dict(graph.unprunable())
    for name, holder in (("a", "cat_norm"), ("b", "cat_norm"), ("pw", "dw"), ("dw", "unit_norm")):
        assert held[name] == f"shrinking it alone would unbalance the blocks of {holder}"
    for ratio in (0.1, 0.3, 0.6, 0.85):
        pruned = copy.deepcopy(model)
        outcome = engine.apply_plan(pruned, engine.PrunePlan(ratios={"conv": ratio}), DIGITS_SHAPE)
        assert outcome.kept["conv"] % 8 == 0 and pruned(torch.randn(2, *DIGITS_SHAPE)).shape == (2, 3)


def test_a_group_torch_pruning_miscounts_is_held_whole() -> None:
    class Remerged(nn.Module):  # a chunk concatenated back: Torch-Pruning's group counts the channels twice
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.mix, self.head = (
                nn.Conv2d(1, 32, 3, padding=1),
                nn.GroupNorm(4, 16),
                nn.Conv2d(32, 8, 1),
                nn.Linear(8, 3),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left, right = torch.chunk(self.conv(x), 2, dim=1)
            return self.head(self.mix(torch.cat([torch.relu(self.norm(left)), right], dim=1)).mean((2, 3)))

    graph = engine.GroupGraph(Remerged().eval(), DIGITS_SHAPE)
    assert [g.name for g in graph.groups] == ["mix"]
    assert dict(graph.unprunable())["conv"] == (
        "its 32 output channels are split and joined again (as in dual-path networks) into what Torch-Pruning "
        "counts as 64 channels, which it cannot map back to them; kept whole"
    )


def test_block_counts_round_half_up_and_respect_min_channels() -> None:
    assert engine.PrunePlan(ratios={"g": 0.3}).kept_channels("g", 32, blocks=4) == 24  # 23 -> 24
    assert engine.PrunePlan(ratios={"g": 0.35}).kept_channels("g", 32, blocks=4) == 20  # 21 -> 20
    assert (
        engine.PrunePlan(ratios={"g": 0.95}, min_channels=6).kept_channels("g", 32, blocks=4) == 8
    )  # at least 6: 2 per block
    assert engine.PrunePlan(ratios={"g": 0.99}).kept_channels("g", 32, blocks=4) == 4  # one channel per block at least
    assert engine.PrunePlan(ratios={"g": 0.0}).kept_channels("g", 32, blocks=4) == 32
    assert engine.PrunePlan(ratios={"g": 0.3}, round_to=8).kept_channels("g", 384, blocks=6) == 264  # multiples of 24
    assert engine.PrunePlan(ratios={"g": 0.5}, round_to=8, min_channels=30).kept_channels("g", 36, blocks=6) == 36
    assert engine.PrunePlan(keep={"g": 23}).kept_channels("g", 32, blocks=4) == 24  # an exact count too


# --- bad plans: one clear error naming the group or key --------------------------------------------


class _ConvGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.gru, self.head = (
            nn.Conv1d(2, 8, 3, padding=1),
            nn.GRU(8, 12, batch_first=True),
            nn.Linear(12, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(torch.relu(self.conv(x)).transpose(1, 2))
        return self.head(out[:, -1])


def test_a_layer_torch_pruning_cannot_follow_is_named() -> None:
    with pytest.raises(
        ModelError,
        match=r"Torch-Pruning cannot group the model's channels \(IndexError in \w+: .*\); "
        r"it has no pruning rule for gru \(GRU\)$",
    ):
        engine.discover(_ConvGRU().eval(), (2, 16))


def test_unknown_group_name_is_named_with_a_suggestion() -> None:
    model = models.build(config.CNNModel(arch="cnn"), DIGITS_SHAPE, 10)
    with pytest.raises(
        PruningError, match=r"group 'features.5', which this model does not have; did you mean 'features.4'\?"
    ):
        engine.apply_plan(model, engine.PrunePlan(ratios={"features.5": 0.5}), DIGITS_SHAPE)


@pytest.mark.parametrize("ratio", [1.0, 1.2, -0.1])
def test_ratio_outside_unit_interval(ratio: float) -> None:
    with pytest.raises(
        PruningError, match=rf"the ratio of group 'layer2.0.conv1' must be in \[0, 1\), but got {ratio}$"
    ):
        engine.PrunePlan(ratios={"layer2.0.conv1": ratio})


def test_plan_that_would_leave_zero_channels() -> None:
    with pytest.raises(
        PruningError, match=re.escape("'keep' count of group 'features.0' must be >= 1: keeping 0 channels")
    ):
        engine.PrunePlan(keep={"features.0": 0})
    with pytest.raises(PruningError, match="'min_channels' must be >= 1"):
        engine.PrunePlan(ratios={"features.0": 0.5}, min_channels=0)


def test_unknown_importance_and_bad_json() -> None:
    with pytest.raises(PruningError, match="importance must be one of l1, l2, bn_scale, taylor, random, but got 'l3'"):
        engine.PrunePlan(importance="l3")
    with pytest.raises(PruningError, match="must be a JSON object"):
        engine.PrunePlan.from_json("[1, 2]")
    with pytest.raises(PruningError, match="unknown prune plan field"):
        engine.PrunePlan.from_dict({"ratio": {}})


def test_factory_path_that_does_not_import() -> None:
    factory = config.FactoryModel(arch="factory", factory="no_such_package.models:build")
    with pytest.raises(ConfigError, match=r"model.factory: cannot import 'no_such_package.models'"):
        models.build(factory, DIGITS_SHAPE, 10)


def test_an_onnx_export_that_fixes_the_batch_size_is_a_model_error(tmp_path) -> None:
    class Sized(nn.Module):  # len() makes the batch a constant when torch.export traces it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.head(y.reshape(len(y), -1))

    with pytest.raises(
        ModelError, match=r"the ONNX export fixed the batch size at 2: .*len\(x\) is the usual cause"
    ) as caught:
        engine.export_onnx(Sized().eval(), (1, 8, 8), tmp_path / "sized.onnx")
    assert caught.value.key == "model" and caught.value.message.startswith("the ONNX export fixed")
