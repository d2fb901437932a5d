"""A model as it is deployed: taking the data source's raw inputs, its preprocessing inside.

Models are trained on inputs scaled to [0, 1] (pixels / 255, digits / 16) and normalised per channel
with the training split's statistics. A person who loads a front model by its alias, or runs its ONNX
file, has the raw inputs: `Preprocessed` puts the scaling and the normalisation in front of the
model, as buffers of an ordinary ``nn.Module``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..data import Splits
from ..errors import ModelError
from ._device import cpu_copy
from ._modes import eval_mode

__all__ = ["Preprocessed", "traced"]


class Preprocessed(nn.Module):
    """``model`` applied to ``(raw * input_scale - mean) / std``, with ``mean`` and ``std`` per
    channel (images, sequences) or per feature (flat vectors) of ``input_shape``."""

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        input_scale: float = 1.0,
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.scale: torch.Tensor
        self.mean: torch.Tensor
        self.std: torch.Tensor
        shape = (1, int(input_shape[0]), *[1] * (len(input_shape) - 1))
        self.register_buffer("scale", torch.tensor(float(input_scale)))
        self.register_buffer("mean", _per_channel(mean or [0.0], shape))
        self.register_buffer("std", _per_channel(std or [1.0], shape))

    @classmethod
    def for_splits(cls, model: nn.Module, splits: Splits) -> Preprocessed:
        """``model`` (on the CPU: a copy when it is elsewhere) with the preprocessing that produced
        ``splits`` from its source's raw values."""
        return cls(
            cpu_copy(model), splits.input_shape, input_scale=splits.input_scale, mean=splits.mean, std=splits.std
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model((x * self.scale - self.mean) / self.std)
        return logits

    def raw(self, inputs: torch.Tensor) -> torch.Tensor:
        """The raw values that preprocess into ``inputs`` (the inverse of the preprocessing)."""
        return (inputs * self.std + self.mean) / self.scale


def _per_channel(values: Sequence[float], shape: tuple[int, ...]) -> torch.Tensor:
    """``values`` (one, or one per channel) as a tensor of ``shape`` (1, C, 1, ...)."""
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float32)
    return tensor.reshape(1, -1, *[1] * (len(shape) - 2)).expand(shape).clone()


def traced(model: nn.Module, example: torch.Tensor, *, atol: float = 1e-4) -> torch.jit.ScriptModule:
    """``model`` traced into TorchScript in eval mode: loads without autoprune or the model's source,
    is an ordinary module (``eval()``, ``train()``) and keeps the batch dimension free.

    Raises:
        ModelError: Tracing fails, or the traced module's outputs on another batch size differ.
    """
    model, example = cpu_copy(model), example.cpu()  # a file to deploy: on the CPU
    other = torch.cat([example, example[:1]])  # another batch size: a traced constant batch would show
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python values: checked below instead
        try:
            module = torch.jit.trace(model, example, check_trace=False)
            difference = float((module(other) - model(other)).abs().max())
        except Exception as exc:
            raise ModelError(f"cannot trace the model for MLflow: {type(exc).__name__}: {exc}", key="model") from exc
    if difference > atol:
        raise ModelError(f"the traced model's outputs differ by {difference:.2e} on another batch size", key="model")
    result: torch.jit.ScriptModule = module.eval()
    return result
