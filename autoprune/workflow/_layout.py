"""Does the model fit the data: it takes the data's inputs (in which memory layout it runs fastest)
and returns one logit per class. Checked before anything is written, so a model that cannot run on
the data is a one-line error naming the cause."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import engine
from ..config import PipelineConfig
from ..data import Splits
from ..errors import ModelError

__all__ = ["fit_layout"]


def fit_layout(model: nn.Module, config: PipelineConfig, splits: Splits) -> tuple[Splits, str | None]:
    """The splits laid out for the model: batches channels-last when it has 2-D convolutions and
    takes such inputs (see `data.TensorSplit`), else in the default layout; forward passes on two
    training inputs. Returns the splits and, when a convolutional model refuses channels-last
    inputs, why.

    Raises:
        ModelError: The model cannot take the data's inputs at all: bad input, said before the search
            traces it (with the likely fix when 3-D arrays were read as images).
    """
    splits = splits.with_layout(False)
    try:
        outputs = _outputs(model, splits.train.x[:2])
    except Exception as exc:  # user models and user data
        hint = ""
        if getattr(config.data, "add_channel", False) and len(splits.input_shape) == 3 and splits.input_shape[0] == 1:
            hint = (
                "; 3-D arrays are read as (N, H, W) images and given a channel axis: for (N, C, L) sequences set "
                "data.add_channel: false"
            )
        shape = "x".join(map(str, splits.input_shape))
        raise ModelError(
            f"the model cannot take the data's {shape} inputs: {type(exc).__name__}: {exc}{hint}", key="model"
        ) from exc
    _check_outputs(outputs, splits)
    if len(splits.input_shape) != 3 or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return splits, None
    fast = splits.with_layout(True)
    refused = _forward_fails(model, fast.train.x[:2])
    return (fast, None) if refused is None else (splits, refused)


def _check_outputs(outputs: Any, splits: Splits) -> None:
    """A model's outputs for two inputs must be a tensor of logits, one row of ``num_classes`` each."""
    expected = (2, splits.num_classes)
    if not isinstance(outputs, torch.Tensor):
        raise ModelError(
            f"the model returns a {type(outputs).__name__}, not a tensor: autoprune needs its logits, shape (batch, "
            f"{splits.num_classes}) for the data's {splits.num_classes} classes (return only them from forward)",
            key="model",
        )
    if tuple(outputs.shape) != expected:
        raise ModelError(
            f"the model gives outputs of shape {list(outputs.shape)} for 2 inputs, not {list(expected)}: one logit per "
            f"class of the data ({splits.num_classes}) is needed",
            key="model",
        )


def _forward_fails(model: nn.Module, inputs: torch.Tensor) -> str | None:
    """None when ``model`` runs on ``inputs``, else the error."""
    try:
        _outputs(model, inputs)
    except Exception as exc:  # user models and user data
        return f"{type(exc).__name__}: {exc}"
    return None


def _outputs(model: nn.Module, inputs: torch.Tensor) -> Any:
    """The model's outputs on ``inputs`` in eval mode, without gradients (its mode restored)."""
    with engine.eval_mode(model), torch.no_grad():
        return model(inputs)
