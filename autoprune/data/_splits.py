"""In-memory splits: train/val/test tensors, stratified from a seed, normalised with train statistics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ._augment import Augment
from ._stratify import stratified_indices

__all__ = ["Splits", "TensorSplit", "channels_last", "default_layout", "make_splits", "stratified_indices"]


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) laid out channels-last (other shapes as they are). One channel is set by
    its strides: torch takes a one-channel tensor in the default layout for either, and convolutions
    choose their layout by the stride of C."""
    if x.dim() != 4:
        return x
    if x.shape[1] == 1:
        x = x.contiguous()  # one channel: the same memory order either way, so this is a view
        return x.as_strided(x.shape, (x.shape[2] * x.shape[3], 1, x.shape[3], 1))
    return x.contiguous(memory_format=torch.channels_last)


def default_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` in torch's default (row-major) layout with its canonical strides, the layout code such
    as ``x.view(len(x), -1)`` needs."""
    return x.contiguous().view(x.shape)


@dataclass(frozen=True)
class TensorSplit:
    """Inputs ``x`` (N, *input_shape) float32 and integer labels ``y`` (N,).

    With ``channels_last``, ``x`` is kept, and batches (inference `batches`, training `rows`) are
    given, channels-last: CPU convolutions evaluate up to 2.6x and mostly train 1.2-1.5x faster so
    (``benchmarks/finetune_speed.py --only layouts``); otherwise in the default layout.

    The tensors stay in host memory; batches are given on ``device`` (`on`): copied from pinned memory
    without blocking for CUDA, as they are for the CPU. Augmentation draws its random numbers on the
    host, so a seed gives the same batches on every device.
    """

    x: torch.Tensor
    y: torch.Tensor
    channels_last: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", channels_last(self.x) if self.channels_last else default_layout(self.x))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def laid_out(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (augmented, say) in this split's layout, on its device."""
        x = channels_last(x) if self.channels_last else default_layout(x)
        return self.moved(x)

    def moved(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (host memory) on this split's device."""
        if tensor.device == self.device:
            return tensor
        if self.device.type == "cuda":
            tensor = tensor if tensor.is_pinned() else tensor.pin_memory()
            return tensor.to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """The inputs at ``index`` as a training batch, in this split's layout, on its device."""
        return self.laid_out(self.x[index])

    def labels(self, index: torch.Tensor) -> torch.Tensor:
        """The labels at ``index``, on this split's device."""
        return self.moved(self.y[index])

    def head(self, count: int) -> torch.Tensor:
        """The first ``count`` inputs, on this split's device (for checks that run a model)."""
        return self.moved(self.x[:count])

    def training_batch(
        self, index: torch.Tensor, augment: Augment, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Inputs (augmented on the host, laid out and moved) and labels at ``index``, and which
        images were flipped (None without flips)."""
        inputs, flipped = augment.sample(self.x[index], generator)
        return self.laid_out(inputs), self.labels(index), None if flipped is None else self.moved(flipped)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive mini-batches in this split's layout, on its device; the last one may be smaller."""
        for start in range(0, len(self), batch_size):
            yield self.moved(self.x[start : start + batch_size]), self.moved(self.y[start : start + batch_size])

    def on(self, device: torch.device) -> TensorSplit:
        """This split giving its batches on ``device``: for CUDA, its tensors pinned once so that each
        batch is copied without blocking."""
        device = torch.device(device)
        if device == self.device:
            return self
        x, y = (self.x.pin_memory(), self.y.pin_memory()) if device.type == "cuda" else (self.x, self.y)
        return TensorSplit(x, y, self.channels_last, device)

    def shuffled_batches(self, batch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The indices of one epoch's mini-batches in a random order. A last batch of one sample joins the
        one before it: BatchNorm cannot train on a single sample (a batch of 8 on 65 samples, say)."""
        order = torch.randperm(len(self), generator=generator)
        batches = list(order.split(batch_size))
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches[-2:] = [torch.cat(batches[-2:])]
        return batches

    def subset(self, size: int, *, seed: int) -> TensorSplit:
        """A stratified subset of ``size`` samples (the whole split when ``size >= len``)."""
        if size >= len(self):
            return self
        keep, _ = stratified_indices(self.y.numpy(), size, seed=seed)
        index = torch.as_tensor(np.sort(keep))
        return TensorSplit(self.x[index], self.y[index], self.channels_last).on(self.device)

    def with_layout(self, channels_last: bool) -> TensorSplit:
        if channels_last == self.channels_last:
            return self
        return TensorSplit(self.x, self.y, channels_last, self.device)


@dataclass(frozen=True)
class Splits:
    """The three splits of one dataset, plus what models need to know about it.

    The test split is never seen by the search; it is used once, for the final front.
    """

    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    input_scale: float = 1.0  # the source's raw values times this are the inputs before normalisation
    source: str = ""
    batch_size: int = 128
    augment: Augment = field(default_factory=Augment)  # applied to training batches only

    @property
    def channels_last(self) -> bool:
        """Whether inference batches are channels-last (see `TensorSplit`)."""
        return self.train.channels_last

    @property
    def device(self) -> torch.device:
        """Where batches are given (see `TensorSplit.on`)."""
        return self.train.device

    def on(self, device: torch.device) -> Splits:
        """These splits giving their batches on ``device``."""
        return replace(self, train=self.train.on(device), val=self.val.on(device), test=self.test.on(device))

    def with_layout(self, channels_last: bool) -> Splits:
        """These splits with inference batches channels-last or in the default layout."""
        if channels_last == self.channels_last:
            return self
        train, val, test = (split.with_layout(channels_last) for split in (self.train, self.val, self.test))
        return replace(self, train=train, val=val, test=test)

    def summary(self) -> str:
        shape = "x".join(str(d) for d in self.input_shape)
        return (
            f"{self.source}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
            f"inputs {shape}, {self.num_classes} classes"
        )


def _normalise(splits: Splits) -> Splits:
    x = splits.train.x
    dims = [0, *range(2, x.dim())]  # per channel for images, per feature for flat vectors
    # In float64 with numpy: torch's float32 reductions split the sum by thread count, so the same
    # data normalised with 1 or 2 threads differed in the last bits (and missed the dense cache).
    values = x.numpy().astype(np.float64)
    mean = torch.as_tensor(values.mean(axis=tuple(dims), keepdims=True), dtype=torch.float32)
    std = torch.as_tensor(values.std(axis=tuple(dims), ddof=1, keepdims=True), dtype=torch.float32).clamp_min(1e-6)
    del values

    def scale(split: TensorSplit) -> TensorSplit:
        return TensorSplit((split.x - mean) / std, split.y, split.channels_last, split.device)

    flat = lambda t: tuple(float(v) for v in t.flatten())  # noqa: E731
    return replace(
        splits,
        train=scale(splits.train),
        val=scale(splits.val),
        test=scale(splits.test),
        mean=flat(mean),
        std=flat(std),
    )


def _as_split(x: np.ndarray, y: np.ndarray, index: np.ndarray) -> TensorSplit:
    return TensorSplit(torch.as_tensor(x[index], dtype=torch.float32), torch.as_tensor(y[index], dtype=torch.int64))


def make_splits(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    class_names: Sequence[str],
    source: str,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    normalize: bool = True,
    max_train_samples: int | None = None,
    batch_size: int = 128,
    cache: Path | None = None,
) -> Splits:
    """Stratified train/val/test splits of ``x``/``y`` (float images, labels 0..K-1).

    With ``test`` given (a dataset's official test set), only validation is split off ``x``. With
    ``cache`` (an existing folder), the split indices are kept there and reused (`stratified_indices`).
    """
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} inputs but {len(y)} labels; they must be the same length")
    count = len(y)
    if test is None:
        held_out = round(count * test_fraction)
        rest, test_index = stratified_indices(y, count - held_out, seed=seed, cache=cache)
        test_split = _as_split(x, y, test_index)
    else:
        rest = np.arange(count)
        test_split = _as_split(test[0], test[1], np.arange(len(test[1])))
    val_size = round(count * val_fraction)
    train_local, val_local = stratified_indices(y[rest], len(rest) - val_size, seed=seed + 1, cache=cache)
    train_index, val_index = rest[train_local], rest[val_local]
    if max_train_samples is not None and max_train_samples < len(train_index):
        keep, _ = stratified_indices(
            y[train_index], max_train_samples, seed=seed + 2, key="data.max_train_samples", cache=cache
        )
        train_index = train_index[keep]
    splits = Splits(
        train=_as_split(x, y, np.sort(train_index)),
        val=_as_split(x, y, np.sort(val_index)),
        test=test_split,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_classes=len(class_names),
        class_names=tuple(class_names),
        source=source,
        batch_size=batch_size,
    )
    return _normalise(splits) if normalize else splits
