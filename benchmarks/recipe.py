"""Fine-tune recipe at a fixed small architecture: how much accuracy do longer fine-tuning and
distillation buy back, and how does the pruned architecture do when trained from scratch?

The published Fashion-MNIST table lists "2 Conv <100K parameters: 92.5%". The search-quality
benchmark finalizes its front with 10 epochs; this takes the uniform L1 plan that keeps at most
``--params`` parameters (default 25,000, the issue's goal) and fine-tunes that one architecture with
each recipe, all on the whole training split, judged on the test split:

- ``finetune N``: the search-quality baselines' recipe (SGD, lr 0.02, cosine, weight decay 5e-4)
  for N epochs, for each N in ``--epochs``,
- ``distill N``: the same, distilled from the dense model (alpha ``--alpha``, temperature 4),
- ``gradual N`` (with ``--gradual K``): the same final architecture reached in K steps instead of
  one (each step removes 1/K of the channels to go, re-ranked by L1 on the weights fine-tuned so far,
  then one epoch of fine-tuning; the last step's fine-tune takes the remaining epochs, N in all),
- ``scratch N``: the same architecture re-initialised and trained with the dense model's own
  recipe (the pipeline's ``model.train``), for the longest N: does pruning's inheritance matter?

Usage (the dense model from the pipeline's settings, trained once and kept in ``--dense-cache``)::

    python benchmarks/recipe.py --pipeline pipelines/fashion_mnist_cnn.yaml \\
        --set model.train.epochs=40 --set data.augment.hflip=true
    python benchmarks/recipe.py --quick     # LeNet-5, 1 and 2 epochs
"""

from __future__ import annotations

import argparse
import copy
import time
from datetime import date
from pathlib import Path

import torch
from allocation import load_dense  # this folder is on sys.path
from search_quality import RECIPE

from autoprune import data, engine
from autoprune.workflow._dense import training_recipe

ROOT = Path(__file__).resolve().parent.parent


def kept_params(dense: torch.nn.Module, input_shape: tuple[int, ...], ratio: float) -> int:
    """Parameters left by the uniform L1 plan at ``ratio``."""
    model = copy.deepcopy(dense)
    engine.apply_plan(
        model, engine.PrunePlan.uniform(engine.discover(dense, input_shape), ratio, importance="l1"), input_shape
    )
    return engine.count_params(model)


def uniform_within(dense: torch.nn.Module, input_shape: tuple[int, ...], params: int) -> tuple[float, engine.PrunePlan]:
    """The lowest uniform L1 ratio (to 0.005) whose pruned model keeps at most ``params`` parameters."""

    def kept(ratio: float) -> int:
        return kept_params(dense, input_shape, ratio)

    low, high = 0.0, 0.95
    if kept(high) > params:
        raise SystemExit(f"even ratio {high} keeps more than {params:,} params")
    while high - low > 0.005:
        middle = (low + high) / 2
        low, high = (low, middle) if kept(middle) <= params else (middle, high)
    return high, engine.PrunePlan.uniform(engine.discover(dense, input_shape), high, importance="l1")


def gradual(
    dense: torch.nn.Module, plan: engine.PrunePlan, splits: data.Splits, finetune: engine.FinetuneConfig, steps: int
) -> torch.nn.Module:
    """Prune a copy of ``dense`` to ``plan``'s architecture in ``steps`` steps with fine-tuning between
    them: ``steps - 1`` one-epoch fine-tunes, then ``finetune.epochs - steps + 1`` epochs after the last."""
    if not 1 <= steps <= finetune.epochs:
        raise SystemExit(f"--gradual {steps}: needs 1 to {finetune.epochs} steps (one epoch each)")
    sizes = {group.name: group.size for group in engine.discover(dense, splits.input_shape)}
    final = {name: plan.kept_channels(name, size) for name, size in sizes.items()}
    model = copy.deepcopy(dense)
    for step in range(1, steps + 1):
        keep = {name: size - round((size - final[name]) * step / steps) for name, size in sizes.items()}
        engine.apply_plan(model, engine.PrunePlan(keep=keep, importance=plan.importance), splits.input_shape)
        epochs = 1 if step < steps else finetune.epochs - steps + 1
        engine.finetune(model, splits, finetune.replace(epochs=epochs))
    return model.eval()


