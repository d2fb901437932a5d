"""How well `latency.mode: table` predicts a pruned model's latency (issue 35's targets: rank
correlation >= 0.9 and median error <= 10%).

For the pipeline's dense model, in the layout it runs in (its weights do not change its latency, so it
is not trained), a fresh table is built as a run builds it (every layer the plans need measured once,
the scale and constant fitted on the dense model and uniform prunings measured whole). Each plan of
evaluator_quality's sets is predicted by the table and measured, as its latency relative to the dense
model's (what the search optimises; on a shared machine absolute milliseconds drift by tens of percent
from one second to the next, which the ratio measured side by side cancels). The truth: each plan
measured side by side with the dense model, as a run measures its front members for the check it
logs, in two passes (their mean; the passes' agreement is the ceiling any predictor can reach on the
set). Sets: ``range`` (random per-group ratios across a MACs range), ``equal-macs`` (far-from-uniform
plans at two MACs levels, where the ranking the search needs is hardest; correlation per level, then
their mean) and ``uniform`` (the width multipliers a user would try by hand)::

    python benchmarks/latency_table.py          # MobileNetV2 on Fashion-MNIST (its pipeline: batch 64), 24 plans a set
    python benchmarks/latency_table.py --set latency.batch_size=1 --set latency.repeats=100 --set latency.warmup=20
    python benchmarks/latency_table.py --pipeline pipelines/fashion_mnist_vgg.yaml --plans 16
    python benchmarks/latency_table.py --set search.space.pruning.round_to=1   # widths not rounded (the pipeline's: 8)

Prints the table's build time and, per set, the ceiling, the table's rank correlation and median
relative error, and milliseconds per candidate of predicting against measuring.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from autoprune import data, engine
from autoprune.config import LatencyConfig, PipelineConfig, load_pipeline
from autoprune.workflow._dense import build_dense
from autoprune.workflow._latency import fitted_table
from autoprune.workflow._layout import fit_layout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluator_quality import add_plan_arguments, plan_sets

ROOT = Path(__file__).resolve().parent.parent
UNIFORM = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def dense_model(path: Path, overrides: list[str]) -> tuple[torch.nn.Module, tuple[int, ...], PipelineConfig]:
    """The pipeline's dense model (untrained), in eval mode and its data's layout, with the input shape
    and the pipeline's settings."""
    loaded = load_pipeline(path, overrides)
    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir)
    model = build_dense(config, splits, base_dir=loaded.base_dir)
    splits, _ = fit_layout(model, config, splits)
    return model.eval(), splits.input_shape, config


def build_table(
    dense: torch.nn.Module, shape: tuple[int, ...], config: PipelineConfig, path: Path
) -> tuple[engine.LatencyTable, float]:
    """A fresh table fitted as a run fits it (its uniform prunings' widths rounded as the pipeline
    rounds), and the seconds it took."""
    start = time.perf_counter()
    table = fitted_table(engine.LatencyTable(config.latency, path), dense, shape, config.search.space.pruning)
    return table, time.perf_counter() - start


def _agreement(
    predicted: dict[str, float], measured: dict[str, float], strata: dict[str, int]
) -> tuple[float, list[float]]:
    """Spearman's correlation (the mean over strata) and each plan's relative error."""
    correlations = []
    for stratum in sorted(set(strata.values())):
        names = [n for n in predicted if strata[n] == stratum]
        correlations.append(engine.rank_agreement({n: predicted[n] for n in names}, {n: measured[n] for n in names})[0])
    return statistics.fmean(correlations), [abs(predicted[n] - measured[n]) / measured[n] for n in predicted]


def judge(
    table: engine.LatencyTable,
    dense: torch.nn.Module,
    shape: tuple[int, ...],
    latency: LatencyConfig,
    plans: list[tuple[int, engine.PrunePlan]],
) -> dict[str, float]:
    """Each plan's latency relative to the dense model's, predicted by the table and measured side by
    side with the dense model as a run measures its front members, in two passes (the truth is their
    mean; their agreement is the ceiling)."""
    models, strata = {}, {}
    for index, (stratum, plan) in enumerate(plans):
        model = copy.deepcopy(dense)
        engine.apply_plan(model, plan, shape)
        models[str(index)], strata[str(index)] = model.eval(), stratum
    start = time.perf_counter()
    dense_ms = table.predict(dense, shape)
    predicted = {name: table.predict(model, shape) / dense_ms for name, model in models.items()}
    predict_s = (time.perf_counter() - start) / (len(models) + 1)
    start = time.perf_counter()
    passes: list[dict[str, float]] = [{}, {}]
    for measured in passes:
        for name, model in models.items():
            pair = engine.measure_latency({"dense": dense, "plan": model}, shape, latency)
            measured[name] = pair["plan"] / pair["dense"]
    measure_s = (time.perf_counter() - start) / (2 * len(models))
    truth = {name: statistics.fmean(p[name] for p in passes) for name in models}
    ceiling, _ = _agreement(passes[0], passes[1], strata)
    correlation, errors = _agreement(predicted, truth, strata)
    return {
        "fastest": min(truth.values()),
        "slowest": max(truth.values()),
        "ceiling": ceiling,
        "correlation": correlation,
        "median_error": statistics.median(errors),
        "predict_s": predict_s,
        "measure_s": measure_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "fashion_mnist_mobilenet.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_plan_arguments(parser, plans=24, max_ratio=0.8)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    dense, shape, config = dense_model(args.pipeline, args.overrides)
    latency, pruning = config.latency, config.search.space.pruning
    round_to = pruning.round_to
    groups = engine.discover(dense, shape)
    sets = plan_sets(dense, shape, args)
    sets["uniform"] = [(0, engine.PrunePlan.uniform(groups, ratio)) for ratio in UNIFORM]
    sets = {  # every plan's widths rounded as the pipeline's search rounds its candidates'
        name: [(stratum, dataclasses.replace(plan, **pruning.widths())) for stratum, plan in plans]
        for name, plans in sets.items()
    }
    print(
        f"# {date.today()} · {args.pipeline.name} · {len(groups)} groups · latency: {latency.runtime}, batch "
        f"{latency.batch_size}, {latency.threads} thread(s), {latency.repeats} repeats"
        + (f" · widths rounded to multiples of {round_to}" if round_to and round_to > 1 else ""),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="autoprune-table-") as workdir:
        table, build_s = build_table(dense, shape, config, Path(workdir) / "table.json")
        print(
            f"table fitted in {build_s:.1f} s ({table.measured} layer entries measured): "
            f"latency = {table.scale:.3f} x the layers' sum + {table.constant:.3f} ms",
            flush=True,
        )
        print("| set | plans | latency / dense | ceiling | rank correlation | median error | predict / measure (ms) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, plans in sets.items():
            row = judge(table, dense, shape, latency, plans)
            print(
                f"| {name} | {len(plans)} | {row['fastest']:.2f}-{row['slowest']:.2f} | {row['ceiling']:.2f} "
                f"| {row['correlation']:.2f} | {100 * row['median_error']:.1f}% "
                f"| {1e3 * row['predict_s']:.1f} / {1e3 * row['measure_s']:.0f} |",
                flush=True,
            )
        print(f"table entries at the end: {len(table.entries)} ({table.measured} measured in all)")


if __name__ == "__main__":
    main()
