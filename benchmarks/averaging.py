"""Weight averaging in the final fine-tune (``finetune.ema_decay`` / ``finalize.ema_decay``): how
far does the moving average of the weights move validation and test accuracy, against the last
weights of the same fine-tune?

The average does not steer training (it follows the weights; the optimizer never sees it), so one
fine-tune gives both models: its last weights, which are what the fine-tune gives without averaging,
and their moving average. Each front member of a finished search is fine-tuned again exactly as the
pipeline's finalize does (same plan, recipe and epochs), with averaging on, once per ``--seeds``
fine-tune seed; both models are evaluated on the validation and the test split.

Usage::

    python benchmarks/averaging.py --quick            # the quickstart: search, then its front x 3 seeds (~2 min)
    python benchmarks/averaging.py --pipeline pipelines/fashion_mnist_cnn.yaml --set ... \\
        --store DIR --trial 10                          # trial 10 of a finished run in DIR (the run's --set)

Without ``--store`` the pipeline is run first into a scratch store (``--set`` applies to it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from allocation import load_dense  # this folder is on sys.path
from over_limit import PIPELINE, run_named, scratch_store

from autoprune import engine, workflow
from autoprune.config import load_pipeline
from autoprune.search import Objectives, Study
from autoprune.workflow._members import final_candidate
from autoprune.workflow._space import build_space

DECAY = 0.999


def study_trials(config: Any) -> dict[int, dict[str, Any]]:
    """Sampled params by trial number, of the pipeline's newest study (``search.study`` names it)."""
    study = Study(workflow.storage_url(config), config.study_name, objectives=Objectives(list(config.objectives)))
    study.connect().open(resume=True)
    return {record.number: record.params for record in study.records()}


def refinalize(dense: Any, splits: Any, candidate: engine.Candidate, measure: engine.MeasureConfig) -> dict[str, float]:
    """Fine-tune ``candidate`` (averaging on); the last weights and the average, on val and test."""
    last_epoch = candidate.finetune.epochs
    raw: dict[str, float] = {}
    model: list[Any] = []

    def keep_model(result: engine.CandidateResult) -> None:
        model.append(result.model)

    def judge_last_weights(report: engine.EpochReport) -> None:
        if report.epoch == last_epoch:  # before the fine-tune swaps the average in
            raw.update(
                val=engine.evaluate(model[0], splits.val).accuracy, test=engine.evaluate(model[0], splits.test).accuracy
            )

    clock = time.perf_counter()
    result = engine.evaluate_candidate(
        dense, candidate, splits, measure=measure, on_epoch=judge_last_weights, on_measured=keep_model
    )
    assert result.model is not None
    return {
        "last_val": raw["val"],
        "last_test": raw["test"],
        "avg_val": result.val_accuracy,
        "avg_test": engine.evaluate(result.model, splits.test).accuracy,
        "params": result.params,
        "epochs": last_epoch,
        "minutes": (time.perf_counter() - clock) / 60,
    }


def measure_members(
    args: argparse.Namespace, pipeline_file: Path, overrides: list[str], store: Path, trials: list[int]
) -> list[dict[str, Any]]:
    """Each of ``trials`` of the run in ``store`` finalized again with averaging, once per seed."""
    sets = [*overrides, f"tracking.uri=sqlite:///{store / 'mlflow.db'}"]
    config, splits, prepared = load_dense(pipeline_file, sets, args.dense_cache or store / "cache")
    dense = prepared.model
    space = build_space(config, dense, engine.discover(dense, splits.input_shape), splits)
    params = study_trials(config)
    measure = engine.MeasureConfig(latency=engine.LatencyConfig(repeats=5, warmup=2))
    rows = []
    for trial in trials:
        base = final_candidate(space.candidate(params[trial]), config.finalize)
        for seed in args.seeds:
            finetune = base.finetune.replace(ema_decay=args.decay, seed=seed)
            row = {
                "trial": trial,
                "seed": seed,
                **refinalize(dense, splits, dataclasses.replace(base, finetune=finetune), measure),
            }
            print(
                f"trial {trial} seed {seed}: last weights val {row['last_val']:.4f} test {row['last_test']:.4f} | "
                f"average val {row['avg_val']:.4f} test {row['avg_test']:.4f} ({row['minutes']:.1f} min)",
                flush=True,
            )
            rows.append(row)
    return rows


