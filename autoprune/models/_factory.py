"""Building a model from its typed config (or the JSON spec of that config)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from .._imports import import_callable, what_went_wrong
from ..config import (
    CNNModel,
    FactoryModel,
    LeNet5Model,
    MLPModel,
    MobileNetV2Model,
    ModelConfig,
    ResNetModel,
    VGGModel,
)
from ..errors import ModelError
from ._mobilenet import MobileNetV2
from ._resnet import ResNet
from ._vgg import VGG
from ._zoo import CNN, MLP, LeNet5

__all__ = ["build", "build_from_spec", "load_checkpoint", "model_spec"]

_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(ModelConfig)


def build(
    config: Any,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    search_dirs: Sequence[str | Path] = (),
) -> nn.Module:
    """A freshly initialised model for ``config`` adapted to ``input_shape`` and ``num_classes``.

    Raises:
        ModelError: The architecture does not fit the data or this machine's memory, or a factory fails
            or returns a non-module.
    """
    shape = tuple(int(d) for d in input_shape)
    try:
        if isinstance(config, FactoryModel):
            return _from_factory(config, shape, num_classes, search_dirs)
        return _from_zoo(config, shape, num_classes)
    except (MemoryError, RuntimeError) as exc:
        needed = _allocation_failure(exc)
        if needed is None:
            if isinstance(config, FactoryModel):
                raise
            size = "x".join(map(str, shape))
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            message = f"arch '{config.arch}' cannot be built for inputs of {size} ({first}); it needs larger inputs"
            raise ModelError(message, key="model.arch") from exc
        key = _SIZE_KEYS.get(type(config), "model")
        raise ModelError(
            f"the model does not fit in this machine's memory ({needed}); make it smaller", key=key
        ) from exc


# the key that sets a zoo model's size, named when the model does not fit in memory
_SIZE_KEYS: dict[type, str] = {
    MLPModel: "model.hidden",
    CNNModel: "model.widths",
    ResNetModel: "model.widths",
    VGGModel: "model.layers",
    MobileNetV2Model: "model.width_mult",
    FactoryModel: "model.kwargs",
}


def _allocation_failure(exc: BaseException) -> str | None:
    """What an allocation that failed asked for (``"tried to allocate 4.0 TB"``), or None when
    ``exc`` is not an allocation failure."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    asked = re.search(r"tried to allocate (\d+) bytes", str(exc))
    if asked is None:
        return "out of memory" if "out of memory" in str(exc).lower() else None
    size = float(asked.group(1))
    factor, unit = next(((f, u) for f, u in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")) if size >= f), (1e3, "KB"))
    return f"it tried to allocate {size / factor:.1f} {unit}"


def _from_zoo(config: Any, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if not isinstance(config, MLPModel) and len(shape) != 3:
        raise ModelError(
            f"arch '{config.arch}' needs image inputs (channels, height, width), but the data gives "
            f"samples of shape {list(shape)}; use arch: mlp",
            key="model.arch",
        )
    if isinstance(config, MLPModel):
        return MLP(shape, num_classes, hidden=config.hidden, batch_norm=config.batch_norm, dropout=config.dropout)
    if isinstance(config, LeNet5Model):
        return LeNet5(shape, num_classes)
    if isinstance(config, CNNModel):
        return CNN(
            shape,
            num_classes,
            widths=config.widths,
            convs_per_stage=config.convs_per_stage,
            hidden=config.hidden,
            batch_norm=config.batch_norm,
            dropout=config.dropout,
        )
    if isinstance(config, ResNetModel):
        return ResNet(shape, num_classes, depth=config.depth, widths=config.widths)
    if isinstance(config, VGGModel):
        return VGG(shape, num_classes, layers=config.layers, hidden=config.hidden, dropout=config.dropout)
    if isinstance(config, MobileNetV2Model):
        return MobileNetV2(
            shape, num_classes, width_mult=config.width_mult, last_channels=config.last_channels, dropout=config.dropout
        )
    raise ModelError(f"unknown model config {type(config).__name__}", key="model.arch")


def _from_factory(
    config: FactoryModel, shape: tuple[int, ...], num_classes: int, search_dirs: Sequence[str | Path]
) -> nn.Module:
    function = import_callable(config.factory, key="model.factory", search_dirs=search_dirs)
    kwargs = dict(config.kwargs)
    try:
        parameters: Mapping[str, inspect.Parameter] = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, value in (("input_shape", shape), ("num_classes", num_classes)):
        if takes_any or name in parameters:
            kwargs.setdefault(name, value)
    try:
        model = function(**kwargs)
    except Exception as exc:  # user code: report it as a model problem naming the key
        if _allocation_failure(exc) is not None:
            raise  # told by build, naming the size
        raise ModelError(f"{config.factory}(...) {what_went_wrong(exc)}", key="model.factory") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{config.factory} must return a torch.nn.Module, but returned {type(model).__name__}",
            key="model.factory",
        )
    return model


def model_spec(config: Any) -> dict[str, Any]:
    """The JSON-able part of a model config that fixes the architecture (no training, no checkpoint)."""
    return config.model_dump(mode="json", exclude={"train", "checkpoint"})


def build_from_spec(
    spec: Mapping[str, Any],
    input_shape: Sequence[int],
    num_classes: int,
    *,
    search_dirs: Sequence[str | Path] = (),
) -> nn.Module:
    """`build` from a `model_spec` dict (as stored beside exported models)."""
    try:
        config = _SPEC_ADAPTER.validate_python(dict(spec))
    except ValidationError as exc:
        raise ModelError(f"invalid model spec {dict(spec)}: {exc.errors()[0]['msg']}") from exc
    return build(config, input_shape, num_classes, search_dirs=search_dirs)


def _first_sentence(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].split(". ")[0].removesuffix(".") if lines else ""


def load_checkpoint(model: nn.Module, path: str | Path, *, key: str = "model.checkpoint") -> nn.Module:
    """Load a state dict into ``model`` with ``weights_only=True`` (no pickled code is run)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ModelError(f"checkpoint file {str(path)!r} {what}", key=key)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that weights_only refuses
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if refused:
            reason = (
                f"it holds pickled Python objects ({refused.group(1)}), not only tensors, and is loaded with "
                "weights_only=True"
            )
        elif "PytorchStreamReader" in str(exc) or isinstance(exc, EOFError):
            reason = f"the file is damaged or cut short ({_first_sentence(exc)})"
        else:
            reason = f"{type(exc).__name__}: {_first_sentence(exc)}"
        raise ModelError(f"cannot load {str(path)!r} as a state dict: {reason}", key=key) from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ModelError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict", key=key)
    broken = [
        name
        for name, value in state.items()
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all()
    ]
    if broken:
        raise ModelError(
            f"{str(path)!r} holds NaN or infinite weights ({len(broken)} tensor{'s' * (len(broken) > 1)}, the first "
            f"{broken[0]}): was it saved from a training that diverged?",
            key=key,
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise ModelError(f"{str(path)!r} does not fit the configured model: {' '.join(first)}", key=key) from exc
    return model
