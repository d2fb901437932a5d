"""Trials over a size limit left un-fine-tuned (``search.skip_over_limit``): the search time it saves,
and whether the search still proposes the same trials and finds the same front.

A trial whose params, MACs or bytes break a ``constraints.max_*`` limit cannot become feasible, so
by default it is evaluated as pruned instead of fine-tuned. The pipeline runs ``--repeats`` times
with the skip on and as many with it off, alternating which goes first, in one process and one
store (the dense model is trained once and cached), each search under its own study and experiment.
Optuna's samplers rank infeasible trials by how far they break the constraints (an un-fine-tuned
trial's accuracy drop is not counted), so both modes propose nearly the same trials when the
objectives are deterministic: the default objectives here are accuracy and MACs (a measured latency
would make every run differ). Nearly: with the skip off, a trial over the size limit that also
breaks ``max_accuracy_drop`` after its fine-tune counts that too, and NSGA-II orders trials of one
rank by their objective values; the script counts the proposals that differ.

Usage::

    python benchmarks/over_limit.py                  # the quickstart, max_params at 30% of dense, 3 repeats (~2 min)
    python benchmarks/over_limit.py --quick          # 1 repeat of 12 trials (~1 min)
    python benchmarks/over_limit.py --pipeline pipelines/fashion_mnist_cnn.yaml --max-params 25000 --repeats 2 \\
        --set finalize.max_members=1 --set finalize.epochs=1 \
        --set search.space=../search_spaces/tilt_fixed_recipe.yaml   # ~8 min with the dense model cached
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "quickstart_digits.yaml"
MODES = ("true", "false")  # search.skip_over_limit


def dense_params(pipeline_file: Path, overrides: list[str]) -> int:
    """The params of the pipeline's dense model (built, not trained)."""
    from autoprune import data, engine
    from autoprune.config import load_pipeline
    from autoprune.workflow._dense import build_dense

    loaded = load_pipeline(pipeline_file, overrides)
    splits = data.load(loaded.config.data, seed=loaded.config.seed, base_dir=loaded.base_dir)
    return engine.count_params(build_dense(loaded.config, splits, base_dir=loaded.base_dir))


def run_named(pipeline_file: Path, overrides: list[str], name: str) -> Any:
    """Run the pipeline once in-process under its own study and experiment ``name``."""
    from autoprune import workflow
    from autoprune.config import load_pipeline

    return workflow.run(
        load_pipeline(pipeline_file, [*overrides, f"tracking.experiment={name}", f"search.study={name}"])
    )


def limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every size-limit benchmark takes: pipeline, limit, dense cache, overrides."""
    parser.add_argument("--pipeline", type=Path, default=PIPELINE, help="default: the quickstart")
    parser.add_argument(
        "--limit", type=float, default=0.3, help="constraints.max_params as a share of the dense params"
    )
    parser.add_argument(
        "--max-params", type=int, default=None, help="constraints.max_params itself (instead of --limit)"
    )
    parser.add_argument(
        "--dense-cache",
        type=Path,
        default=Path("mlflow/cache"),
        metavar="DIR",
        help="trained dense models by config hash, copied into the benchmark's store and back "
        "(default: mlflow/cache, where `autoprune run` keeps the pipelines' own)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


@contextlib.contextmanager
def scratch_store(dense_cache: Path | None) -> Iterator[str]:
    """A temporary working directory for one store (yielded), with ``dense_cache`` copied into the
    store's dense cache beside its mlflow.db and the models trained meanwhile copied back."""
    dense_cache = dense_cache.resolve() if dense_cache is not None else None  # before the chdir
    home = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="autoprune-bench-") as tmp:
        os.chdir(tmp)
        cache = Path(tmp) / "cache"
        if dense_cache is not None and dense_cache.is_dir():
            shutil.copytree(dense_cache, cache)
        try:
            yield tmp
        finally:
            os.chdir(home)
        if dense_cache is not None and cache.is_dir():
            shutil.copytree(cache, dense_cache, dirs_exist_ok=True)


def store_limit(args: argparse.Namespace, pipeline_file: Path, overrides: list[str]) -> int:
    """``--max-params``, or ``--limit`` times the dense model's params."""
    return args.max_params or round(args.limit * dense_params(pipeline_file, overrides))


