"""How well cheap evaluators rank pruning plans by the accuracy they reach after the full fine-tune.

For one pipeline's dense model, plan sets are drawn over its dependency groups:

- ``range``: random per-group ratios (uniform in [0, ``--max-ratio``]) across a MACs range
  (``--macs-range``, shares of the dense MACs), ``--plans`` of them;
- ``equal-macs``: at two MACs levels (``--levels``), plans whose ratios follow random directions
  (Dirichlet-skewed, far from uniform ones included, the uniform plan among them) scaled to the level
  by `engine.FitToLimit`; Kendall tau is counted over pairs of the same level only.

Ground truth is each plan's validation accuracy after the finalize fine-tune from the dense weights
(``--truth-epochs`` epochs on ``--truth-fraction`` of the training split), for two seeds; the tau
between the two seeds is the ceiling any evaluator can reach on that set. The evaluators:

- (a) ``pruned``: accuracy right after pruning, the dense BatchNorm statistics kept;
- (b) ``proxy``: today's trials, a 1-epoch fine-tune on 20% of the training split;
- (c) ``bn-recal``: accuracy after pruning with BatchNorm recalibrated on ``--calibration`` batches
  (EagleEye's adaptive BN);
- (d) ``supernet``: the subnet cut from the one-shot supernet (``--supernet-epochs`` sandwich-rule
  epochs, trained once, its cost reported apart), BatchNorm recalibrated the same way.

Per set it prints the final accuracies' spread, the ceiling, each evaluator's tau against the seeds'
mean and its seconds per candidate; every plan's figures go to ``--out`` as JSON lines (written as they
are measured: a run that is stopped keeps what it measured, and ``--resume`` skips it).

Usage (results in BENCHMARKS.md)::

    python benchmarks/evaluator_quality.py --quick                                  # digits, ~2 min
    python benchmarks/evaluator_quality.py --pipeline pipelines/fashion_mnist_lenet5.yaml
    python benchmarks/evaluator_quality.py --pipeline pipelines/fashion_mnist_cnn.yaml
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

from autoprune import config as cfg
from autoprune import data, engine, search
from autoprune.config import load_pipeline
from autoprune.search._supernet import calibration_batches, prepare_supernet
from autoprune.workflow import cache_dir
from autoprune.workflow._dense import build_dense, prepare_dense
from autoprune.workflow._layout import fit_layout

ROOT = Path(__file__).resolve().parent.parent
CACHE_HELP = (
    "where the trained dense model is found or kept (default: the cache folder beside the pipeline's tracking "
    "store, where `autoprune run` keeps it; it follows --set tracking.uri)"
)
PROXY = {"epochs": 1, "train_fraction": 0.2, "lr": 0.02}


def load(path: Path, overrides: list[str], cache: Path | None = None) -> tuple[Path, data.Splits, torch.nn.Module]:
    """The cache folder used, the pipeline's splits (in the layout its model runs fastest in) and trained
    dense model, found in (or trained into) ``cache``; by default the cache beside the pipeline's
    tracking store, where `autoprune run` keeps it (`--set tracking.uri=...` points there too)."""
    loaded = load_pipeline(path, overrides)
    config = loaded.config
    cache = cache or cache_dir(config)
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir, cache=cache)
    model = build_dense(config, splits, base_dir=loaded.base_dir)
    splits, _ = fit_layout(model, config, splits)
    dense = prepare_dense(
        config,
        splits,
        model,
        base_dir=loaded.base_dir,
        cache_dir=cache,
        latency=config.latency,
        on_epoch=lambda r: print(f"  dense epoch {r.epoch}/{r.epochs}: val {r.val_accuracy:.4f}", flush=True),
    )
    return cache, splits, dense.model


def add_plan_arguments(parser: argparse.ArgumentParser, *, plans: int, max_ratio: float) -> None:
    """The options `plan_sets` reads (shared with latency_table.py)."""
    parser.add_argument("--plans", type=int, default=plans, help="plans per set (range and equal-macs)")
    parser.add_argument("--levels", type=float, nargs=2, default=[0.25, 0.5], help="the equal-MACs levels")
    parser.add_argument("--macs-range", type=float, nargs=2, default=[0.15, 0.75], help="the range set's MACs shares")
    parser.add_argument("--max-ratio", type=float, default=max_ratio, help="the largest ratio of a group")
    parser.add_argument("--seed", type=int, default=0)


def plan_sets(
    dense: torch.nn.Module, shape: tuple[int, ...], args: argparse.Namespace
) -> dict[str, list[tuple[int, engine.PrunePlan]]]:
    """``range`` and ``equal-macs`` plans, each with its stratum (0 for the range, the level's index)."""
    groups = engine.discover(dense, shape)
    names = [g.name for g in groups]
    rng = np.random.default_rng(args.seed)
    dense_macs = engine.count_macs(dense, shape)
    low, high = args.macs_range
    ranged: list[tuple[int, engine.PrunePlan]] = []
    while len(ranged) < args.plans:
        ratios = {name: float(rng.uniform(0, args.max_ratio)) for name in names}
        plan = engine.PrunePlan(ratios=ratios)
        model = copy.deepcopy(dense)
        engine.apply_plan(model, plan, shape)
        if low <= engine.count_macs(model, shape) / dense_macs <= high:
            ranged.append((0, plan))
    equal: list[tuple[int, engine.PrunePlan]] = []
    caps = dict.fromkeys(names, args.max_ratio)
    for level, share in enumerate(args.levels):
        fit = engine.FitToLimit(dense, shape, groups, {"macs": share * dense_macs}, caps)
        equal.append((level, fit(engine.PrunePlan(ratios=dict.fromkeys(names, 0.5)))))  # the uniform plan
        while sum(lvl == level for lvl, _ in equal) < args.plans // len(args.levels):
            direction = rng.dirichlet(np.full(len(names), 0.6)) * len(names) * 0.5
            equal.append(
                (level, fit(engine.PrunePlan(ratios={n: min(0.95, float(d)) for n, d in zip(names, direction)})))
            )
    return {"range": ranged, "equal-macs": equal}


def _timed(function: Callable[[], float]) -> tuple[float, float]:
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


class Evaluators:
    """The four cheap evaluators and the ground truth, on one dense model (and its supernet)."""

    def __init__(self, dense: torch.nn.Module, splits: data.Splits, args: argparse.Namespace) -> None:
        self.dense, self.splits, self.args = dense, splits, args
        self.shape = splits.input_shape
        self.calibration = calibration_batches(splits, args.calibration, seed=0)
        self.nested: engine.NestedChannels | None = None
        self.supernet_seconds = 0.0
        self.subsets: dict[int, data.TensorSplit] = {}

    def build_supernet(self) -> None:
        groups = engine.discover(self.dense, self.shape)
        ratio = {"low": 0.0, "high": self.args.max_ratio, "step": 0.05}
        space = search.SearchSpace(cfg.SpaceConfig.model_validate({"pruning": {"ratio": ratio}}), groups).plans_only()
        settings = cfg.OneShotConfig(supernet_epochs=self.args.supernet_epochs, lr=self.args.supernet_lr)
        start = time.perf_counter()
        supernet = prepare_supernet(
            self.dense,
            self.splits,
            space,
            settings,
            cache_dir=self.args.cache,
            seed=0,
            calibration=self.calibration,
            on_epoch=lambda r: print(
                f"  supernet epoch {r.epoch}/{r.epochs}: largest {r.val_accuracy:.4f} {dict(r.extra)}", flush=True
            ),
        )
        self.supernet_seconds = time.perf_counter() - start
        self.nested = supernet.nested

    def pruned(self, plan: engine.PrunePlan) -> float:
        model = copy.deepcopy(self.dense)
        engine.apply_plan(model, plan, self.shape)
        return engine.evaluate(model, self.splits.val).accuracy

    def bn_recal(self, plan: engine.PrunePlan) -> float:
        model = copy.deepcopy(self.dense)
        engine.apply_plan(model, plan, self.shape)
        engine.recalibrate_batchnorm(model, self.calibration)
        return engine.evaluate(model, self.splits.val).accuracy

    def supernet(self, plan: engine.PrunePlan, samples: int | None = None, calibration: int | None = None) -> float:
        """(d), on ``samples`` of the validation split (``oneshot.score_samples``; None: all of it), its
        BatchNorm recalibrated on the first ``calibration`` batches (``oneshot.calibration_batches``;
        None: ``--calibration``)."""
        assert self.nested is not None
        subnet = self.nested.extract(self.nested.model, plan)
        engine.recalibrate_batchnorm(subnet, self.calibration[:calibration])
        if samples is not None and samples not in self.subsets:  # drawn once, as the strategy does
            self.subsets[samples] = self.splits.val.subset(samples, seed=0)
        return engine.evaluate(subnet, self.splits.val if samples is None else self.subsets[samples]).accuracy

    def finetuned(self, plan: engine.PrunePlan, *, epochs: int, fraction: float, lr: float, seed: int) -> float:
        model = copy.deepcopy(self.dense)
        engine.apply_plan(model, plan, self.shape)
        recipe = engine.FinetuneConfig(
            epochs=epochs, lr=lr, train_fraction=fraction, seed=seed, batch_size=self.splits.batch_size
        )
        torch.manual_seed(seed)
        return engine.finetune(model, self.splits, recipe).epochs[-1].val_accuracy

    def proxy(self, plan: engine.PrunePlan) -> float:
        return self.finetuned(plan, epochs=PROXY["epochs"], fraction=PROXY["train_fraction"], lr=PROXY["lr"], seed=0)

    def truth(self, plan: engine.PrunePlan, seed: int) -> float:
        args = self.args
        return self.finetuned(plan, epochs=args.truth_epochs, fraction=args.truth_fraction, lr=args.truth_lr, seed=seed)


def measure_plan(
    evaluators: Evaluators, set_name: str, index: int, level: int, plan: engine.PrunePlan
) -> dict[str, Any]:
    row: dict[str, Any] = {"set": set_name, "index": index, "level": level, "ratios": dict(plan.ratios)}
    model = copy.deepcopy(evaluators.dense)
    engine.apply_plan(model, plan, evaluators.shape)
    row["macs"] = engine.count_macs(model, evaluators.shape)
    for name, function in (
        ("pruned", evaluators.pruned),
        ("bn-recal", evaluators.bn_recal),
        ("supernet", evaluators.supernet),
        ("proxy", evaluators.proxy),
    ):
        row[name], row[f"{name}_s"] = _timed(lambda f=function: f(plan))
    for seed in (1, 2):
        row[f"truth{seed}"], row[f"truth{seed}_s"] = _timed(lambda s=seed: evaluators.truth(plan, s))
    return row


def add_subset(
    evaluators: Evaluators,
    sets: dict[str, list[tuple[int, engine.PrunePlan]]],
    out: Path,
    samples: int | None,
    calibration: int | None = None,
) -> None:
    """Score every plan of ``sets`` that ``out`` holds with (d) on ``samples`` validation samples (None:
    all) after ``calibration`` batches (None: ``--calibration``), rewrite it, summarise. ``sets`` must
    be drawn as the plans were (the same ``--plans``); a set left out of it is left as it is."""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    key = f"supernet-{samples or 'all'}" + (f"-cal{calibration}" if calibration is not None else "")
    for row in (r for r in rows if r["set"] in sets):
        plan = sets[row["set"]][row["index"]][1]
        assert dict(plan.ratios) == row["ratios"], "the plans drawn now differ from those measured (--plans?)"
        row[key], row[f"{key}_s"] = _timed(lambda p=plan: evaluators.supernet(p, samples, calibration))
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print("\n".join(summary(rows)))


def retime(evaluators: Evaluators, sets: dict[str, list[tuple[int, engine.PrunePlan]]], k: int, samples: int) -> None:
    """Seconds per candidate of (b), (d) and (d) on ``samples``, measured in turn on the same plans."""
    timed: dict[str, list[float]] = {"proxy": [], "supernet": [], f"supernet-{samples}": []}
    for plans in sets.values():
        for _, plan in plans[:k]:
            timed["proxy"].append(_timed(lambda p=plan: evaluators.proxy(p))[1])
            timed["supernet"].append(_timed(lambda p=plan: evaluators.supernet(p))[1])
            timed[f"supernet-{samples}"].append(_timed(lambda p=plan: evaluators.supernet(p, samples))[1])
    proxy = statistics.median(timed["proxy"])
    for name, seconds in timed.items():
        median = statistics.median(seconds)
        print(f"{name}: median {median:.3f} s per candidate over {len(seconds)} plans, 1/{proxy / median:.1f} of (b)")


def stratified_tau(scores: Sequence[float], truth: Sequence[float], strata: Sequence[int]) -> float:
    """Kendall tau over the pairs of the same stratum (pairs across levels of MACs would rank by MACs)."""
    concordant = discordant = 0
    for level in set(strata):
        members = [i for i, s in enumerate(strata) if s == level]
        tau, _ = kendalltau([scores[i] for i in members], [truth[i] for i in members])
        if not np.isfinite(tau):  # a stratum whose scores are all equal says nothing either way
            continue
        pairs = len(members) * (len(members) - 1) / 2
        concordant += (1 + tau) / 2 * pairs
        discordant += (1 - tau) / 2 * pairs
    total = concordant + discordant
    return (concordant - discordant) / total if total else float("nan")


def _variant(key: str) -> str:
    """``supernet-2000-cal8`` as ``on 2000 val samples, 8 calibration batches``."""
    samples, _, calibration = key.removeprefix("supernet-").partition("-cal")
    return f"on {samples} val samples" + (f", {calibration} calibration batches" if calibration else "")


def _cell(part: list[dict[str, Any]], evaluator: str, truth: list[float], strata: list[int]) -> str:
    """An evaluator's tau and median seconds on ``part`` ("-" where some plans lack its score)."""
    if any(evaluator not in r for r in part):
        return "-"
    tau = stratified_tau([r[evaluator] for r in part], truth, strata)
    return f"{tau:.2f} ({statistics.median(r[f'{evaluator}_s'] for r in part):.2f} s)"


def summary(rows: list[dict[str, Any]]) -> list[str]:
    header = "| set | plans | final acc spread | ceiling (seed vs seed) | (a) pruned | (b) 1-epoch proxy |"
    subsets = sorted({k for r in rows for k in r if k.startswith("supernet-") and not k.endswith("_s")})
    evaluators = ("pruned", "proxy", "bn-recal", "supernet", *subsets)
    extra = "".join(f" (d) {_variant(k)} |" for k in subsets)
    lines = [
        header + " (c) BN-recal | (d) supernet |" + extra,
        "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(subsets),
    ]
    for set_name in ("range", "equal-macs"):
        part = [r for r in rows if r["set"] == set_name]
        if len(part) < 3:
            continue
        strata = [r["level"] for r in part]
        truth = [(r["truth1"] + r["truth2"]) / 2 for r in part]
        ceiling = stratified_tau([r["truth1"] for r in part], [r["truth2"] for r in part], strata)
        spread = f"{min(truth):.4f}-{max(truth):.4f}"
        cells = " | ".join(_cell(part, e, truth, strata) for e in evaluators)
        lines.append(f"| {set_name} | {len(part)} | {spread} | {ceiling:.2f} | {cells} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "quickstart_digits.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_plan_arguments(parser, plans=40, max_ratio=0.85)
    parser.add_argument("--truth-epochs", type=int, default=10)
    parser.add_argument("--truth-fraction", type=float, default=1.0)
    parser.add_argument("--truth-lr", type=float, default=0.02)
    parser.add_argument("--calibration", type=int, default=20, help="BatchNorm calibration batches")
    parser.add_argument("--supernet-epochs", type=int, default=4)
    parser.add_argument("--supernet-lr", type=float, default=0.01)
    parser.add_argument("--cache", type=Path, help=CACHE_HELP)
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON lines of every plan (default: benchmarks/results/)"
    )
    parser.add_argument("--resume", action="store_true", help="skip the plans --out holds already")
    parser.add_argument(
        "--add-subset",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="add (d) scored on N validation samples to the plans --out holds (oneshot.score_samples; 0: all)",
    )
    parser.add_argument(
        "--add-calibration",
        type=int,
        nargs="+",
        default=None,
        metavar="B",
        help="with or without --add-subset: (d) after B calibration batches (oneshot.calibration_batches); "
        "every pair of the two lists is added",
    )
    parser.add_argument(
        "--retime",
        type=int,
        default=None,
        metavar="K",
        help="time (b), (d) and (d) on --add-subset samples on the first K plans of each set, interleaved",
    )
    parser.add_argument(
        "--sets", nargs="+", choices=["range", "equal-macs"], default=["range", "equal-macs"], help="which plan sets"
    )
    parser.add_argument("--quick", action="store_true", help="digits, 12 plans a set, 3 truth epochs")
    args = parser.parse_args()
    if args.quick:
        args.plans, args.truth_epochs, args.supernet_epochs, args.calibration = 12, 3, 2, 8
    out = args.out or ROOT / "benchmarks" / "results" / f"evaluator_quality-{args.pipeline.stem}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in out.read_text().splitlines()] if args.resume and out.exists() else []
    args.cache, splits, dense = load(args.pipeline, args.overrides, args.cache)  # the supernet is kept there too
    evaluators = Evaluators(dense, splits, args)
    evaluators.build_supernet()
    sets = {name: plans for name, plans in plan_sets(dense, splits.input_shape, args).items() if name in args.sets}
    if args.retime is not None:
        retime(evaluators, sets, args.retime, args.add_subset[0] if args.add_subset else 2000)
        return
    if args.add_subset is not None or args.add_calibration is not None:
        for samples in args.add_subset or [None]:
            for calibration in args.add_calibration or [None]:
                default = calibration is None or calibration == args.calibration
                add_subset(evaluators, sets, out, samples or None, None if default else calibration)
        return
    rows = list(done)
    seen = {(r["set"], r["index"]) for r in done}
    with out.open("a" if args.resume else "w") as sink:
        for set_name, plans in sets.items():
            for index, (level, plan) in enumerate(plans):
                if (set_name, index) in seen:
                    continue
                row = measure_plan(evaluators, set_name, index, level, plan)
                rows.append(row)
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                print(
                    f"  {set_name} {index + 1}/{len(plans)}: macs {row['macs']:,} truth {row['truth1']:.4f}/"
                    f"{row['truth2']:.4f} pruned {row['pruned']:.4f} proxy {row['proxy']:.4f} "
                    f"bn {row['bn-recal']:.4f} supernet {row['supernet']:.4f}",
                    flush=True,
                )
    pipeline = args.pipeline.relative_to(ROOT) if args.pipeline.is_absolute() else args.pipeline
    print(
        f"\n{date.today()} · python benchmarks/evaluator_quality.py --pipeline {pipeline}"
        f"{' --quick' if args.quick else ''} · truth: {args.truth_epochs} epochs on {args.truth_fraction:.0%} "
        f"of the training split, 2 seeds · supernet: {args.supernet_epochs} epochs, "
        f"{evaluators.supernet_seconds:.0f} s\n"
    )
    print("\n".join(summary(rows)))


if __name__ == "__main__":
    main()
