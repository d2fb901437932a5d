"""Per-group allocation: at equal MACs (or params), do non-uniform per-group ratios beat one uniform ratio?

The search-quality benchmark compares whole fronts; this asks the question under them directly. For
each target share of the dense model's MACs (``--cost macs``, the default) or parameters
(``--cost params``, the published-table goal's measure) it builds

- the **uniform** plan (every group at the one ratio that gives the target share),
- **near-uniform** plans: the uniform ratio plus a random offset per group in [-0.15, 0.15], shifted
  together until the cost matches again,
- **random** plans: a random direction in ratio space, scaled until the cost matches,
- **graded** plans (with ``--graded``, or ``--grade FIRST:LAST`` for other slopes): ratios rising with
  depth (early groups kept wider, the later, parameter-heavy ones cut harder) or falling with it,
  scaled until the cost matches,
- the uniform plan again with other fine-tune seeds: how far the same plan moves by chance,

fine-tunes each with the baselines' recipe (SGD, lr 0.02, cosine, weight decay 5e-4, L1 importance)
for the same epochs on the whole training split, and reports validation and test accuracy and the
speed-up over the dense model (latency side by side, the pipeline's ``latency`` settings). If no
non-uniform plan beats the uniform one by more than the noise, a search over per-group ratios has
little to gain on that model, whatever it samples. The plans match the uniform plan's cost as closely as
whole channel counts allow; the summary compares only those within 10% of it (a 6-channel layer, as in
LeNet-5, moves the MACs in coarse steps). ``--distill ALPHA`` fine-tunes every plan distilled from the
dense model (temperature 4), the published-table recipe.

Usage (times on the project's 2-core machine, dense models already in the cache)::

    python benchmarks/allocation.py --pipeline pipelines/fashion_mnist_lenet5.yaml   # 8 min
    python benchmarks/allocation.py --pipeline pipelines/fashion_mnist_cnn.yaml \
        --set model.train.epochs=20                       # ~1 hour (55 min, shared)
    python benchmarks/allocation.py --pipeline pipelines/fashion_mnist_resnet20.yaml --macs 0.25 --epochs 5 \
        --near 2 --random 2                               # 49 min (10 of them dense)
    python benchmarks/allocation.py --pipeline pipelines/fashion_mnist_cnn.yaml --set model.train.epochs=40 \
        --set data.augment.hflip=true --cost params --targets 0.255 --graded --near 2 --random 2 \
                                                          # 33 min (13 of them dense)
    python benchmarks/allocation.py --pipeline pipelines/fashion_mnist_cnn.yaml --set model.train.epochs=40 \
        --set data.augment.hflip=true --cost params --targets 0.255 --seeds 0 --near 0 --random 0 \
        --grade 0.25:1.75 --epochs 60 --distill 0.5      # 41 min: 0.9252 at 24,380 params
    python benchmarks/allocation.py --quick               # ~1 min

Without a cached dense model the pipeline's dense training runs first (the CNN's 20 epochs: 6 min).
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from search_quality import RECIPE  # the search-quality baselines' recipe (this folder is on sys.path)

from autoprune import data, engine
from autoprune.config import load_pipeline
from autoprune.workflow._dense import build_dense, prepare_dense

ROOT = Path(__file__).resolve().parent.parent
MAX_RATIO = 0.95
NEAR_SPREAD = 0.15
EARLY = 2  # validation accuracy after this many epochs is reported too: does it already rank the plans?
MATCH = 0.1  # plans compared with the uniform one only when their cost is within 10% of its
GRADES = {"graded, early wide": (0.5, 1.5), "graded, late wide": (1.5, 0.5)}  # ratio weight of the first and last group


def load_dense(path: Path, overrides: list[str], cache: Path) -> tuple[Any, data.Splits, Any]:
    """The pipeline's splits and trained dense model (trained once, then kept in ``cache``)."""
    loaded = load_pipeline(path, overrides)
    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir)
    dense = prepare_dense(
        config,
        splits,
        build_dense(config, splits, base_dir=loaded.base_dir),
        base_dir=loaded.base_dir,
        cache_dir=cache,
        latency=config.latency,
    )
    return config, splits, dense


