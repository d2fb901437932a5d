"""Training a weight-sharing supernet with the sandwich rule and in-place distillation.

Every step trains, on the same batch, the largest subnet on the labels, then the smallest and a few
random ones, each distilled from the largest one's outputs of this step (AutoSlim and BigNAS: the
"sandwich rule" keeps both ends of the width range trained; in-place distillation gives the small
subnets the soft targets that make them train well, at no extra forward pass for the teacher). The
gradients of all of them are summed into one update of the shared weights. The subnets are masked
inside the full model (`NestedChannels`), not pruned each step.

After each epoch the largest and smallest subnets are extracted, their BatchNorm statistics
recalibrated, and their validation accuracy reported: one shared set of running statistics fits no
particular width, so every judgement of a subnet recalibrates them first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..config import FinetuneConfig
from ..data import Splits
from ._calibrate import recalibrate_batchnorm
from ._device import autocast, device_of, grad_scaler
from ._evaluate import evaluate
from ._finetune import EpochReport, check_finite, cosine_lr, distillation_loss, make_optimizer
from ._nested import NestedChannels
from ._plan import PrunePlan

__all__ = ["SubnetChoice", "SupernetState", "calibrated_accuracy", "train_supernet"]


@dataclass(frozen=True)
class SubnetChoice:
    """Which subnets a sandwich step trains: the two ends of the space and a sampler for the rest."""

    largest: PrunePlan
    smallest: PrunePlan
    sample: Callable[[torch.Generator], PrunePlan]
    random: int = 2  # random subnets per step besides the two ends


@dataclass
class SupernetState:
    """Where a supernet's training stands, so an interrupted one goes on from its last epoch."""

    epoch: int = 0
    optimizer: dict[str, object] | None = None
    generator: torch.Tensor | None = None


def calibrated_accuracy(
    nested: NestedChannels, plan: PrunePlan, splits: Splits, batches: Sequence[torch.Tensor]
) -> tuple[float, float]:
    """Validation accuracy and loss of ``plan``'s subnet, extracted and its BatchNorm statistics
    recalibrated on ``batches``."""
    subnet = nested.extract(nested.model, plan)
    recalibrate_batchnorm(subnet, batches)
    result = evaluate(subnet, splits.val)
    return result.accuracy, result.loss


def _sandwich_update(
    nested: NestedChannels,
    choice: SubnetChoice,
    batch: tuple[torch.Tensor, torch.Tensor],
    recipe: FinetuneConfig,
    generator: torch.Generator,
    stepping: tuple[torch.optim.Optimizer, torch.amp.GradScaler],
    where: tuple[int, int],
) -> torch.Tensor:
    """One optimiser step on the summed gradients of the largest subnet (on the labels) and of the
    smallest and random ones (distilled from the largest); returns the largest one's loss.

    Raises:
        TrialDiverged: The loss is NaN or infinite (``where`` is its epoch and step); nothing stepped.
    """
    (inputs, targets), (optimizer, scaler), model = batch, stepping, nested.model
    optimizer.zero_grad(set_to_none=True)
    nested.select(nested.kept(choice.largest))
    with autocast(inputs.device, recipe.precision):
        logits = model(inputs).float()
        loss = nn.functional.cross_entropy(logits, targets, label_smoothing=recipe.label_smoothing)
    scaler.scale(loss).backward()
    teacher = logits.detach()
    for plan in [choice.smallest, *(choice.sample(generator) for _ in range(choice.random))]:
        nested.select(nested.kept(plan))
        with autocast(inputs.device, recipe.precision):
            soft = distillation_loss(model(inputs).float(), teacher, recipe.temperature)
        scaler.scale(soft).backward()
    check_finite(loss.detach(), recipe, *where)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def train_supernet(
    nested: NestedChannels,
    splits: Splits,
    recipe: FinetuneConfig,
    choice: SubnetChoice,
    *,
    calibration: Sequence[torch.Tensor],
    state: SupernetState | None = None,
    on_epoch: Callable[[EpochReport, SupernetState], None] | None = None,
) -> SupernetState:
    """Train ``nested.model`` for ``recipe.epochs`` epochs of sandwich steps (see the module docstring),
    from ``state`` when an earlier training was interrupted. ``on_epoch`` gets each epoch's report (the
    largest subnet's calibrated validation accuracy, the smallest one's in ``extra``) and the state to
    go on from.

    Raises:
        TrialDiverged: A loss became NaN or infinite.
    """
    model, train = nested.model, splits.train
    state = state or SupernetState()
    optimizer = make_optimizer(model, recipe)
    scaler = grad_scaler(device_of(model), recipe.precision)
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    generator = torch.Generator().manual_seed(recipe.seed)
    if state.generator is not None:
        generator.set_state(state.generator)
    steps_per_epoch = len(train.shuffled_batches(recipe.batch_size))
    total_steps = max(1, recipe.epochs * steps_per_epoch)
    for epoch in range(state.epoch + 1, recipe.epochs + 1):
        start, step = time.perf_counter(), (epoch - 1) * steps_per_epoch
        model.train()
        with nested.masking():
            loss_sum = 0.0
            for index in train.shuffled_batches(recipe.batch_size, generator):
                cosine_lr(optimizer, recipe.lr, step, total_steps)
                inputs, targets, _ = train.training_batch(index, splits.augment, generator)
                stepping = (optimizer, scaler)
                loss = _sandwich_update(nested, choice, (inputs, targets), recipe, generator, stepping, (epoch, step))
                loss_sum += float(loss) * len(index)
                step += 1
        nested.select(None)
        model.eval()
        largest = calibrated_accuracy(nested, choice.largest, splits, calibration)
        smallest = calibrated_accuracy(nested, choice.smallest, splits, calibration)
        state = SupernetState(epoch, optimizer.state_dict(), generator.get_state())
        report = EpochReport(
            epoch,
            loss_sum / len(train),
            largest[0],
            largest[1],
            time.perf_counter() - start,
            recipe.epochs,
            extra=(("smallest subnet", smallest[0]),),
        )
        if on_epoch is not None:
            on_epoch(report, state)
    model.eval()
    return state
