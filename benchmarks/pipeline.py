"""A pipeline's wall time and the framework's overhead per trial (default: the quickstart).

Runs ``autoprune run PIPELINE`` as a user would (a subprocess, fresh store, so the dense model is
trained too), then once more in-process in the same store with the dense model cached, and reports:

- the end-to-end wall time of the command (imports, data, dense training, 24 trials, finalize, registry);
- framework overhead per trial: the share of the search phase's wall time not spent inside the engine
  (prune, fine-tune, evaluate, measure): sampling, Optuna storage, MLflow logging, bookkeeping.

Usage::

    python benchmarks/pipeline.py                   # the quickstart as committed
    python benchmarks/pipeline.py --set search.trials=48
    python benchmarks/pipeline.py --pipeline pipelines/fashion_mnist_lenet5.yaml --set search.trials=8
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "quickstart_digits.yaml"


def end_to_end(pipeline: Path, workdir: Path, overrides: list[str]) -> float:
    command = [sys.executable, "-m", "autoprune.cli", "run", str(pipeline)] + [f"--set={o}" for o in overrides]
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
    return time.perf_counter() - start


def overhead(pipeline_file: Path, workdir: Path, overrides: list[str]) -> dict[str, float]:
    os.chdir(workdir)
    from autoprune import workflow
    from autoprune.config import load_pipeline

    loaded = load_pipeline(pipeline_file, [*overrides, "tracking.experiment=overhead", "search.study=overhead"])
    result = workflow.run(loaded)
    done = [r for r in result.records if r.state == "complete"]
    engine = sum(r.metrics["engine_seconds"] for r in done)
    search = result.seconds["search"]
    return {
        "trials": len(done),
        "search_s": search,
        "engine_s": engine,
        "overhead_share": 1 - engine / search,
        "overhead_per_trial_ms": (search - engine) / len(done) * 1e3,
        "median_engine_s": statistics.median(r.metrics["engine_seconds"] for r in done),
        "dense_s": result.seconds["dense"],
        "finalize_s": result.seconds["finalize"],
        "front": len(result.members),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=PIPELINE, help="default: the quickstart")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    pipeline_file = args.pipeline.resolve()
    with tempfile.TemporaryDirectory(prefix="autoprune-bench-") as tmp:
        workdir = Path(tmp)
        wall = end_to_end(pipeline_file, workdir, args.overrides)
        stats = overhead(pipeline_file, workdir, args.overrides)
    shown = pipeline_file.relative_to(ROOT) if pipeline_file.is_relative_to(ROOT) else pipeline_file.name
    print(f"Pipeline benchmark, {date.today().isoformat()}, {shown}, overrides: {' '.join(args.overrides) or 'none'}\n")
    print("| measure | value |\n|---|---:|")
    print(f"| `autoprune run {shown}`, fresh store, end to end | {wall:.1f} s |")
    print(
        f"| second search, dense model from cache: dense / search / finalize phases | "
        f"{stats['dense_s']:.1f} / {stats['search_s']:.1f} / {stats['finalize_s']:.1f} s |"
    )
    print(f"| completed trials, front size | {stats['trials']:.0f}, {stats['front']:.0f} |")
    print(
        "| engine time per trial (median: prune + fine-tune + evaluate + measure) | "
        f"{stats['median_engine_s'] * 1e3:.0f} ms |"
    )
    print(
        f"| framework overhead per trial (search wall time − engine time) | {stats['overhead_per_trial_ms']:.0f} ms |"
    )
    print(f"| framework overhead as a share of the search phase | {stats['overhead_share']:.1%} |")


if __name__ == "__main__":
    main()
