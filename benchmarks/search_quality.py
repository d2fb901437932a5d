"""Search quality on Fashion-MNIST: autoprune's front against uniform L1 pruning and Torch-Pruning's
global magnitude pruning, on the same budget of fine-tune epochs, judged on the held-out test split.

1. autoprune runs the pipeline (per-group ratios + fine-tune settings; trials see the validation
   split only); its front members are finalized and tested once (test accuracy, params, MACs,
   latency ratio measured side by side with the dense model).
2. The fine-tune budget it spent is counted in full-training-split epochs: each trial's epochs x
   ``train_fraction`` plus each front member's finalize epochs.
3. Two baselines spend the same budget over a sweep of ratios (equal epochs per point): (a) our
   engine's uniform L1 plan (every group at the same ratio), (b) Torch-Pruning's
   ``BasePruner`` with ``global_pruning=True`` (L1 group importance ranked across layers).
   Both fine-tune with one fixed recipe (SGD, lr 0.02, cosine, weight decay 5e-4).
4. Each method's front (non-dominated on test accuracy and MACs) gets a hypervolume in normalised
   (1 - test accuracy, MACs / dense MACs) space, at two reference points: (1, 1), which counts every
   model better than zero accuracy (so most of the volume is the accuracy any model keeps, and no
   front scores above about the dense accuracy), and (1 - dense test accuracy + 0.05, 1), which
   counts only models within 5 points of dense, the region a user deploying a pruned model cares about.
5. Also: the best accuracy at >= 4x fewer MACs than dense, the smallest autoprune model at
   >= 92.5% test accuracy (the Fashion-MNIST table's "2 Conv <100K parameters: 92.5%"), the accuracy
   kept at 10x fewer params, and the training throughput of front models vs dense (pruned models
   train faster: the seed claim).

Usage (the settings BENCHMARKS.md uses: uniform seeds, no proxy constraint, 6 members finalized)::

    S="--set search.seed_uniform=4 --set finalize.max_members=6 --set finalize.epochs=10"
    S="$S --set constraints.max_accuracy_drop=1.0"
    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_lenet5.yaml $S                 # ~11 min
    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_cnn.yaml \
        --set model.train.epochs=20 $S                                                                  # ~52 min
    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_lenet5.yaml --quick           # ~3 min

Where per-layer allocation matters (wide-late and mobile models, size in params, measured latency),
``--cost params|latency_ratio`` judges the fronts on that cost, and ``--budget seconds`` gives the
baselines the wall seconds autoprune spent on its supernet, search and finalize (each sweep point an
equal share, turned into epochs by its measured training speed) instead of its fine-tune epochs::

    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_vgg.yaml --cost params --budget seconds
    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_mobilenet.yaml \
        --cost latency_ratio --budget seconds
    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_cnn.yaml \
        --set search.strategy=oneshot --cost params --budget seconds

Does autoprune reach the uniform sweep's front in half the sweep's time? Give the sweep twice
autoprune's seconds (``--sweep-factor 2``): a hypervolume ratio >= 1 then says yes::

    python benchmarks/search_quality.py --pipeline pipelines/fashion_mnist_vgg.yaml --cost params --budget seconds \
        --sweep-factor 2 --baselines uniform

BENCHMARKS.md's 2026-12-01 runs add ``--set search.space=../search_spaces/spread_fixed_recipe.yaml``
(near-uniform ratios, fixed recipe), and for a stronger dense CNN ``--set model.train.epochs=40 --set
data.augment.hflip=true`` (~60 min with its dense training). The 2026-12-02 ResNet-20 run (~100 s per
full epoch here) finalizes 5 members for 4 epochs: ``--pipeline pipelines/fashion_mnist_resnet20.yaml``
with ``$SP`` and ``$S`` changed to ``finalize.max_members=5 finalize.epochs=4`` (135 min, machine shared).

Trained dense models are kept by config hash in ``--dense-cache DIR`` (default ``mlflow/cache``, where
``autoprune run`` keeps the pipelines' own) for the next run, saving the CNN's 7-minute dense
training. The MLflow store of autoprune's run is kept (its path is printed last) for a look at the
front.
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp

from autoprune import data, engine, workflow
from autoprune.config import load_pipeline
from autoprune.search import hypervolume, non_dominated
from autoprune.workflow._dense import build_dense, prepare_dense

ROOT = Path(__file__).resolve().parent.parent
RECIPE = {"lr": 0.02, "weight_decay": 5e-4, "optimizer": "sgd"}
NEAR_DENSE = 0.05  # the second reference point counts only models within this of dense test accuracy


def run_autoprune(path: Path, store: Path, overrides: list[str]) -> tuple[Any, Any, float]:
    """The pipeline's search and finalize; returns (loaded pipeline, result, fine-tune epochs spent,
    counted in full training-split epochs of at most the dense model: a one-shot supernet epoch counts
    once per subnet each step trains)."""
    sets = [
        *overrides,
        f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        "tracking.register=false",
        "finalize.onnx=false",
    ]
    loaded = load_pipeline(path, sets)
    result = workflow.run(loaded)
    config = loaded.config
    if config.search.strategy == "oneshot":
        oneshot = config.oneshot
        final = sum(max(config.finalize.epochs or 0, 1) for _ in result.members)
        return loaded, result, oneshot.supernet_epochs * (2 + oneshot.random_subnets) + final
    fraction = config.search.train_fraction
    search_epochs = sum(r.metrics["epochs_run"] * fraction for r in result.records if r.state == "complete")
    trial_epochs = {r.number: r.metrics.get("epochs_run", 0.0) for r in result.records}
    # finalize fine-tunes each member on the whole split for max(finalize.epochs, its trial's epochs)
    final = sum(max(config.finalize.epochs or 0, trial_epochs[member.trial]) for member in result.members)
    return loaded, result, search_epochs + final


def _classifier(model: torch.nn.Module) -> torch.nn.Module:
    return model.classifier  # every zoo model names its output layer so


def _measure(
    dense: torch.nn.Module, model: torch.nn.Module, splits: data.Splits, latency: engine.LatencyConfig
) -> dict[str, float]:
    times = engine.measure_latency({"dense": dense, "pruned": model}, splits.input_shape, latency)
    return {
        "test_accuracy": engine.evaluate(model, splits.test).accuracy,
        "params": engine.count_params(model),
        "macs": engine.count_macs(model, splits.input_shape),
        "latency_ratio": times["pruned"] / times["dense"],
    }


def uniform_l1(
    dense: torch.nn.Module, splits: data.Splits, ratio: float, epochs: int, latency: engine.LatencyConfig
) -> dict[str, float]:
    plan = engine.PrunePlan.uniform(engine.discover(dense, splits.input_shape), ratio, importance="l1")
    finetune = engine.FinetuneConfig(epochs=epochs, batch_size=splits.batch_size, **RECIPE)
    result = engine.evaluate_candidate(
        dense, engine.Candidate(plan, finetune), splits, measure=engine.MeasureConfig(latency=latency)
    )
    assert result.model is not None
    return _measure(dense, result.model, splits, latency)


def tp_global(
    dense: torch.nn.Module, splits: data.Splits, ratio: float, epochs: int, latency: engine.LatencyConfig
) -> dict[str, float]:
    model = copy.deepcopy(dense)
    pruner = tp.pruner.BasePruner(
        model,
        torch.randn(2, *splits.input_shape),
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=ratio,
        global_pruning=True,
        ignored_layers=[_classifier(model)],
    )
    pruner.step()
    engine.finetune(model, splits, engine.FinetuneConfig(epochs=epochs, batch_size=splits.batch_size, **RECIPE))
    return _measure(dense, model.eval(), splits, latency)


COSTS = {"macs": "MACs", "params": "params", "latency_ratio": "latency"}


def _share(row: dict[str, float], cost: str, reference: Any) -> float:
    """The row's cost as a share of the dense model's (latency is a ratio already)."""
    return row[cost] if cost == "latency_ratio" else row[cost] / getattr(reference, cost)


def front_hypervolume(
    rows: list[dict[str, float]], reference: Any, cost: str = "macs", point: tuple[float, float] = (1.0, 1.0)
) -> tuple[float, list[dict[str, float]]]:
    points = [(1 - r["test_accuracy"], _share(r, cost, reference)) for r in rows]
    front = [rows[i] for i in non_dominated(points)]
    return hypervolume(points, point), sorted(front, key=lambda r: r[cost])


def throughput(dense: torch.nn.Module, loaded: Any, result: Any, splits: data.Splits) -> list[float]:
    """Training samples/s of each front architecture relative to dense (weights do not matter)."""
    from autoprune.search import SearchSpace

    config = loaded.config
    space = SearchSpace(config.search.space, engine.discover(dense, splits.input_shape), batch_size=splits.batch_size)
    records = {r.number: r for r in result.records}
    ratios = []
    for member in result.members:
        params = {k: v for k, v in records[member.trial].params.items() if k in space.distributions}
        model = copy.deepcopy(dense)
        engine.apply_plan(model, space.candidate(params).plan, splits.input_shape)
        pair = engine.measure_train_throughput(
            {"dense": dense, "pruned": model},
            splits.train.x[:4096],
            splits.train.y[:4096],
            batch_size=splits.batch_size,
        )
        ratios.append(pair["pruned"] / pair["dense"])
    return ratios


def plot(methods: dict[str, list[dict[str, float]]], dense: Any, path: Path, title: str, cost: str = "macs") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for (name, rows), marker in zip(methods.items(), "osD"):
        rows = sorted(rows, key=lambda r: r[cost])
        axis.plot([_share(r, cost, dense) for r in rows], [r["test_accuracy"] for r in rows], marker=marker, label=name)
    axis.axhline(dense.test_accuracy, c="black", ls=":", lw=1, label="dense model")
    axis.set_xlabel(f"{COSTS[cost]} / dense {COSTS[cost]}")
    axis.set_ylabel("test accuracy")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def progress(message: str) -> None:
    """A line on stderr while a long run goes on (stdout keeps the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def split_budget(budget: float, points: int) -> list[int]:
    """Whole fine-tune epochs per baseline point summing to ``budget`` rounded (at least 1 each); the
    spare epochs go to the highest ratios, which lose the most accuracy and gain the most from them."""
    total = max(points, round(budget))
    base, spare = divmod(total, points)
    return [base + (1 if index >= points - spare else 0) for index in range(points)]


BASELINES = {"uniform": ("uniform L1", uniform_l1), "global": ("Torch-Pruning global", tp_global)}


def run_baselines(
    dense: Any,
    splits: data.Splits,
    ratios: list[float],
    epochs: list[int],
    latency: engine.LatencyConfig,
    which: Sequence[str] = tuple(BASELINES),
) -> tuple[dict[str, list[dict[str, float]]], dict[str, float]]:
    """The baselines ``which`` names over the sweep (ratio i fine-tuned ``epochs[i]`` epochs); rows and
    seconds per method."""
    methods: dict[str, list[dict[str, float]]] = {}
    seconds = {}
    for name, method in (BASELINES[key] for key in which):
        clock = time.perf_counter()
        methods[name] = []
        for ratio, count in zip(ratios, epochs):
            try:
                methods[name].append({"ratio": ratio, **method(dense.model, splits, ratio, count, latency)})
                progress(f"{name} at ratio {ratio} ({count} epochs): test {methods[name][-1]['test_accuracy']:.4f}")
            except Exception as exc:  # e.g. global pruning emptying a layer: reported, not fatal
                print(f"{name} at ratio {ratio}: failed: {type(exc).__name__}: {exc}")
        seconds[name] = time.perf_counter() - clock
    return methods, seconds


def _model_text(row: dict[str, float], reference: Any) -> str:
    return (
        f"test {row['test_accuracy']:.4f}, {int(row['params']):,} params, {row['macs'] / reference.macs:.1%} MACs, "
        f"latency {row['latency_ratio']:.2f}x dense"
    )


def report_fronts(
    methods: dict[str, list[dict[str, float]]], seconds: dict[str, float], reference: Any, cost: str = "macs"
) -> None:
    """The table of fronts and the hypervolume ratios at both reference points, on ``cost``."""
    near = (1 - reference.test_accuracy + NEAR_DENSE, 1.0)
    hv, hv_near = {}, {}
    name_of = COSTS[cost]
    print(
        f"\n| method | hypervolume, ref (1, 1) | ref within 5 points | best test acc at <= 25% {name_of} "
        f"| front (test acc @ {name_of} share, params, MACs share, latency ratio) | seconds |"
    )
    print("|---|---:|---:|---:|---|---:|")
    for name, rows in methods.items():
        hv[name], front = front_hypervolume(rows, reference, cost)
        hv_near[name], _ = front_hypervolume(rows, reference, cost, near)
        small = [r["test_accuracy"] for r in rows if _share(r, cost, reference) <= 0.25]
        points = "; ".join(
            f"{r['test_accuracy']:.4f} @ {_share(r, cost, reference):.0%}, {int(r['params']):,}, "
            f"{r['macs'] / reference.macs:.0%}, {r['latency_ratio']:.2f}"
            for r in front
        )
        best_small = f"{max(small):.4f}" if small else "-"
        print(f"| {name} | {hv[name]:.4f} | {hv_near[name]:.4f} | {best_small} | {points} | {seconds[name]:.0f} |")
    for label, volumes in (
        ("ref (1, 1)", hv),
        (f"ref ({near[0]:.4f}, 1), models within {100 * NEAR_DENSE:.0f} points of dense", hv_near),
    ):
        better = max(volume for name, volume in volumes.items() if name != "autoprune")
        if better:
            print(
                f"autoprune / better baseline hypervolume, {label}: {volumes['autoprune'] / better:.3f} (goal >= 1.10)"
            )
    best_possible = max(r["test_accuracy"] for rows in methods.values() for r in rows)
    print(
        f"  (with ref (1, 1) no front can exceed about the best test accuracy seen, {best_possible:.4f}: "
        f"{best_possible / max(v for name, v in hv.items() if name != 'autoprune'):.3f}x the better baseline at most)"
    )


def report_goals(ours: list[dict[str, float]], reference: Any) -> None:
    """The issue's single-model goals: >= 4x fewer MACs, the published table's 92.5%, 10x fewer params."""
    four_x = [r for r in ours if r["macs"] <= reference.macs / 4]
    if four_x:
        best = max(four_x, key=lambda r: r["test_accuracy"])
        print(
            f"autoprune at >= 4x fewer MACs: {_model_text(best, reference)}; drop "
            f"{100 * (reference.test_accuracy - best['test_accuracy']):.2f} points (goal <= 0.5)"
        )
    good = [r for r in ours if r["test_accuracy"] >= 0.925]
    smallest = _model_text(min(good, key=lambda r: r["params"]), reference) if good else "none on this front"
    print(f"smallest autoprune model at >= 92.5% test: {smallest} (goal <= 25K params)")
    tenth = [r for r in ours if r["params"] <= reference.params / 10]
    best_tenth = _model_text(max(tenth, key=lambda r: r["test_accuracy"]), reference) if tenth else "none on this front"
    print(f"best at >= 10x fewer params than dense ({reference.params:,}): {best_tenth}")


def report_allocation_goal(methods: dict[str, list[dict[str, float]]], reference: Any, cost: str) -> None:
    """The goal where allocation matters: the best test accuracy at <= 10% of the dense params (or MACs),
    or at >= 2x measured speed-up, autoprune against the better baseline (goal: + 1.0 point)."""
    limit, label = (0.5, ">= 2x speed-up") if cost == "latency_ratio" else (0.10, f"<= 10% of the dense {COSTS[cost]}")
    best = {
        name: max((r["test_accuracy"] for r in rows if _share(r, cost, reference) <= limit), default=None)
        for name, rows in methods.items()
    }
    shown = ", ".join(f"{name} {value:.4f}" if value is not None else f"{name} none" for name, value in best.items())
    print(f"best test accuracy at {label}: {shown}")
    baselines = [v for name, v in best.items() if name != "autoprune" and v is not None]
    if best.get("autoprune") is not None and baselines:
        gain = 100 * (best["autoprune"] - max(baselines))
        print(f"  autoprune - the better baseline: {gain:+.2f} points (goal >= +1.0)")


def epochs_for_seconds(dense: Any, splits: data.Splits, ratios: list[float], seconds: float) -> list[int]:
    """Whole fine-tune epochs per baseline point so the sweep takes about ``seconds``: an equal share of
    the time each, turned into epochs by the pruned model's measured training speed and the time its
    per-epoch validation takes."""
    groups = engine.discover(dense, splits.input_shape)
    index = torch.arange(min(len(splits.train), splits.batch_size))
    epochs = []
    for ratio in ratios:
        model = copy.deepcopy(dense)
        engine.apply_plan(model, engine.PrunePlan.uniform(groups, ratio), splits.input_shape)
        speed = engine.measure_train_throughput(
            {"pruned": model}, splits.train.rows(index), splits.train.y[index], batch_size=splits.batch_size
        )["pruned"]
        clock = time.perf_counter()
        engine.evaluate(model, splits.val)
        epoch_seconds = len(splits.train) / speed + time.perf_counter() - clock
        epochs.append(max(1, int(seconds / len(ratios) / epoch_seconds)))
    return epochs


# Only the dense models (and the data's splits) are taken from --dense-cache: a supernet or a latency
# table found there would make autoprune's measured seconds, the budget the baselines get, leave out
# their cost (a run of the pipeline itself caches both beside its store).
DENSE_CACHE = "dense-*.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "fashion_mnist_lenet5.yaml")
    parser.add_argument("--quick", action="store_true", help="8 trials, finalize 2 epochs, 3 baseline ratios")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--plot", type=Path, default=None, help="PNG of the three fronts (default docs/images/quality_<name>.png)"
    )
    parser.add_argument(
        "--dense-cache",
        type=Path,
        default=Path("mlflow/cache"),
        metavar="DIR",
        help="reuse dense models trained by an earlier run (kept by their config hash) and keep new ones here "
        "(default: mlflow/cache, where `autoprune run` keeps the pipelines' own)",
    )
    parser.add_argument("--cost", choices=sorted(COSTS), default="macs", help="the cost fronts are judged on")
    parser.add_argument(
        "--budget",
        choices=["epochs", "seconds"],
        default="epochs",
        help="what the baselines get as much of as autoprune spent: fine-tune epochs, or wall seconds "
        "(supernet, search and finalize; the sweep's epochs then follow from each point's training speed)",
    )
    parser.add_argument(
        "--sweep-factor",
        type=float,
        default=1.0,
        metavar="K",
        help="the baselines get K times autoprune's budget (2: a front of autoprune's at or above the sweep's "
        "reached it in half the sweep's time)",
    )
    parser.add_argument(
        "--baselines", nargs="+", choices=sorted(BASELINES), default=list(BASELINES), help="which sweeps to run"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overrides = (["search.trials=8", "finalize.epochs=2"] if args.quick else []) + args.overrides
    ratios = [0.3, 0.6, 0.85] if args.quick else [0.2, 0.4, 0.55, 0.7, 0.8, 0.9]

    store = Path(tempfile.mkdtemp(prefix="autoprune-quality-"))
    (store / "cache").mkdir()
    if args.dense_cache is not None and args.dense_cache.is_dir():
        for kept in [*args.dense_cache.glob(DENSE_CACHE), *args.dense_cache.glob("split-*.npz")]:
            shutil.copy2(kept, store / "cache" / kept.name)
    clock = time.perf_counter()
    progress(f"autoprune: dense model, search and finalize of {args.pipeline.name} (MLflow store {store})")
    loaded, result, budget = run_autoprune(args.pipeline, store, overrides)
    autoprune_seconds = time.perf_counter() - clock
    progress(
        f"autoprune done in {autoprune_seconds:.0f} s: {len(result.members)} members, {budget:.1f} fine-tune epochs"
    )
    config, splits = loaded.config, result.splits
    latency = config.latency
    dense = prepare_dense(
        config,
        splits,
        build_dense(config, splits, base_dir=loaded.base_dir),
        base_dir=loaded.base_dir,
        cache_dir=store / "cache",
        latency=latency,
    )
    reference = dense.reference
    if args.dense_cache is not None:
        args.dense_cache.mkdir(parents=True, exist_ok=True)
        for trained in (store / "cache").glob(DENSE_CACHE):
            shutil.copy2(trained, args.dense_cache / trained.name)
    ours = [
        {"test_accuracy": m.test_accuracy, "params": m.params, "macs": m.macs, "latency_ratio": m.latency_ratio}
        for m in result.members
    ]
    spent = sum(result.seconds.get(phase, 0.0) for phase in ("supernet", "search", "finalize"))
    if args.budget == "seconds":
        epochs = epochs_for_seconds(dense.model, splits, ratios, args.sweep_factor * spent)
    else:
        epochs = split_budget(args.sweep_factor * budget, len(ratios))
    baselines, seconds = run_baselines(dense, splits, ratios, epochs, latency, args.baselines)

    pipeline_arg = args.pipeline.relative_to(ROOT) if args.pipeline.is_absolute() else args.pipeline
    print(
        f"\n{date.today()} · python benchmarks/search_quality.py --pipeline "
        f"{pipeline_arg}{' --quick' if args.quick else ''}"
        f" · dense: test {reference.test_accuracy:.4f}, {reference.params:,} params, {reference.macs:,} MACs"
    )
    print(
        f"budget ({args.budget}): autoprune {budget:.1f} full-split epochs, {spent:.0f} s of supernet, search and "
        f"finalize ({len(result.records)} trials, {len(ours)} finalized); each baseline {sum(epochs)} epochs "
        f"({len(ratios)} ratios x {'/'.join(map(str, epochs))}), {args.sweep_factor:g}x autoprune's budget"
    )
    methods = {"autoprune": ours, **baselines}
    report_fronts(methods, {"autoprune": autoprune_seconds, **seconds}, reference, args.cost)
    report_allocation_goal(methods, reference, args.cost)
    report_goals(ours, reference)
    speed = throughput(dense.model, loaded, result, splits)
    if speed:
        print(
            f"training throughput of front models vs dense: median {statistics.median(speed):.2f}x "
            f"(range {min(speed):.2f}-{max(speed):.2f}x, {len(speed)} models)"
        )
    path = args.plot or ROOT / "docs" / "images" / f"quality_{config.name}{'_quick' if args.quick else ''}.png"
    plot(methods, reference, path, f"{config.name}: test accuracy vs {COSTS[args.cost]}, same budget", args.cost)
    print(f"plot: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"autoprune's MLflow store (front runs, models): sqlite:///{store / 'mlflow.db'}")


if __name__ == "__main__":
    main()