class Allocator:
    """Plans over the dense model's groups, scaled to a target share of its MACs or params by bisection."""

    def __init__(
        self,
        dense: torch.nn.Module,
        input_shape: tuple[int, ...],
        cost: str = "macs",
        measure: engine.MeasureConfig = engine.MeasureConfig(),
    ) -> None:
        self.dense, self.input_shape, self.cost, self.measure = dense, input_shape, cost, measure
        self.groups = [group.name for group in engine.discover(dense, input_shape)]
        self.dense_macs = engine.count_macs(dense, input_shape)
        self.dense_cost = self._cost(dense)

    def _cost(self, model: torch.nn.Module) -> int:
        return engine.count_macs(model, self.input_shape) if self.cost == "macs" else engine.count_params(model)

    def share_of(self, result: engine.CandidateResult) -> float:
        """A fine-tuned plan's share of the dense cost, from what the engine measured."""
        return (result.macs if self.cost == "macs" else result.params) / self.dense_cost

    def share(self, ratios: list[float]) -> float:
        model = copy.deepcopy(self.dense)
        engine.apply_plan(model, self.plan(ratios), self.input_shape)
        return self._cost(model) / self.dense_cost

    def plan(self, ratios: list[float]) -> engine.PrunePlan:
        return engine.PrunePlan(ratios={g: r for g, r in zip(self.groups, ratios) if r > 0}, importance="l1")

    def fit(self, shape: Any, target: float, low: float, high: float) -> list[float]:
        """``shape(t)`` -> ratios, MACs falling as t rises; the t in [low, high] whose MACs are nearest ``target``."""
        best, gap = shape(low), float("inf")
        for _ in range(20):
            middle = (low + high) / 2
            ratios = shape(middle)
            share = self.share(ratios)
            if abs(share - target) < gap:
                best, gap = ratios, abs(share - target)
            low, high = (middle, high) if share > target else (low, middle)
        return best

    def uniform(self, target: float) -> list[float]:
        return self.fit(lambda t: [t] * len(self.groups), target, 0.0, MAX_RATIO)

    def near_uniform(self, target: float, rng: random.Random) -> list[float]:
        offsets = [rng.uniform(-NEAR_SPREAD, NEAR_SPREAD) for _ in self.groups]
        return self.fit(
            lambda t: [min(MAX_RATIO, max(0.0, t + o)) for o in offsets], target, -NEAR_SPREAD, MAX_RATIO + NEAR_SPREAD
        )

    def random(self, target: float, rng: random.Random) -> list[float]:
        direction = [rng.random() for _ in self.groups]
        return self.fit(lambda t: [min(MAX_RATIO, t * d) for d in direction], target, 0.0, MAX_RATIO / min(direction))

    def graded(self, target: float, first: float, last: float) -> list[float]:
        """Ratios whose weights run linearly from ``first`` (the first group) to ``last`` (the last)."""
        steps = max(1, len(self.groups) - 1)
        weights = [first + (last - first) * i / steps for i in range(len(self.groups))]
        return self.fit(lambda t: [min(MAX_RATIO, t * w) for w in weights], target, 0.0, MAX_RATIO / min(weights))


