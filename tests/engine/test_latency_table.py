"""The latency table: one entry per layer configuration and input shape, measured when first needed,
kept on disk; a model's latency the fitted sum of its layers'."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from torch import nn

from autoprune import config, engine, models

from ..conftest import DIGITS_SHAPE

QUICK = engine.LatencyConfig(warmup=2, repeats=5, mode="table")


def _cnn():
    return models.build(config.CNNModel(arch="cnn", widths=[8, 16]), DIGITS_SHAPE, 10).eval()


def test_a_model_is_read_as_the_leaf_layers_its_forward_pass_runs() -> None:
    layers = engine.LatencyTable(QUICK).layers(_cnn(), DIGITS_SHAPE)
    kinds = [module.__class__.__name__ for _, module, _ in layers]
    assert kinds[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] and kinds[-1] == "Linear"
    first_key, _, first_shape = layers[0]
    assert first_shape == DIGITS_SHAPE and "Conv2d(1, 8, kernel_size=(3, 3)" in first_key


def test_entries_are_measured_once_and_kept_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    table = engine.LatencyTable(QUICK, path)
    dense = _cnn()
    total = table.layer_sum(dense, DIGITS_SHAPE)
    assert total > 0 and table.measured == len(table.entries) > 0
    measured = table.measured
    assert table.layer_sum(dense, DIGITS_SHAPE) == total and table.measured == measured  # no entry measured twice
    table.save()
    again = engine.LatencyTable(QUICK, path)
    assert again.entries == table.entries and again.measured == 0
    assert again.probe_ms == table.probe_ms > 0  # the unit of its entries
    assert json.loads(path.read_text())["runtime"] == "torch"


def test_an_entry_is_its_ratio_to_the_probe_so_a_slower_second_moves_no_entry(monkeypatch) -> None:
    """The layer takes twice the probe's time call for call while the machine slows down 3x: the
    entry is twice the probe's latency when the table was begun."""
    calls: list[list[str]] = []

    def interleave(calls_by_name: dict, warmup: int, repeats: int, *, timer=None) -> dict:
        calls.append(list(calls_by_name))
        if list(calls_by_name) == ["probe"]:
            return {"probe": [1e-3] * repeats}
        slowing = [1e-3 * (1 + 2 * i / repeats) for i in range(repeats)]
        return {"layer": [2 * t for t in slowing], "probe": slowing}

    monkeypatch.setattr("autoprune.engine._latency_table.interleave", interleave)
    table = engine.LatencyTable(QUICK)
    assert table.measure_layer(nn.Conv2d(1, 8, 3), (1, 8, 8)) == pytest.approx(2.0)
    assert table.measure_layer(nn.ReLU(), (8,)) == pytest.approx(2.0)
    assert calls == [["probe"], ["layer", "probe"], ["layer", "probe"]]  # the probe alone once per table
    assert table.probe_ms == pytest.approx(1.0)


def test_a_table_kept_before_the_probe_is_begun_again(tmp_path: Path) -> None:
    """Its entries were timed alone, in another unit than a probe's."""
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"runtime": "torch", "batch_size": 1, "entries": {"Conv2d|x|(1,)": 0.5}}))
    table = engine.LatencyTable(QUICK, path)
    assert table.entries == {} and table.probe_ms is None


def test_a_pruned_model_needs_only_its_new_layer_configurations(tmp_path: Path) -> None:
    table = engine.LatencyTable(QUICK)
    dense = _cnn()
    table.layer_sum(dense, DIGITS_SHAPE)
    before = set(table.entries)
    pruned = copy.deepcopy(dense)
    groups = engine.discover(dense, DIGITS_SHAPE)
    engine.apply_plan(pruned, engine.PrunePlan(ratios={groups[-1].name: 0.5}), DIGITS_SHAPE)
    table.layer_sum(pruned, DIGITS_SHAPE)
    new = set(table.entries) - before
    assert any(key.startswith("Conv2d|Conv2d(8, 8,") for key in new)  # the pruned conv, 16 -> 8 channels
    assert not any(key.startswith("Conv2d|Conv2d(1, 8,") for key in new)  # the first conv is the same: reused
    assert len(new) < len(engine.LatencyTable(QUICK).layers(pruned, DIGITS_SHAPE))


def test_the_fit_maps_the_layer_sums_onto_whole_model_latencies() -> None:
    table = engine.LatencyTable(QUICK.replace(repeats=20))
    dense = models.build(config.CNNModel(arch="cnn", widths=[32, 64]), DIGITS_SHAPE, 10).eval()
    pruned = []
    for ratio in (0.25, 0.5, 0.75):
        model = copy.deepcopy(dense)
        engine.apply_plan(model, engine.PrunePlan.uniform(engine.discover(dense, DIGITS_SHAPE), ratio), DIGITS_SHAPE)
        pruned.append(model.eval())
    table.fit([dense, *pruned], DIGITS_SHAPE)
    assert table.scale >= 0
    predicted = [table.predict(m, DIGITS_SHAPE) for m in (dense, *pruned)]
    assert all(p > 0 for p in predicted)


