"""Fine-tuning (and dense training): SGD/AdamW, cosine schedule, label smoothing, distillation,
an exponential moving average of the weights, and the splits' training-time augmentation
(``data.augment``).

Knowledge distillation follows Hinton et al. (2015): the loss is
``(1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``.
Teacher logits are computed once per call for every image of the (in-memory) training set, and
with flips only (``data.augment.hflip``, no shift) for its mirror image too, so the teacher costs a
pass or two over the data instead of one forward pass per step (0.6x a plain step on the CNN); with
random shifts, or flips in a one-epoch run, the teacher runs on each augmented batch instead.

With ``ema_decay`` > 0 a copy of the model (BatchNorm statistics included) follows the trained
weights after every step, ``average <- d * average + (1 - d) * weights`` with
``d = min(ema_decay, (1 + n) / (10 + n))`` at the n-th update (the warm-up keeps a short run's
average from staying near its first steps); every epoch's validation judges the average, and the
model ends with the averaged weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..config import FinetuneConfig
from ..data import Augment, Splits, TensorSplit
from ..errors import TrialDiverged
from ._device import autocast, device_of, grad_scaler
from ._evaluate import INFERENCE_BATCH, evaluate
from ._modes import eval_mode

__all__ = ["EpochCallback", "EpochReport", "FinetuneConfig", "FinetuneHistory", "finetune"]


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch: 1-based ``epoch`` of ``epochs``, mean training loss, validation accuracy and
    loss; ``extra`` holds further figures by name (a supernet's smallest subnet's accuracy, say)."""

    epoch: int
    train_loss: float
    val_accuracy: float
    val_loss: float
    seconds: float
    epochs: int = 0  # how many the training runs (0: not known)
    extra: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class FinetuneHistory:
    epochs: list[EpochReport] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0
    train_samples: int = 0


EpochCallback = Callable[[EpochReport], bool | None]


def make_optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    """The optimizer a recipe names, over every parameter of ``model``."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=False
    )


def _averaged(model: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of ``model``'s weights and buffers (None when ``decay`` is 0)."""
    if decay == 0:
        return None

    def ema(
        averages: tuple[torch.Tensor, ...] | list[torch.Tensor],
        currents: tuple[torch.Tensor, ...] | list[torch.Tensor],
        updates: torch.Tensor | int,
    ) -> None:
        """One update of a group of same-dtype tensors (counters such as BatchNorm's are copied)."""
        if not averages[0].is_floating_point():
            torch._foreach_copy_(averages, currents)
            return
        n = int(updates)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averages, currents, 1 - d)

    return AveragedModel(model, multi_avg_fn=ema, use_buffers=True)


def _teacher_logits(teacher: nn.Module, split: TensorSplit, augment: Augment, epochs: int) -> torch.Tensor | None:
    """The teacher's logits of each training image, (views, N, classes): the image, then (flips)
    its mirror image. None when they are better computed per batch: random shifts make too many
    versions of an image, and with flips one epoch sees each image once, not twice."""
    views = augment.views
    if views is None or epochs == 0 or views > epochs:
        return None
    with eval_mode(teacher), torch.inference_mode():
        logits = [
            torch.cat([teacher(x.flip(-1) if view else x) for x, _ in split.batches(INFERENCE_BATCH)])
            for view in range(views)
        ]
    return torch.stack(logits)


def _teacher_batch(
    teacher: nn.Module | None,
    soft_targets: torch.Tensor | None,
    index: torch.Tensor,
    inputs: torch.Tensor,
    flipped: torch.Tensor | None,
) -> torch.Tensor | None:
    """The teacher's logits for this batch: looked up (each image's or its mirror's), or computed now."""
    if soft_targets is not None:
        if flipped is None:
            return soft_targets[0, index]
        return torch.where(flipped[:, None], soft_targets[1, index], soft_targets[0, index])
    if teacher is None:
        return None
    teacher.eval()
    with torch.inference_mode():
        logits: torch.Tensor = teacher(inputs)
        return logits.clone()  # clone: inference tensors cannot be saved for backward


def cosine_lr(optimizer: torch.optim.Optimizer, peak: float, step: int, total_steps: int) -> None:
    """Set the learning rate of ``step`` of ``total_steps`` on the cosine schedule from ``peak`` to 0."""
    for group in optimizer.param_groups:
        group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * step / total_steps))