def reinitialised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return fresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "fashion_mnist_lenet5.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--params", type=int, default=25_000, help="the architecture: the uniform plan keeping at most this many params"
    )
    parser.add_argument("--epochs", default="10,30", help="fine-tune epochs, comma-separated")
    parser.add_argument("--alpha", type=float, default=0.5, help="distillation weight")
    parser.add_argument("--gradual", type=int, default=0, metavar="K", help="also prune in K steps (0: no such row)")
    parser.add_argument("--seed", type=int, default=0, help="fine-tune seed (batch order, and the scratch row's init)")
    parser.add_argument("--quick", action="store_true", help="epochs 1,2 (a smoke run)")
    parser.add_argument(
        "--dense-cache",
        type=Path,
        default=Path("mlflow/cache"),
        metavar="DIR",
        help="trained dense models by config hash (default: mlflow/cache, where `autoprune run` keeps the pipelines' "
        "own)",
    )
    args = parser.parse_args()
    epochs = [1, 2] if args.quick else [int(e) for e in args.epochs.split(",")]
    config, splits, dense = load_dense(args.pipeline, args.overrides, args.dense_cache)
    ratio, plan = uniform_within(dense.model, splits.input_shape, args.params)
    pruned = copy.deepcopy(dense.model)
    engine.apply_plan(pruned, plan, splits.input_shape)
    macs = engine.count_macs(pruned, splits.input_shape) / dense.reference.macs
    print(
        f"{date.today()} · {config.name}: dense test {dense.reference.test_accuracy:.4f}, {dense.reference.params:,} "
        "params; "
        f"uniform ratio {ratio:.3f} keeps {engine.count_params(pruned):,} params, {macs:.1%} MACs; fine-tune seed "
        f"{args.seed}"
    )
    print("\n| recipe | epochs | val acc | test acc | test vs dense (points) | seconds |")
    print("|---|---:|---:|---:|---:|---:|")

    def report(name: str, count: int, model: torch.nn.Module, clock: float) -> None:
        val, test = engine.evaluate(model, splits.val).accuracy, engine.evaluate(model, splits.test).accuracy
        print(
            f"| {name} | {count} | {val:.4f} | {test:.4f} | {100 * (test - dense.reference.test_accuracy):+.2f} "
            f"| {time.perf_counter() - clock:.0f} |",
            flush=True,
        )

    for count in epochs:
        finetune = engine.FinetuneConfig(epochs=count, batch_size=splits.batch_size, seed=args.seed, **RECIPE)
        for name, alpha in (("finetune", 0.0), (f"distill (alpha {args.alpha})", args.alpha)):
            clock = time.perf_counter()
            candidate = engine.Candidate(plan, finetune.replace(distill_alpha=alpha))
            result = engine.evaluate_candidate(dense.model, candidate, splits)
            assert result.model is not None
            report(name, count, result.model, clock)
        if args.gradual:
            clock = time.perf_counter()
            steps = min(args.gradual, count)
            report(f"gradual, {steps} steps", count, gradual(dense.model, plan, splits, finetune, steps), clock)
    clock = time.perf_counter()
    seed = config.seed + args.seed
    scratch = reinitialised(pruned, seed)
    recipe = training_recipe(config, splits).replace(epochs=epochs[-1], seed=seed)
    engine.finetune(scratch, splits, recipe)
    report(f"scratch (dense recipe, lr {recipe.lr})", epochs[-1], scratch.eval(), clock)


if __name__ == "__main__":
    main()
