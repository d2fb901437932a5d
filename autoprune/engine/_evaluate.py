"""Top-1 accuracy and mean cross-entropy of a model on one split."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import TensorSplit
from ._device import device_of
from ._modes import eval_mode

__all__ = ["INFERENCE_BATCH", "Evaluation", "evaluate"]

# Inference runs in batches of 128: on this project's CPU machine (4 MiB L2 per core) batches of 1024
# were 1.5-2.9x slower per image for every convolutional zoo model, dense and pruned, and 128 was the
# fastest size or within 10% of it but for dense MobileNetV2 (BENCHMARKS.md, "Fine-tuning throughput").
INFERENCE_BATCH = 128


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    samples: int


def evaluate(model: nn.Module, split: TensorSplit, *, batch_size: int = INFERENCE_BATCH) -> Evaluation:
    """Accuracy and loss of ``model`` (put in eval mode, then restored) on ``split``."""
    correct, loss_sum = 0, 0.0
    device = device_of(model)
    with eval_mode(model), torch.inference_mode():
        for inputs, targets in split.batches(batch_size):
            targets = targets.to(device, non_blocking=True)  # no-ops when the split is on the model's device
            logits = model(inputs.to(device, non_blocking=True))
            loss_sum += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
            correct += int((logits.argmax(dim=1) == targets).sum())
    count = max(len(split), 1)
    return Evaluation(accuracy=correct / count, loss=loss_sum / count, samples=len(split))
