"""The engine's own settings, validated one way whether they come from a pipeline's YAML or from
Python: how a model is trained or fine-tuned (`FinetuneConfig`, and the dense model's `DenseTraining`
sharing its fields) and how latency is measured (`LatencyConfig`, the pipeline's ``latency:`` block).

Built from Python with a bad value they raise `ConfigError` naming the field, as the engine's
configs always did; inside a pipeline the loader reports the file, line and key instead.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from .._vocab import Optimizer, Precision, Runtime
from ..errors import ConfigError
from ._base import VALIDATING, Strict
from ._errors import first_error_message

__all__ = ["Checked", "CompressionConfig", "DenseTraining", "FinetuneConfig", "LatencyConfig", "TrainingRecipe"]


class Checked(Strict):
    """A `Strict` model that, built directly (``FinetuneConfig(lr=-1)``), raises `ConfigError` with the
    field as its key rather than pydantic's ``ValidationError``."""

    def __init__(self, **data: Any) -> None:
        if VALIDATING.get():  # inside a pipeline's validation: pydantic reports the whole key path
            super().__init__(**data)
            return
        try:
            super().__init__(**data)
        except ValidationError as exc:
            key, message = first_error_message(exc, type(self), data)
            raise ConfigError(message, key=key or None) from None

    @classmethod
    def refusal(cls, **data: Any) -> str | None:
        """Why these values would be refused (pydantic's message, as a pipeline shows it), or None."""
        try:
            cls.model_validate(data)
        except ValidationError as exc:
            return first_error_message(exc, cls, data)[1]
        return None

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes``, validated like a new one (pydantic's ``model_copy`` does not validate)."""
        return type(self)(**{**self.model_dump(), **changes})


class TrainingRecipe(Checked):
    """What every training run takes: epochs, learning rate, optimizer, weight decay, label smoothing."""

    epochs: int = Field(2, ge=0, le=100_000)
    lr: float = Field(0.01, gt=0, le=10.0, description="peak learning rate of the cosine schedule")
    optimizer: Optimizer = "sgd"
    weight_decay: float = Field(5e-4, ge=0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class FinetuneConfig(TrainingRecipe):
    """How a (pruned) model is fine-tuned. ``train_fraction`` < 1 trains on a stratified subset;
    ``distill_alpha`` > 0 distils from the dense model at ``temperature``; ``ema_decay`` > 0 ends with
    a moving average of the weights; ``precision`` and ``compile`` say how the training steps run
    (the pipeline's ``precision`` and ``finalize.compile``)."""

    momentum: float = Field(0.9, ge=0, lt=1)
    distill_alpha: float = Field(0.0, ge=0, le=1)
    temperature: float = Field(4.0, gt=0, le=100)
    batch_size: int = Field(128, ge=1)
    train_fraction: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    ema_decay: float = Field(0.0, ge=0, lt=1)
    precision: Precision = Field("fp32", description="training steps autocast to bf16 or fp16 (a scaler for fp16)")
    compile: bool = Field(False, description="training steps through torch.compile")


MAX_CLUSTERS = 65_536  # shared-value indices of up to 16 bits


class CompressionConfig(Checked):
    """What shrinks a candidate after pruning and fine-tuning: ``weight_clusters`` shared values per
    layer (Deep Compression's weight sharing; the shared values fine-tuned for ``epochs`` at ``lr``),
    then ``quantize: int8`` (onnxruntime's static quantization of the exported model). The candidate's
    size is then the deployable file's bytes and its accuracy the compressed model's."""

    quantize: Literal["none", "int8"] = "none"
    weight_clusters: int | None = Field(None, ge=2, le=MAX_CLUSTERS)
    epochs: int = Field(1, ge=0, le=1000, description="fine-tune epochs of the shared values")
    lr: float = Field(0.005, gt=0, le=10.0, description="learning rate of the shared values' fine-tune")

    @property
    def active(self) -> bool:
        return self.quantize != "none" or self.weight_clusters is not None

    def describe(self) -> str:
        """``fp32``, ``int8``, ``16 shared values`` or ``16 shared values + int8``."""
        parts = [f"{self.weight_clusters} shared values"] if self.weight_clusters else []
        parts += [self.quantize] if self.quantize != "none" else []
        return " + ".join(parts) or "fp32"


class DenseTraining(TrainingRecipe):
    """How the dense model is trained before the search (skipped when a checkpoint is given)."""

    epochs: int = Field(15, ge=0, le=100_000)
    lr: float = Field(0.05, gt=0, le=10.0)
    batch_size: int | None = Field(None, ge=1, description="defaults to data.batch_size")


class LatencyConfig(Checked):
    """How latency is measured: inputs of ``batch_size``, ``threads`` intra-op threads, ``warmup``
    untimed calls, then the median of ``repeats`` timed calls, on ``runtime`` (torch or onnxruntime).
    ``mode: table`` predicts a candidate's latency from a table of its layers' latencies instead of
    measuring it whole (`engine.LatencyTable`)."""

    batch_size: int = Field(1, ge=1, le=65_536)
    threads: int = Field(1, ge=1, le=1024)
    warmup: int = Field(20, ge=0)
    repeats: int = Field(100, ge=1)
    runtime: Runtime = "torch"
    mode: Literal["measured", "table"] = Field(
        "measured", description="table: the sum of per-layer latencies measured once per layer and kept (NetAdapt)"
    )
