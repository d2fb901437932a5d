"""Fine-tuning throughput: what distillation with flips costs, which inference batch is fastest, and
what the input layout is worth.

Three measurements, each timed interleaved in this one process (medians over ``--repeats`` rounds, so
a noisy neighbour slows every variant alike):

1. **Inference batch size**: microseconds per image of ``engine.evaluate`` at batches of 64 to 1024,
   for every zoo model, dense and uniformly half-pruned. The engine validates every epoch, tests the
   front and precomputes teacher logits in batches of ``engine.INFERENCE_BATCH``.
2. **A distilled fine-tune with flips**: the pipeline's model pruned uniformly (``--ratio``), trained
   ``--epochs`` epochs on ``--samples`` training images with the pipeline's data and flips on:

   - ``plain``: no distillation,
   - ``distilled, logits looked up``: distilled from the dense model, whose logits are computed once
     for every image and its mirror image (the engine since 2026-12-05),
   - ``distilled, teacher per batch``: the same, with the teacher run on every flipped batch, as the
     engine did before and still does with random shifts (forced here by turning the lookup off).

   The two distilled variants must end at the same weights (within float rounding): the table shows
   their validation accuracies side by side.
3. **Input layout**: one fine-tune epoch (``engine.finetune``) and one ``engine.evaluate`` pass over
   ``--images`` random images, for every zoo model, dense and uniformly half-pruned, on 1x28x28 and
   3x32x32 inputs, in torch's default layout and channels-last (which the engine uses for
   convolutional models that take it: `autoprune.workflow._layout.fit_layout`); a last table times
   ``BatchNorm2d``'s forward and backward pass alone in both layouts.

Weights are random (time does not depend on their values), so no dense model is trained. Usage::

    python benchmarks/finetune_speed.py                 # Fashion-MNIST CNN, ~5 min on 2 cores
    python benchmarks/finetune_speed.py --quick         # the digits quickstart pipeline, ~1 min
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from unittest import mock

import torch
from engine import ZOO, dense_model  # this folder is on sys.path

from autoprune import data, engine, models
from autoprune.config import load_pipeline

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (64, 128, 256, 512, 1024)
LOOKUP = "autoprune.engine._finetune._teacher_logits"
LONG = 60  # epochs of the published-table finalize, the longest fine-tune the benchmarks run
BN_WIDTHS = (4, 8, 16, 32, 64)
VALIDATION = 128  # images each epoch of the layout table validates on
VARIANTS = ("plain", "distilled, logits looked up", "distilled, teacher per batch")


def _median_rounds(tasks: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Seconds of each task, median over ``repeats`` interleaved rounds."""
    seconds: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def _train_epoch(
    model: torch.nn.Module, splits: data.Splits, recipe: engine.FinetuneConfig, seconds: list[float]
) -> None:
    """One epoch of a copy of ``model``; its seconds appended to ``seconds``."""
    seconds.append(engine.finetune(copy.deepcopy(model), splits, recipe).epochs[0].seconds)


def inference_batches(repeats: int, images: int) -> None:
    shape = (1, 28, 28)
    split = data.TensorSplit(torch.randn(images, *shape), torch.randint(0, 10, (images,)))
    print(f"\n| model | {' | '.join(f'batch {b}' for b in BATCHES)} | 1024 / 128 |")
    print(f"|---|{'---:|' * (len(BATCHES) + 1)}")
    for name in ZOO:
        dense = dense_model(name, shape)
        pruned = copy.deepcopy(dense)
        engine.apply_plan(pruned, engine.PrunePlan.uniform(engine.discover(dense, shape), 0.5), shape)
        for label, model in ((f"{name} dense", dense), (f"{name} pruned 0.5", pruned.eval())):
            tasks = {b: functools.partial(engine.evaluate, model, split, batch_size=b) for b in BATCHES}
            per_image = {b: s / images * 1e6 for b, s in _median_rounds(tasks, repeats).items()}
            cells = " | ".join(f"{per_image[b]:.0f}" for b in BATCHES)
            print(f"| {label} | {cells} | {per_image[1024] / per_image[128]:.2f}x |", flush=True)
    print("\n(microseconds per image of `engine.evaluate`, random inputs)")