def _distillation(
    teacher: nn.Module | None, train: TensorSplit, augment: Augment, config: FinetuneConfig
) -> tuple[nn.Module | None, torch.Tensor | None]:
    """The model to distil from (None without distillation) and its precomputed logits, when they are."""
    distil = teacher if teacher is not None and config.distill_alpha > 0 else None
    return distil, _teacher_logits(distil, train, augment, config.epochs) if distil is not None else None


def _backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Gradients of ``loss`` (scaled for fp16) and one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _compiled(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model``'s forward compiled by ``torch.compile`` for the training steps (the weights are
    shared; evaluation calls the model itself)."""
    compiled: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model)
    return compiled


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(logits / T))`` (Hinton et al., 2015)."""
    t = temperature
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(logits / t, dim=1),
        nn.functional.log_softmax(teacher / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return soft * (t * t)


def _loss(
    logits: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None, config: FinetuneConfig
) -> torch.Tensor:
    logits = logits.float()  # the loss in float32 under mixed precision too
    hard = nn.functional.cross_entropy(logits, targets, label_smoothing=config.label_smoothing)
    if teacher is None or config.distill_alpha == 0:
        return hard
    soft = distillation_loss(logits, teacher, config.temperature)
    return (1 - config.distill_alpha) * hard + config.distill_alpha * soft


def check_finite(loss: torch.Tensor, config: FinetuneConfig, epoch: int, step: int) -> None:
    """Raise `TrialDiverged` when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        raise TrialDiverged(
            f"the training loss became {float(loss.detach())} at epoch {epoch}, step {step + 1} "
            f"(lr={config.lr:g}, optimizer={config.optimizer}); try a lower learning rate"
        )


def finetune(
    model: nn.Module,
    splits: Splits,
    config: FinetuneConfig,
    *,
    teacher: nn.Module | None = None,
    on_epoch: EpochCallback | None = None,
) -> FinetuneHistory:
    """Train ``model`` in place on ``splits.train``, evaluating on ``splits.val`` after every epoch.

    Args:
        teacher: The dense model to distil from (used when ``config.distill_alpha > 0``).
        on_epoch: Called after each epoch with its report; returning True stops training early.

    Raises:
        TrialDiverged: The loss became NaN or infinite.
    """
    start = time.perf_counter()
    train = splits.train
    if config.train_fraction < 1:
        train = train.subset(max(1, int(len(train) * config.train_fraction)), seed=config.seed)
    augment = splits.augment
    distil, soft_targets = _distillation(teacher, train, augment, config)
    optimizer = make_optimizer(model, config)
    averaged = _averaged(model, config.ema_decay)
    device = device_of(model)
    scaler = grad_scaler(device, config.precision)
    forward = _compiled(model) if config.compile else model
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = len(train.shuffled_batches(config.batch_size))
    total_steps, step = max(1, config.epochs * steps_per_epoch), 0
    reports: list[EpochReport] = []
    stopped = False
    for epoch in range(1, config.epochs + 1):
        epoch_start, loss_sum = time.perf_counter(), 0.0
        model.train()
        for index in train.shuffled_batches(config.batch_size, generator):
            cosine_lr(optimizer, config.lr, step, total_steps)
            inputs, targets, flipped = train.training_batch(index, augment, generator)
            teacher_batch = _teacher_batch(distil, soft_targets, index, inputs, flipped)
            with autocast(device, config.precision):
                loss = _loss(forward(inputs), targets, teacher_batch, config)
            check_finite(loss, config, epoch, step)
            _backward_step(loss, optimizer, scaler)
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += float(loss.detach()) * len(index)
            step += 1
        val = evaluate(averaged.module if averaged is not None else model, splits.val)  # what the model ends as
        report = EpochReport(
            epoch, loss_sum / len(train), val.accuracy, val.loss, time.perf_counter() - epoch_start, config.epochs
        )
        reports.append(report)
        if on_epoch is not None and on_epoch(report):
            stopped = True
            break
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    model.eval()
    return FinetuneHistory(reports, stopped, time.perf_counter() - start, len(train))
