"""Plans fitted to the size limit (``search.fit_to_limit``) against plans as sampled, under one limit.

Under ``constraints.max_params`` a sampled plan lands anywhere: over the limit (infeasible, since
2026-12-04 not fine-tuned) or under it (feasible, with capacity the limit allowed left unused).
Fitting scales each plan's ratios by one factor so that every trial uses the budget. This runs the
pipeline with accuracy as the only objective (TPE) under the limit, with the fit off and on, for
``--seeds`` pipeline seeds (each seed its own data split, dense model and sampler), alternating which
mode goes first, in one process and one store; dense models are trained once per seed and cached.
Per search it reports the trials within the limit, the best feasible one on validation (the proxy
fine-tune; every constraint of the pipeline met), its params, and the test accuracy of the one model
the search finalizes.

Usage::

    python benchmarks/fit_to_limit.py                 # the quickstart, max_params at 30% of dense, seeds 0-2 (~1.2 min)
    python benchmarks/fit_to_limit.py --quick         # seed 0, 12 trials (~25 s)
    python benchmarks/fit_to_limit.py --pipeline pipelines/fashion_mnist_cnn.yaml --max-params 25000 --seeds 1 \\
        --set model.train.epochs=40 --set data.augment.hflip=true \
        --set search.space=../search_spaces/tilt_fixed_recipe.yaml
        # ~6 min with the dense model cached (BENCHMARKS.md has the full command)
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
from datetime import date
from pathlib import Path
from typing import Any

from over_limit import ROOT, limit_arguments, run_named, scratch_store, store_limit  # this folder is on sys.path

MODES = ("false", "true")  # search.fit_to_limit


def one_search(pipeline_file: Path, overrides: list[str], name: str) -> dict[str, Any]:
    """Run the pipeline once in-process; what its search found within the limit."""
    result = run_named(pipeline_file, overrides, name)
    done = [r for r in result.records if r.state == "complete"]
    within = [r for r in done if r.constraints.get("max_params", 0.0) <= 0]
    best = max(
        (r for r in done if r.feasible), key=lambda r: r.metrics["val_accuracy"], default=None
    )  # every constraint met
    member = result.members[0] if result.members else None
    return {
        "search_s": result.seconds["search"],
        "trials": len(done),
        "within": len(within),
        "twins": sum(r.state == "skipped" for r in result.records),
        "best_val": best.metrics["val_accuracy"] if best else math.nan,
        "best_params": best.metrics["params"] if best else math.nan,
        "median_params": statistics.median(r.metrics["params"] for r in within) if within else math.nan,
        "test": member.test_accuracy if member else math.nan,
        "test_params": float(member.params) if member else math.nan,
        "dense_test": result.dense.test_accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    limit_arguments(parser)
    parser.add_argument("--seeds", type=int, default=3, help="pipeline seeds 0..N-1, each searched in both modes")
    parser.add_argument("--quick", action="store_true", help="seed 0 only, 12 trials")
    args = parser.parse_args()
    pipeline_file = args.pipeline.resolve()
    seeds = 1 if args.quick else args.seeds
    logging.basicConfig(level=logging.WARNING)
    with scratch_store(args.dense_cache) as tmp:
        overrides = [
            "objectives={accuracy: max}",
            "search.sampler=tpe",
            "finalize.max_members=1",
            "tracking.register=false",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        ]
        overrides += ["search.trials=12"] if args.quick else []
        overrides += args.overrides
        limit = store_limit(args, pipeline_file, overrides)
        overrides.append(f"constraints.max_params={limit}")
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for seed in range(seeds):
            for mode in MODES if seed % 2 == 0 else reversed(MODES):
                print(f"seed {seed + 1}/{seeds}: fit_to_limit={mode}", file=sys.stderr, flush=True)
                settings = [*overrides, f"seed={seed}", f"search.fit_to_limit={mode}"]
                runs[mode].append(one_search(pipeline_file, settings, f"s{seed}-{mode}"))
    report(pipeline_file, args.overrides, limit, runs)


def report(pipeline_file: Path, overrides: list[str], limit: int, runs: dict[str, list[dict[str, Any]]]) -> None:
    shown = pipeline_file.relative_to(ROOT) if pipeline_file.is_relative_to(ROOT) else pipeline_file.name
    print(
        f"Fit-to-limit benchmark, {date.today().isoformat()}, {shown}, constraints.max_params={limit:,}, "
        f"accuracy only, TPE, overrides: {' '.join(overrides) or 'none'}\n"
    )
    print(
        "| search.fit_to_limit | seed | trials within the limit | twins skipped | median params within | "
        "best feasible val acc (params) | finalized: test acc (params) | dense test | search phase |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, done in runs.items():
        for seed, run in enumerate(done):
            print(
                f"| {mode} | {seed} | {run['within']} of {run['trials']} | {run['twins']} | "
                f"{run['median_params']:,.0f} | "
                f"{run['best_val']:.4f} ({run['best_params']:,.0f}) | {run['test']:.4f} ({run['test_params']:,.0f}) | "
                f"{run['dense_test']:.4f} | {run['search_s']:.0f} s |"
            )
    off, on = runs["false"], runs["true"]
    for key, what in (("best_val", "best feasible val acc"), ("test", "finalized test acc")):
        gains = [b[key] - a[key] for a, b in zip(off, on, strict=True)]
        print(
            f"\n{what}, fit on - off: median {statistics.median(gains) * 100:+.2f} points over {len(gains)} seeds "
            f"({', '.join(f'{g * 100:+.2f}' for g in gains)})"
        )
    ratio = statistics.median(r["search_s"] for r in on) / statistics.median(r["search_s"] for r in off)
    print(f"search phase on / off: {ratio:.2f}x (medians)")


if __name__ == "__main__":
    main()
