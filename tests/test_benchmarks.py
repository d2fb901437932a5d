"""The benchmark scripts: each imports and answers --help; the search-quality budget split is fair;
the recipe benchmark picks the architecture it says it picks."""

from __future__ import annotations

import copy
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from autoprune import config, engine, models

from .conftest import DIGITS_SHAPE

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A benchmark script imported as a module (its folder on sys.path for this test only, as the
    scripts import each other)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture
def recipe(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _benchmark("recipe", monkeypatch)


@pytest.fixture
def search_quality(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _benchmark("search_quality", monkeypatch)


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_answers_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize(("budget", "points"), [(8.4, 3), (80.3, 6), (13.6, 6), (6.0, 3), (2.0, 3), (0.4, 2)])
def test_baselines_spend_the_budget_autoprune_spent(search_quality: ModuleType, budget: float, points: int) -> None:
    epochs = search_quality.split_budget(budget, points)
    assert len(epochs) == points
    assert min(epochs) >= 1
    assert max(epochs) - min(epochs) <= 1  # as even as whole epochs allow
    assert epochs == sorted(epochs)  # the spare epochs go to the highest ratios
    assert sum(epochs) == max(points, round(budget))


def test_recipe_architecture_is_the_lightest_uniform_cut_within_the_params(recipe: ModuleType) -> None:
    dense = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), DIGITS_SHAPE, 10).eval()
    limit = engine.count_params(dense) // 3
    ratio, plan = recipe.uniform_within(dense, DIGITS_SHAPE, limit)
    groups = engine.discover(dense, DIGITS_SHAPE)
    assert (
        recipe.kept_params(dense, DIGITS_SHAPE, ratio) <= limit < recipe.kept_params(dense, DIGITS_SHAPE, ratio - 0.01)
    )
    assert plan.ratios == engine.PrunePlan.uniform(groups, ratio, importance="l1").ratios


def test_recipe_scratch_model_keeps_the_architecture_and_forgets_the_weights(recipe: ModuleType) -> None:
    dense = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), DIGITS_SHAPE, 10).eval()
    fresh = recipe.reinitialised(dense, seed=1)
    assert [p.shape for p in fresh.parameters()] == [p.shape for p in dense.parameters()]
    weights = [(a, b) for a, b in zip(dense.parameters(), fresh.parameters()) if a.dim() > 1]
    assert weights and all(not torch.equal(a, b) for a, b in weights)


def test_recipe_gradual_row_ends_at_the_one_shot_architecture(recipe: ModuleType, digits) -> None:
    dense = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), DIGITS_SHAPE, 10).eval()
    plan = engine.PrunePlan.uniform(engine.discover(dense, DIGITS_SHAPE), 0.5, importance="l1")
    one_shot = copy.deepcopy(dense)
    engine.apply_plan(one_shot, plan, DIGITS_SHAPE)
    finetune = engine.FinetuneConfig(epochs=3, batch_size=64, train_fraction=0.2)
    stepped = recipe.gradual(dense, plan, digits, finetune, steps=3)
    assert [p.shape for p in stepped.parameters()] == [p.shape for p in one_shot.parameters()]
    assert engine.count_params(stepped) < engine.count_params(dense)


@pytest.mark.slow
def test_the_gpu_check_runs_its_engine_part_on_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The prepared GPU check is the same code on any device: a dry run here keeps it working."""
    import json

    gpu_check = _benchmark("gpu_check", monkeypatch)
    assert gpu_check.main(["--device", "cpu", "--quick", "--skip", "pipeline", "zoo", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [row["model"] for row in results["engine"]] == ["cnn", "resnet20", "mobilenet_v2"]
    for row in results["engine"]:
        assert row["params"][1] < row["params"][0]  # pruned by half on the device
        assert row["finetune_samples_per_s"]["bf16"] > 0 and row["latency_ms"]["1"]["pruned"] > 0


def test_fronts_are_judged_against_the_baselines_that_ran(search_quality: ModuleType, capsys) -> None:
    reference = SimpleNamespace(test_accuracy=0.9, params=1000, macs=1000)

    def rows(accuracy: float) -> list[dict[str, float]]:
        return [{"test_accuracy": accuracy, "params": 100, "macs": 100, "latency_ratio": 0.5}]

    methods = {"autoprune": rows(0.88), "uniform L1": rows(0.86)}
    search_quality.report_fronts(methods, {"autoprune": 1.0, "uniform L1": 2.0}, reference, "params")
    out = capsys.readouterr().out
    assert "| uniform L1 |" in out and "Torch-Pruning" not in out
    ratio = next(
        line for line in out.splitlines() if line.startswith("autoprune / better baseline hypervolume, ref (1")
    )
    assert float(ratio.split(": ")[1].split()[0]) == pytest.approx((0.88 * 0.9) / (0.86 * 0.9), abs=1e-3)


def test_the_evaluator_benchmark_runs_end_to_end_with_its_default_cache(tmp_path: Path) -> None:
    """A few plans of each set, every evaluator: the dense model and the supernet are kept in the
    cache beside the store the pipeline names (here a temporary one), as ``autoprune run`` keeps them."""
    import json

    out = tmp_path / "plans.jsonl"
    command = [sys.executable, str(BENCHMARKS / "evaluator_quality.py"), "--plans", "4", "--truth-epochs", "1"]
    command += ["--supernet-epochs", "1", "--calibration", "2", "--out", str(out)]
    command += ["--set", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted({row["set"] for row in rows}) == ["equal-macs", "range"] and len(rows) == 8
    cache = tmp_path / "cache"
    assert any(cache.glob("dense-*.pt")) and any(cache.glob("supernet-*.pt"))
    assert "| range | 4 |" in finished.stdout