def input_layouts(repeats: int, images: int) -> None:
    print(
        "\n| model | inputs | train s/epoch: default | channels-last | speed-up | evaluate us/image: default | "
        "channels-last | speed-up |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    recipe = engine.FinetuneConfig(epochs=1, lr=0.02, batch_size=128)
    for shape in ((1, 28, 28), (3, 32, 32)):
        torch.manual_seed(0)
        split = data.TensorSplit(torch.randn(images, *shape), torch.randint(0, 10, (images,)))
        few = data.TensorSplit(split.x[:VALIDATION], split.y[:VALIDATION])  # each epoch's validation
        splits = data.Splits(split, few, split, shape, 10, tuple("0123456789"))
        fast = splits.with_layout(True)
        for name in ZOO:
            dense = dense_model(name, shape)
            pruned = copy.deepcopy(dense)
            engine.apply_plan(pruned, engine.PrunePlan.uniform(engine.discover(dense, shape), 0.5), shape)
            for label, model in ((f"{name} dense", dense), (f"{name} pruned 0.5", pruned.eval())):
                epochs: dict[bool, list[float]] = {False: [], True: []}

                tasks: dict[str, Callable[[], object]] = {
                    "train default": functools.partial(_train_epoch, model, splits, recipe, epochs[False]),
                    "train channels-last": functools.partial(_train_epoch, model, fast, recipe, epochs[True]),
                    "evaluate default": functools.partial(engine.evaluate, model, splits.test),
                    "evaluate channels-last": functools.partial(engine.evaluate, model, fast.test),
                }
                seconds = _median_rounds(tasks, repeats)
                default, last = (statistics.median(epochs[layout]) for layout in (False, True))
                ev_default, ev_last = (
                    seconds[f"evaluate {layout}"] / images * 1e6 for layout in ("default", "channels-last")
                )
                print(
                    f"| {label} | {'x'.join(map(str, shape))} | {default:.2f} | {last:.2f} | {default / last:.2f}x "
                    f"| {ev_default:.0f} | {ev_last:.0f} | {ev_default / ev_last:.2f}x |",
                    flush=True,
                )
    print(
        f"\n(train: one epoch of `engine.finetune` over the images, batch 128, with its validation on {VALIDATION}; "
        "evaluate: one `engine.evaluate` pass; random inputs, medians of interleaved rounds)"
    )


def batchnorm_layouts(repeats: int) -> None:
    print("\n| BatchNorm2d, batch 128 | " + " | ".join(f"{c} channels" for c in BN_WIDTHS) + " |")
    print(f"|---|{'---:|' * len(BN_WIDTHS)}")
    for side in (28, 14, 7):
        cells = []
        for width in BN_WIDTHS:
            norm = torch.nn.BatchNorm2d(width).train()
            inputs = torch.randn(128, width, side, side)
            variants = {"default": inputs, "channels-last": data.channels_last(inputs)}

            def step(x: torch.Tensor, norm: torch.nn.Module = norm) -> None:
                norm(x.requires_grad_()).sum().backward()

            seconds = _median_rounds({name: functools.partial(step, x) for name, x in variants.items()}, repeats * 3)
            cells.append(f"{seconds['channels-last'] / seconds['default']:.2f}x")
        print(f"| {side}x{side}: channels-last time / default | {' | '.join(cells)} |", flush=True)


def distilled_finetunes(
    pipeline: Path, overrides: list[str], ratio: float, epochs: int, samples: int, repeats: int
) -> None:
    loaded = load_pipeline(pipeline, overrides)
    splits = data.load(loaded.config.data, seed=loaded.config.seed, base_dir=loaded.base_dir)
    train = splits.train.subset(samples, seed=0)
    splits = dataclasses.replace(splits, train=train, augment=data.Augment(hflip=True))
    torch.manual_seed(0)
    dense = models.build(loaded.config.model, splits.input_shape, splits.num_classes).eval()
    start = copy.deepcopy(dense)
    engine.apply_plan(
        start, engine.PrunePlan.uniform(engine.discover(dense, splits.input_shape), ratio), splits.input_shape
    )
    recipe = engine.FinetuneConfig(epochs=epochs, lr=0.02, batch_size=splits.batch_size)
    distilled = recipe.replace(distill_alpha=0.5)
    rounds: dict[str, list[engine.FinetuneHistory]] = {name: [] for name in VARIANTS}

    def run(name: str) -> None:
        model = copy.deepcopy(start)
        config, teacher = (recipe, None) if name == "plain" else (distilled, dense)
        per_batch = name.endswith("per batch")  # no logits to look up: the teacher runs on every batch
        with mock.patch(LOOKUP, return_value=None) if per_batch else contextlib.nullcontext():
            rounds[name].append(engine.finetune(model, splits, config, teacher=teacher))

    _median_rounds({name: (lambda name=name: run(name)) for name in VARIANTS}, repeats)
    print(
        f"\n{loaded.config.name}: {engine.count_params(start):,} of {engine.count_params(dense):,} params kept "
        f"(uniform {ratio}), {len(train):,} training images, batch {splits.batch_size}, {epochs} epochs, flips on"
    )
    print(f"\n| fine-tune | set-up s | s per epoch | vs plain | {LONG} epochs: s | vs plain | val acc (every round) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    plain = None
    for name in VARIANTS:
        epoch = statistics.median(report.seconds for history in rounds[name] for report in history.epochs)
        setup = statistics.median(history.seconds - sum(r.seconds for r in history.epochs) for history in rounds[name])
        long = setup + LONG * epoch
        plain = plain or (epoch, long)
        accuracy = ", ".join(f"{history.epochs[-1].val_accuracy:.4f}" for history in rounds[name])
        print(
            f"| {name} | {setup:.1f} | {epoch:.2f} | {epoch / plain[0]:.2f}x | {long:.0f} | {long / plain[1]:.2f}x | "
            f"{accuracy} |"
        )
    print(
        f"\n(set-up: the fine-tune's time outside its epochs, the teacher's logits included; {LONG} epochs: set-up + "
        f"{LONG} x the median epoch)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "fashion_mnist_cnn.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ratio", type=float, default=0.5, help="uniform pruning ratio of the fine-tuned model")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each fine-tune")
    parser.add_argument("--samples", type=int, default=20_000, help="training images of each fine-tune")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians are quoted)")
    parser.add_argument("--images", type=int, default=4096, help="images per evaluate() call in the batch-size table")
    parser.add_argument(
        "--quick", action="store_true", help="the digits pipeline, 2 epochs, 1,024 images per evaluate()"
    )
    parser.add_argument(
        "--only", choices=("batches", "distillation", "layouts"), help="run one of the three measurements"
    )
    args = parser.parse_args()
    if args.quick:
        args.pipeline, args.epochs, args.samples, args.images = (
            ROOT / "pipelines" / "quickstart_digits.yaml",
            2,
            1000,
            1024,
        )
    threads = torch.get_num_threads()
    print(
        f"{date.today()} · {platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} threads"
    )
    if args.only in (None, "batches"):
        inference_batches(args.repeats, args.images)
    if args.only in (None, "distillation"):
        distilled_finetunes(args.pipeline, args.overrides, args.ratio, args.epochs, args.samples, args.repeats)
    if args.only in (None, "layouts"):
        input_layouts(args.repeats, args.images)
        batchnorm_layouts(args.repeats)


if __name__ == "__main__":
    main()
