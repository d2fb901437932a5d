"""Typed configuration of a dataset source (the ``data:`` block of a pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ._base import FactoryPath, Strict

__all__ = [
    "FASHION_MNIST_DIR",
    "AugmentConfig",
    "DataConfig",
    "DigitsData",
    "FactoryData",
    "FashionMnistData",
    "ImageFolderData",
    "NpzData",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class AugmentConfig(Strict):
    """Training-time augmentation of image inputs (validation and test are never augmented)."""

    hflip: bool = Field(False, description="mirror a random half of each batch left-right")
    shift: int = Field(0, ge=0, le=8, description="translate each image by up to this many pixels")


class _DataBase(Strict):
    val_fraction: float = Field(0.15, gt=0, lt=1, description="share of the data held out for validation")
    test_fraction: float = Field(0.15, gt=0, lt=1, description="share held out for the final test")
    batch_size: int = Field(128, ge=1)
    normalize: bool = Field(True, description="standardise each channel with the training split's mean/std")
    max_train_samples: int | None = Field(None, ge=10, description="stratified cap on the training split")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> _DataBase:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "val_fraction + test_fraction must be < 1 to leave training data, "
                f"but got {self.val_fraction} + {self.test_fraction}"
            )
        return self


class DigitsData(_DataBase):
    """scikit-learn's embedded 8x8 handwritten digits (1,797 images, 10 classes, no download)."""

    source: Literal["digits"] = "digits"


class FashionMnistData(_DataBase):
    """Fashion-MNIST from the four IDX .gz files (Debian package ``dataset-fashion-mnist``)."""

    source: Literal["fashion_mnist"]
    path: Path = FASHION_MNIST_DIR
    official_test: bool = Field(True, description="use the 10,000 t10k images as the test split")


class _ArrayData(_DataBase):
    """How arrays a user gives (npz, factory) are read."""

    add_channel: bool = Field(
        True,
        description="3-D inputs: true reads (N, H, W) images and adds a channel axis; false keeps (N, C, L) "
        "sequences (Conv1d models)",
    )
    channels: Literal["first", "last"] | None = Field(
        None,
        description="4-D inputs: first reads (N, C, H, W), last (N, H, W, C) images; unset reads (N, C, H, W) but "
        "refuses "
        "arrays that look like (N, H, W, C)",
    )


class NpzData(_ArrayData):
    """A user's ``.npz`` file with an input array (images, sequences or feature vectors) and a label array."""

    source: Literal["npz"]
    path: Path
    x_key: str = "x"
    y_key: str = "y"


class ImageFolderData(_DataBase):
    """One sub-folder per class, each holding image files (png, jpg, bmp, gif)."""

    source: Literal["image_folder"]
    path: Path
    image_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = None
    grayscale: bool = False


class FactoryData(_ArrayData):
    """``"package.module:function"`` returning ``(x, y)``, ``{"x", "y"}``, a Dataset, or
    ``{"train": ..., "test": ...}`` of those."""

    source: Literal["factory"]
    factory: FactoryPath
    kwargs: dict[str, Any] = Field(default_factory=dict)


DataConfig = Annotated[
    DigitsData | FashionMnistData | NpzData | ImageFolderData | FactoryData,
    Field(discriminator="source"),
]