def one_search(pipeline_file: Path, overrides: list[str], name: str) -> dict[str, Any]:
    """Run the pipeline once in-process; what its search did."""
    result = run_named(pipeline_file, overrides, name)
    done = [r for r in result.records if r.state == "complete"]
    over = [r for r in done if r.constraints.get("max_params", 0) > 0]  # fine-tuned or not, by the mode
    return {
        "search_s": result.seconds["search"],
        "over": len(over),
        "within": len(done) - len(over),
        "over_engine_s": sum(r.metrics["engine_seconds"] for r in over),
        "within_engine_s": sum(r.metrics["engine_seconds"] for r in done if r not in over),
        "proposals": [sorted(r.params.items()) for r in sorted(done, key=lambda r: r.number)],
        "front": sorted(member.trial for member in result.members),
        "best_within": max((r.metrics["val_accuracy"] for r in done if r.feasible), default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    limit_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="searches per mode, interleaved")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 12 trials")
    args = parser.parse_args()
    pipeline_file = args.pipeline.resolve()
    repeats = 1 if args.quick else args.repeats
    logging.basicConfig(level=logging.WARNING)
    with scratch_store(args.dense_cache) as tmp:
        overrides = [
            "objectives={accuracy: max, macs: min}",
            "tracking.register=false",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        ]
        overrides += ["search.trials=12"] if args.quick else []
        overrides += args.overrides
        limit = store_limit(args, pipeline_file, overrides)
        overrides.append(f"constraints.max_params={limit}")
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for repeat in range(repeats):
            for mode in MODES if repeat % 2 == 0 else reversed(MODES):
                print(f"repeat {repeat + 1}/{repeats}: skip_over_limit={mode}", file=sys.stderr, flush=True)
                runs[mode].append(
                    one_search(pipeline_file, [*overrides, f"search.skip_over_limit={mode}"], f"r{repeat}-{mode}")
                )
    report(pipeline_file, args.overrides, limit, runs)


def report(pipeline_file: Path, overrides: list[str], limit: int, runs: dict[str, list[dict[str, Any]]]) -> None:
    shown = pipeline_file.relative_to(ROOT) if pipeline_file.is_relative_to(ROOT) else pipeline_file.name
    print(
        f"Over-limit benchmark, {date.today().isoformat()}, {shown}, constraints.max_params={limit}, "
        f"objectives accuracy and MACs, overrides: {' '.join(overrides) or 'none'}\n"
    )
    print(
        "| search.skip_over_limit | search phase (median) | trials over / within the limit | engine time over / "
        "within (median) | front (trials) | best feasible val acc |"
    )
    print("|---|---:|---:|---:|---|---:|")
    for mode, done in runs.items():
        med = {
            key: statistics.median(run[key] for run in done) for key in ("search_s", "over_engine_s", "within_engine_s")
        }
        print(
            f"| {mode} | {med['search_s']:.1f} s | {done[0]['over']} / {done[0]['within']} | "
            f"{med['over_engine_s']:.1f} / {med['within_engine_s']:.1f} s | {done[0]['front']} | "
            f"{done[0]['best_within']:.4f} |"
        )
    on, off = runs["true"], runs["false"]
    differing = max(_differing(a["proposals"], b["proposals"]) for a in on for b in off)
    same_front = all(a["front"] == b["front"] for a in on for b in off)
    ratio = statistics.median(r["search_s"] for r in off) / statistics.median(r["search_s"] for r in on)
    print(f"\nsearch phase with the skip off / on: {ratio:.2f}x (medians of {len(on)} interleaved searches each)")
    print(
        f"proposals that differ between the modes: {differing} of {len(on[0]['proposals'])} (the most over any two "
        "searches)"
    )
    print(f"same front in every search of both modes: {'yes' if same_front else 'no'}")


def _differing(these: list[Any], those: list[Any]) -> int:
    """How many trials, position by position, proposed other parameters (a missing one counts)."""
    return sum(a != b for a, b in zip(these, those, strict=False)) + abs(len(these) - len(those))


if __name__ == "__main__":
    main()