def report(rows: list[dict[str, Any]], decay: float, command: str) -> None:
    print(f"\n### Weight averaging in the final fine-tune, ema_decay {decay:g} ({date.today()})\n")
    print(f"`{command}`\n")
    print("| trial | params | epochs | seed | val: last | val: average | test: last | test: average | test gain |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['trial']} | {r['params']:,} | {r['epochs']} | {r['seed']} | {r['last_val']:.4f} | "
            f"{r['avg_val']:.4f} | "
            f"{r['last_test']:.4f} | {r['avg_test']:.4f} | {100 * (r['avg_test'] - r['last_test']):+.2f} |"
        )
    gains = {split: [100 * (r[f"avg_{split}"] - r[f"last_{split}"]) for r in rows] for split in ("val", "test")}
    wins = sum(g > 0 for g in gains["test"])
    print(
        f"\nmedian gain of the average: val {statistics.median(gains['val']):+.2f} points, test "
        f"{statistics.median(gains['test']):+.2f} points; test higher in {wins} of {len(rows)}, lower in "
        f"{sum(g < 0 for g in gains['test'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pipeline", type=Path, default=PIPELINE, help="default: the quickstart")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--store", type=Path, default=None, help="the directory of a finished run's mlflow.db and optuna.db"
    )
    parser.add_argument(
        "--trial", dest="trials", type=int, action="append", default=[], help="default: the front's finalized members"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tune seeds per member")
    parser.add_argument("--decay", type=float, default=DECAY, help="ema_decay of the fine-tunes")
    parser.add_argument(
        "--dense-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="trained dense models by config hash (default: with --store its cache, else mlflow/cache, where "
        "`autoprune run` keeps the pipelines' own)",
    )
    parser.add_argument("--quick", action="store_true", help="at most 2 front members, 1 seed")
    args = parser.parse_args()
    if args.quick:
        args.overrides.append("finalize.max_members=2")
        args.seeds = args.seeds[:1]
    logging.getLogger("autoprune").setLevel(logging.WARNING)
    command = shlex.join(["python", "benchmarks/averaging.py", *sys.argv[1:]])
    pipeline_file = args.pipeline.resolve()
    if args.store is not None:
        if not args.trials:
            raise SystemExit("--store needs the trials to finalize again (--trial N)")
        rows = measure_members(args, pipeline_file, args.overrides, args.store.resolve(), args.trials)
    else:
        with scratch_store(args.dense_cache or Path("mlflow/cache")) as tmp:
            overrides = [*args.overrides, "tracking.register=false", "finalize.onnx=false"]
            result = run_named(pipeline_file, [*overrides, f"tracking.uri=sqlite:///{tmp}/mlflow.db"], "averaging")
            trials = args.trials or sorted(member.trial for member in result.members)
            args.dense_cache = None  # the scratch store's own cache
            rows = measure_members(args, pipeline_file, [*overrides, "search.study=averaging"], Path(tmp), trials)
            seed = load_pipeline(pipeline_file, overrides).config.seed
        finalized = {member.trial: member.test_accuracy for member in result.members}
        same = all(
            abs(r["last_test"] - finalized[r["trial"]]) < 1e-9
            for r in rows
            if r["seed"] == seed and r["trial"] in finalized
        )
        print(f"seed {seed}'s last weights test as the pipeline's own finalize did: {'yes' if same else 'NO'}")
    report(rows, args.decay, command)


if __name__ == "__main__":
    main()
