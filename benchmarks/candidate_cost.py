"""What one one-shot candidate costs to score on a pipeline's model here, in parts, at several
``oneshot.calibration_batches`` settings called in turn on the same plans.

A candidate is scored as the strategy does it (`search._candidates.CandidateScorer`): the subnet
extracted by the engine, its BatchNorm statistics recalibrated on training batches, its accuracy on the
scored validation samples (``oneshot.score_samples``, the whole split when unset), its MACs counted.
Latency is left out (measured side by side, or predicted by a table, as the pipeline says; see
`benchmarks/latency_table.py`). The weights are the untrained model's: the time does not depend on
them, so no dense training is needed.

Usage::

    python benchmarks/candidate_cost.py --pipeline pipelines/fashion_mnist_mobilenet.yaml --calibration 20 8
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from autoprune import data, engine
from autoprune.search._supernet import calibration_batches, sample_params
from autoprune.workflow import cache_dir, load
from autoprune.workflow._dense import build_dense
from autoprune.workflow._layout import fit_layout
from autoprune.workflow._space import build_space

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("extract", "calibrate", "score", "macs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "fashion_mnist_mobilenet.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--calibration", type=int, nargs="+", default=[20, 8], help="calibration batches to compare")
    parser.add_argument("--plans", type=int, default=8, help="random plans of the space, each scored at every setting")
    args = parser.parse_args()
    loaded = load(args.pipeline, args.overrides)
    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir, cache=cache_dir(config))
    model = build_dense(config, splits, base_dir=loaded.base_dir).eval()
    splits, _ = fit_layout(model, config, splits)
    shape = splits.input_shape
    graph = engine.GroupGraph(copy.deepcopy(model), shape)
    space = build_space(config, model, graph.groups, splits).plans_only()  # what the one-shot strategy proposes
    nested = engine.NestedChannels(model, shape, engine.nested_order(graph, "l1", seed=0))
    batches = calibration_batches(splits, max(args.calibration), seed=0)
    samples = config.oneshot.score_samples
    val = splits.val if samples is None else splits.val.subset(samples, seed=0)
    generator = torch.Generator().manual_seed(0)
    plans = [space.candidate(sample_params(space.distributions, generator)).plan for _ in range(args.plans)]

    def score(plan: engine.PrunePlan, count: int) -> dict[str, float]:
        clock, seconds = time.perf_counter(), {}
        subnet = nested.extract(model, plan)
        seconds["extract"], clock = time.perf_counter() - clock, time.perf_counter()
        engine.recalibrate_batchnorm(subnet, batches[:count])
        seconds["calibrate"], clock = time.perf_counter() - clock, time.perf_counter()
        engine.evaluate(subnet, val)
        seconds["score"], clock = time.perf_counter() - clock, time.perf_counter()
        engine.count_macs(subnet, shape)
        seconds["macs"] = time.perf_counter() - clock
        return seconds

    score(plans[0], 1)  # a fresh model's first passes pay one-off setup
    timed: dict[int, list[dict[str, float]]] = {count: [] for count in args.calibration}
    for plan in plans:
        for count in args.calibration:  # the settings in turn on each plan
            timed[count].append(score(plan, count))
    pipeline = args.pipeline.relative_to(ROOT) if args.pipeline.is_absolute() else args.pipeline
    print(
        f"\n{date.today()} · python benchmarks/candidate_cost.py --pipeline {pipeline} · {len(plans)} plans, "
        f"{len(val):,} scored samples, batches of {splits.batch_size}, {torch.get_num_threads()} threads\n"
    )
    print("| calibration batches | " + " | ".join(PARTS) + " | candidate (median of sums) |")
    print("|---:|" + "---:|" * (len(PARTS) + 1))
    for count, rows in timed.items():
        parts = " | ".join(f"{statistics.median(r[p] for r in rows):.3f} s" for p in PARTS)
        print(f"| {count} | {parts} | **{statistics.median(sum(r.values()) for r in rows):.3f} s** |")


if __name__ == "__main__":
    main()