def test_the_fit_measures_each_model_beside_the_dense_one_and_uses_their_ratios(monkeypatch) -> None:
    """A slower second of the machine (the dense model at 2-5 ms in its pairs) moves no point: each
    model counts as the mean of its ratios to the dense model in its pairs, one per pass, times the
    dense model's median."""
    dense, *pruned = (nn.Linear(4, 4) for _ in range(4))
    ratios = {id(m): r for m, r in zip(pruned, (0.75, 0.5, 0.25))}
    windows = iter((2.0, 4.0, 3.0, 5.0, 3.0, 2.0))
    calls = []

    def pair(models: dict, shape, config) -> dict:
        calls.append(list(models.values()))
        dense_ms = next(windows)
        return {"dense": dense_ms, "model": ratios[id(models["model"])] * dense_ms}

    monkeypatch.setattr("autoprune.engine._latency_table.measure_latency", pair)
    table = engine.LatencyTable(QUICK)
    sums = {id(dense): 10.0, **{id(m): 10.0 * r for m, r in zip(pruned, (0.75, 0.5, 0.25))}}
    monkeypatch.setattr(table, "layer_sum", lambda model, shape: sums[id(model)])
    table.fit([dense, *pruned], (4,))
    assert calls == [[dense, m] for m in pruned] * engine.FIT_PASSES
    assert table.scale == pytest.approx(0.3) and table.constant == pytest.approx(0.0, abs=1e-9)


def test_rank_agreement_is_spearman_and_the_median_relative_error() -> None:
    correlation, error = engine.rank_agreement({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.1, "b": 2.0, "c": 2.5})
    assert correlation == pytest.approx(1.0) and error == pytest.approx(0.1 / 1.1)
    assert engine.rank_agreement({"a": 1.0}, {"a": 1.0})[0] != engine.rank_agreement({"a": 1.0}, {"a": 1.0})[0]  # NaN


def test_the_table_is_kept_per_runtime_and_batch_size() -> None:
    assert engine.machine_key(QUICK) == engine.machine_key(QUICK.replace(repeats=9))
    assert engine.machine_key(QUICK) != engine.machine_key(QUICK.replace(batch_size=8))
    assert engine.machine_key(QUICK) != engine.machine_key(QUICK.replace(runtime="onnxruntime"))


def test_an_onnxruntime_entry_takes_the_quick_exporter_and_the_usual_one_when_it_fails(monkeypatch) -> None:
    """torch.export takes about a second per layer and a table measures hundreds of layers."""
    table = engine.LatencyTable(QUICK.replace(runtime="onnxruntime"))
    assert table.measure_layer(nn.Conv2d(1, 8, 3), (1, 8, 8)) > 0
    assert table.probe_ms is not None and table.probe_ms > 0  # timed beside the probe, in onnxruntime too
    usual = []

    def refuse(*args, **kwargs) -> None:
        raise RuntimeError("not this layer")

    def measure_latency(models: dict, shape, config, device=None) -> dict:
        usual.append((list(models), config.runtime))
        return {"layer": 1.5}

    monkeypatch.setattr("torch.onnx.export", refuse)
    monkeypatch.setattr("autoprune.engine._latency_table.measure_latency", measure_latency)
    assert table.measure_layer(nn.ReLU(), (8,)) == 1.5
    assert usual == [(["layer"], "onnxruntime")]


def test_the_fit_prunes_as_the_search_rounds_its_widths(monkeypatch) -> None:
    """The uniform prunings the fit measures keep widths rounded as the search's candidates are
    (off the kernels' multiples a model runs slower than its layers add up to)."""
    from autoprune.workflow._latency import fitted_table

    fitted: list[list[nn.Module]] = []
    monkeypatch.setattr(engine.LatencyTable, "fit", lambda self, models, shape: fitted.append(list(models)))
    dense = models.build(config.CNNModel(arch="cnn", widths=[32, 48]), DIGITS_SHAPE, 10).eval()

    def widths(round_to: int | None) -> list[list[int]]:
        fitted.clear()
        fitted_table(engine.LatencyTable(QUICK), dense, DIGITS_SHAPE, config.PruningSpace(round_to=round_to))
        return [[m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] for model in fitted[0][1:]]

    assert any(w % 8 for model in widths(None) for w in model)  # 0.25 of 32 and 48 keeps 24 and 36
    assert all(w % 8 == 0 for model in widths(8) for w in model)
