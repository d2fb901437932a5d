"""The Ray backend: ASHA's saving in fine-tune epochs, and trial throughput with 1 vs 2 concurrent trials.

Configurations of one pipeline run in each round, in rotating order, in one process sharing one
local Ray (so Ray's start-up is not counted): ``fifo-1`` (every trial fine-tunes its full epochs,
one at a time), ``fifo-2`` (the same, two at a time), ``asha-2 gG rR`` (Ray's ASHA on validation
accuracy per epoch, grace period G, reduction factor R, two at a time) and ``pareto-asha-2 gG rR``
(``asha.rank_by: pareto``: rungs ranked by Pareto dominance on accuracy and MACs). The random sampler
with one seed proposes the same candidates in every configuration, so the fronts differ only by what ASHA stopped.

Reported (medians over rounds): completed trials per minute of search, fine-tune epochs run, the
hypervolume of the validation front (normalised (1 - accuracy, MACs / dense MACs) space, reference
(1, 1)), and ASHA's saving: 1 - epochs(asha) / epochs(fifo) at hypervolume(asha) / hypervolume(fifo).

Usage::

    python benchmarks/ray_asha.py                 # 3 rounds of 24 trials x 6 epochs (about 8 minutes)
    python benchmarks/ray_asha.py --rounds 1 --trials 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import textwrap
from datetime import date
from pathlib import Path

PIPELINE = """\
name: bench-ray
seed: 0
data: {{source: digits, batch_size: 128}}
model: {{arch: cnn, widths: [32, 64], train: {{epochs: 15, lr: 0.05}}}}
search:
  backend: ray
  space:
    pruning: {{ratio: {{low: 0.0, high: 0.85, step: 0.05}}, importance: [l1, l2]}}
    finetune: {{lr: {{low: 0.001, high: 0.1, log: true}}, epochs: {epochs}}}
  sampler: random
  trials: {trials}
objectives: {{accuracy: max, macs: min}}
constraints: {{max_accuracy_drop: 0.05}}
latency: {{repeats: 30, warmup: 5}}
ray:
  max_concurrent_trials: {concurrent}
  cpus_per_trial: {cpus}
  asha: {{enabled: {asha}, grace_period: {grace}, reduction_factor: {rf}, rank_by: {rank_by}}}
tracking: {{uri: "sqlite:///{db}", experiment: "{experiment}", register: false}}
finalize: {{epochs: 0, onnx: false}}
"""

# name -> (concurrent trials, ASHA (grace period, reduction factor, rank_by) or None)
CONFIGS = {
    "fifo-1": (1, None),
    "fifo-2": (2, None),
    "asha-2 g1 r2": (2, (1, 2, "accuracy")),
    "asha-2 g2 r2": (2, (2, 2, "accuracy")),
    "pareto-asha-2 g1 r2": (2, (1, 2, "pareto")),
    "pareto-asha-2 g1 r3": (2, (1, 3, "pareto")),
}


def one_run(workdir: Path, name: str, trials: int, epochs: int) -> dict[str, float]:
    from autoprune import workflow
    from autoprune.config import load_pipeline

    concurrent, asha = CONFIGS[name]
    grace, rf, rank_by = asha or (1, 2, "accuracy")
    folder = Path(tempfile.mkdtemp(prefix=name.replace(" ", "-") + "-", dir=workdir))
    path = folder / "pipeline.yaml"  # one store for all runs: the dense model is trained once, then cached
    path.write_text(
        textwrap.dedent(
            PIPELINE.format(
                epochs=epochs,
                trials=trials,
                concurrent=concurrent,
                cpus=2 // concurrent,
                asha=str(asha is not None).lower(),
                grace=grace,
                rf=rf,
                rank_by=rank_by,
                db=workdir / "store" / "mlflow.db",
                experiment=folder.name,
            )
        )
    )
    result = workflow.run(load_pipeline(path))
    done = [r for r in result.records if r.state == "complete"]
    return {
        "trials": len(done),
        "search_s": result.seconds["search"],
        "trials_per_min": len(done) / result.seconds["search"] * 60,
        "epochs": sum(r.metrics["epochs_run"] for r in done),
        "stopped": sum(r.metrics.get("stopped_early", 0.0) for r in done),
        "hypervolume": result.hypervolume,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import logging

    import ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)  # shared by every run
    workdir = Path(tempfile.mkdtemp(prefix="autoprune-bench-ray-"))
    names = list(CONFIGS)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for index in range(args.rounds):
        order = names[index % len(names) :] + names[: index % len(names)]  # rotate to spread machine noise
        for name in order:
            runs[name].append(one_run(workdir, name, args.trials, args.epochs))
            print(f"round {index + 1} {name}: {runs[name][-1]}", flush=True)
    ray.shutdown()

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    print(
        f"\n{date.today()} · {args.rounds} rounds · {args.trials} trials x {args.epochs} epochs · "
        f"python benchmarks/ray_asha.py --rounds {args.rounds} --trials {args.trials} --epochs {args.epochs}"
    )
    print("| configuration | trials/min | fine-tune epochs | stopped by ASHA | hypervolume |")
    print("|---|---|---|---|---|")
    for name in names:
        print(
            f"| {name} | {median(name, 'trials_per_min'):.1f} | {median(name, 'epochs'):.0f} | "
            f"{median(name, 'stopped'):.0f} | {median(name, 'hypervolume'):.4f} |"
        )
    for name in names[2:]:
        savings = [1 - a["epochs"] / f["epochs"] for a, f in zip(runs[name], runs["fifo-2"])]
        ratios = [a["hypervolume"] / f["hypervolume"] for a, f in zip(runs[name], runs["fifo-2"]) if f["hypervolume"]]
        print(
            f"{name}: {statistics.median(savings):.0%} fewer fine-tune epochs at "
            f"{statistics.median(ratios):.1%} of the hypervolume (median of per-round ratios vs fifo-2)"
        )
    speedups = [b["trials_per_min"] / a["trials_per_min"] for a, b in zip(runs["fifo-1"], runs["fifo-2"])]
    print(f"2 vs 1 concurrent trials: {statistics.median(speedups):.2f}x the trials per minute")


if __name__ == "__main__":
    main()