def grades(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """The graded plans asked for: both of `GRADES` with ``--graded``, and each ``--grade FIRST:LAST``."""
    chosen = dict(GRADES) if args.graded else {}
    chosen.update({f"graded {first:g}:{last:g}": (first, last) for first, last in args.grade})
    return chosen


def grade_weights(spec: str) -> tuple[float, float]:
    """``--grade FIRST:LAST`` -> (first, last), both positive."""
    try:
        first, last = (float(w) for w in spec.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FIRST:LAST, two numbers such as 0.5:1.5, but got {spec!r}"
        ) from None
    if first <= 0 or last <= 0:
        raise argparse.ArgumentTypeError(f"both weights must be above 0, but got {spec!r}")
    return first, last


def finetuned(
    allocator: Allocator, ratios: list[float], splits: data.Splits, args: argparse.Namespace, seed: int = 0
) -> dict[str, float]:
    recipe = {**RECIPE, "distill_alpha": args.distill} if args.distill else RECIPE
    finetune = engine.FinetuneConfig(epochs=args.epochs, batch_size=splits.batch_size, seed=seed, **recipe)
    candidate = engine.Candidate(allocator.plan(ratios), finetune)
    result = engine.evaluate_candidate(allocator.dense, candidate, splits, measure=allocator.measure)
    assert result.model is not None
    early = result.val_accuracy_per_epoch[min(EARLY, len(result.val_accuracy_per_epoch)) - 1]
    return {
        "val": result.val_accuracy,
        "test": engine.evaluate(result.model, splits.test).accuracy,
        "early": early,
        "macs": result.macs / allocator.dense_macs,
        "params": result.params,
        "share": allocator.share_of(result),
        "speedup": result.speedup_vs_dense,
    }


def run_target(
    allocator: Allocator, target: float, splits: data.Splits, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rng = random.Random(f"{args.seed}-{target}")
    uniform = allocator.uniform(target)
    share = allocator.share(uniform)  # the others match the uniform plan's cost, not the target's
    base = args.finetune_seed  # every plan's fine-tune seed; the uniform plan's reseeds follow it
    plans = [("uniform", uniform, base)] + [("uniform, seed", uniform, base + k) for k in range(1, args.seeds + 1)]
    plans += [("near-uniform", allocator.near_uniform(share, rng), base) for _ in range(args.near)]
    plans += [("random", allocator.random(share, rng), base) for _ in range(args.random)]
    plans += [(kind, allocator.graded(share, *weights), base) for kind, weights in grades(args).items()]
    rows = []
    for kind, ratios, seed in plans:
        clock = time.perf_counter()
        row = {"kind": kind, "ratios": ratios, **finetuned(allocator, ratios, splits, args, seed)}
        kind = f"{kind} {seed}" if seed else kind
        rows.append(row)
        print(
            f"| {target:.1%} | {kind} | {' / '.join(f'{r:.2f}' for r in ratios)} | {row['macs']:.1%} | "
            f"{row['params']:,} "
            f"| {row['speedup']:.2f}x | {row['early']:.4f} | {row['val']:.4f} | {row['test']:.4f} | "
            f"{row['test'] - rows[0]['test']:+.4f} "
            f"| {time.perf_counter() - clock:.0f} |",
            flush=True,
        )
    return rows


def summary(target: float, rows: list[dict[str, Any]]) -> str:
    """Each kind's accuracy minus the uniform plan's, over the plans whose cost is within `MATCH` of it."""
    uniform = rows[0]
    parts = [
        f"MACs {uniform['macs']:.1%}, params {uniform['params']:,} (target {target:.1%}): uniform test "
        f"{uniform['test']:.4f}"
    ]
    reseeded = [r["test"] - uniform["test"] for r in rows if r["kind"] == "uniform, seed"]
    if reseeded:
        parts.append(
            f"the same uniform plan fine-tuned with {len(reseeded)} other seed(s): test "
            + ", ".join(f"{d:+.4f}" for d in reseeded)
            + " (the noise)"
        )
    for kind in dict.fromkeys(r["kind"] for r in rows if r["kind"] not in ("uniform", "uniform, seed")):
        matched = [r for r in rows if r["kind"] == kind and abs(r["share"] / uniform["share"] - 1) <= MATCH]
        tests = [r["test"] - uniform["test"] for r in matched]
        vals = [r["val"] - uniform["val"] for r in matched]
        unmatched = sum(r["kind"] == kind for r in rows) - len(matched)
        if unmatched:
            parts.append(f"{unmatched} {kind} plan(s) left out: cost more than {MATCH:.0%} off the uniform plan's")
        if tests:
            parts.append(
                f"{kind}: test best {max(tests):+.4f}, median {statistics.median(tests):+.4f}; "
                f"validation best {max(vals):+.4f}, median {statistics.median(vals):+.4f}"
            )
    return " · ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "fashion_mnist_lenet5.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cost", choices=("macs", "params"), default="macs", help="what the plans are matched on")
    parser.add_argument(
        "--targets", "--macs", default="0.1,0.25", help="target shares of the dense cost, comma-separated"
    )
    parser.add_argument(
        "--graded",
        action="store_true",
        help="add the two graded plans per target (ratios rising or falling with depth)",
    )
    parser.add_argument(
        "--grade",
        action="append",
        type=grade_weights,
        default=[],
        metavar="FIRST:LAST",
        help="a graded plan whose ratio weights run from FIRST (first group) to LAST (last group)",
    )
    parser.add_argument(
        "--distill", type=float, default=0.0, metavar="ALPHA", help="distil every fine-tune from the dense model"
    )
    parser.add_argument("--near", type=int, default=3, help="near-uniform plans per target")
    parser.add_argument("--random", type=int, default=3, help="random plans per target")
    parser.add_argument(
        "--seeds", type=int, default=2, help="other fine-tune seeds of the uniform plan (the noise floor)"
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="fine-tune epochs per plan (the search-quality finalize)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the plans drawn")
    parser.add_argument(
        "--finetune-seed",
        type=int,
        default=0,
        help="fine-tune seed of every plan (batch order); another one repeats a run by chance",
    )
    parser.add_argument("--quick", action="store_true", help="one target (25%%), one plan of each kind, 2 epochs")
    parser.add_argument(
        "--dense-cache",
        type=Path,
        default=Path("mlflow/cache"),
        metavar="DIR",
        help="trained dense models by config hash (default: mlflow/cache, where `autoprune run` keeps the pipelines' "
        "own)",
    )
    args = parser.parse_args()
    if args.quick:
        args.targets, args.near, args.random, args.seeds, args.epochs = "0.25", 1, 1, 1, 2
    config, splits, dense = load_dense(args.pipeline, args.overrides, args.dense_cache)
    allocator = Allocator(dense.model, splits.input_shape, args.cost, engine.MeasureConfig(latency=config.latency))
    recipe = f"distilled (alpha {args.distill})" if args.distill else "not distilled"
    print(
        f"{date.today()} · {config.name}: dense test {dense.reference.test_accuracy:.4f}, {dense.reference.macs:,} "
        "MACs, "
        f"{dense.reference.params:,} params, groups {', '.join(allocator.groups)}; plans matched on {args.cost}; "
        f"{args.epochs} fine-tune epochs per plan, {recipe}"
    )
    print(
        f"\n| {args.cost} target | plan | ratios | MACs | params | speed-up vs dense | val acc after {EARLY} epochs "
        "| val acc "
        "| test acc | test vs uniform | seconds |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {
        target: run_target(allocator, target, splits, args) for target in (float(t) for t in args.targets.split(","))
    }
    print()
    for target, rows in results.items():
        print(summary(target, rows))


if __name__ == "__main__":
    main()
