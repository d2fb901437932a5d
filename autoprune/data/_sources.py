"""Dataset sources: each turns its config into float arrays and labels, then into `Splits`."""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._imports import import_callable, what_went_wrong
from ..config import DataConfig, DigitsData, FactoryData, FashionMnistData, ImageFolderData, NpzData
from ..errors import ConfigError, DataError
from ._augment import Augment
from ._idx import read_idx
from ._splits import Splits, make_splits

__all__ = ["FASHION_CLASSES", "load"]

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load(config: DataConfig, *, seed: int = 0, base_dir: str | Path | None = None, cache: Path | None = None) -> Splits:
    """Load the dataset ``config`` describes and split it deterministically from ``seed``.

    Relative paths are taken from ``base_dir`` (the pipeline file's directory) when given. With
    ``cache`` (an existing folder: the store's cache), the split indices are kept there and reused.

    Raises:
        DataError: The data is missing, unreadable or inconsistent; the error names the config key.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    test: tuple[np.ndarray, np.ndarray] | None = None
    scale = _UINT8_SCALE  # raw pixels 0-255 (Fashion-MNIST, image folders, uint8 arrays)
    if isinstance(config, DigitsData):
        x, y, names = _digits()
        scale = 1 / 16  # scikit-learn's digits count 0-16
    elif isinstance(config, FashionMnistData):
        x, y, test = _fashion_mnist(_resolve(base, config.path), official_test=config.official_test)
        names = list(FASHION_CLASSES)
    elif isinstance(config, NpzData):
        x, y, names, scale = _npz(_resolve(base, config.path), config)
    elif isinstance(config, ImageFolderData):
        x, y, names = _image_folder(_resolve(base, config.path), config.image_size, config.grayscale)
    elif isinstance(config, FactoryData):
        x, y, names, test, scale = _factory(config, base)
    else:  # pragma: no cover - the config union is closed
        raise DataError(f"unknown data source {config!r}", key="data.source")
    splits = make_splits(
        x,
        y,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=seed,
        class_names=names,
        source=config.source,
        test=test,
        normalize=config.normalize,
        max_train_samples=config.max_train_samples,
        batch_size=config.batch_size,
        cache=cache,
    )
    return _with_augment(dataclasses.replace(splits, input_scale=scale), config)


_UINT8_SCALE = 1 / 255


def _raw_scale(x: np.ndarray) -> float:
    """What `_as_inputs` multiplies raw values of ``x``'s dtype by."""
    return _UINT8_SCALE if np.asarray(x).dtype == np.uint8 else 1.0


def _with_augment(splits: Splits, config: DataConfig) -> Splits:
    augment = Augment(hflip=config.augment.hflip, shift=config.augment.shift)
    if augment.active and len(splits.input_shape) != 3:
        shape = ", ".join(str(d) for d in splits.input_shape)
        raise DataError(
            f"augmentation needs image inputs (channels, height, width), but each input has shape ({shape})",
            key="data.augment",
        )
    return dataclasses.replace(splits, augment=augment)


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path


def _digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 8x8 digits (1,797 images, values 0-16), read from the file it ships, as its
    `load_digits` reads it; importing scikit-learn for them would cost a second."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    files = [Path(folder) / "datasets" / "data" / "digits.csv.gz" for folder in folders]
    found = next((file for file in files if file.is_file()), None)
    if found is None:  # an unusual install: let scikit-learn find it
        from sklearn.datasets import load_digits

        flat, target = load_digits(return_X_y=True)
    else:
        table = np.loadtxt(found, delimiter=",")
        flat, target = table[:, :-1], table[:, -1]
    x = (flat.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    return x, target.astype(np.int64), [str(c) for c in range(10)]


def _fashion_mnist(path: Path, *, official_test: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    if not path.is_dir():
        raise DataError(
            f"Fashion-MNIST directory {str(path)!r} does not exist; install it with "
            "'apt-get install dataset-fashion-mnist' or set data.path to a folder with the four IDX .gz files",
            key="data.path",
        )

    def pair(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images = read_idx(_find(path, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(path, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{prefix} images {list(images.shape)} and labels {list(labels.shape)} in {path} do not match",
                key="data.path",
            )
        return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)

    x, y = pair("train")
    test = pair("t10k")
    if official_test:
        return x, y, test
    return np.concatenate([x, test[0]]), np.concatenate([y, test[1]]), None


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory} has no {stem}.gz (nor {stem})", key="data.path")


def _encode_labels(labels: np.ndarray, *, key: str) -> tuple[np.ndarray, list[str]]:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be one-dimensional, but have shape {list(labels.shape)}", key=key)
    if labels.dtype.kind == "c" or labels.dtype == object:
        raise DataError(f"labels must be class names or whole numbers, but have dtype {labels.dtype}", key=key)
    if labels.dtype.kind == "f":
        bad = labels[~np.isfinite(labels) | (labels != np.round(labels))] if labels.size else labels
        if bad.size:
            raise DataError(
                f"labels must be class names or whole numbers, but {bad.size:,} of {labels.size:,} are not "
                f"(first: {bad[0].item()!r}); round or drop them",
                key=key,
            )
        labels = labels.astype(np.int64)
    values, codes = np.unique(labels, return_inverse=True)
    if len(values) < 2:
        raise DataError(f"labels must contain at least 2 classes, but contain {len(values)}", key=key)
    return codes.astype(np.int64), [str(v) for v in values]


def _as_inputs(x: np.ndarray, *, key: str, add_channel: bool = True, channels: str | None = None) -> np.ndarray:
    """Float32 inputs (uint8 scaled to [0, 1]); 3-D ones are (N, H, W) images given a channel axis, or
    with ``add_channel`` false (N, C, L) sequences kept as they are; 4-D ones (N, C, H, W) images, or
    (N, H, W, C) with ``channels`` "last" (moved to (N, C, H, W)), and refused when they look like
    the latter and ``channels`` is unset."""
    x = np.asarray(x)
    if x.dtype == object or not np.issubdtype(x.dtype, np.number) or x.dtype.kind == "c":
        raise DataError(f"inputs must be real numbers, but have dtype {x.dtype}", key=key)
    if x.ndim not in (2, 3, 4):
        raise DataError(
            "inputs must have shape (N, D), (N, H, W), (N, C, H, W), or (N, C, L) with add_channel: false; got "
            f"{list(x.shape)}",
            key=key,
        )
    if x.ndim == 4 and channels == "last":
        x = np.moveaxis(x, 3, 1)
    elif x.ndim == 4 and channels is None and x.shape[3] in (1, 3, 4) and x.shape[1] > 4:
        raise DataError(
            f"inputs of shape {list(x.shape)} look like (N, H, W, C) images with {x.shape[3]} channels, but are read "
            "as "
            f"(N, C, H, W) with {x.shape[1]}: set data.channels: last to read them so (or first to keep this reading)",
            key=key,
        )
    scaled = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(scaled).all():
        raise DataError("inputs contain NaN or infinite values", key=key)
    return scaled[:, None] if x.ndim == 3 and add_channel else scaled


def _npz(path: Path, config: NpzData) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    x_key, y_key = config.x_key, config.y_key
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DataError(f"{str(path)!r} is not an .npz archive (numpy.savez writes a zip file)", key="data.path")
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(f"{str(path)!r} does not exist", key="data.path") from exc
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {str(path)!r} as .npz: {exc}", key="data.path") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{str(path)!r} is a single .npy array, not an .npz archive", key="data.path")
    with archive:
        for name, key in ((x_key, "data.x_key"), (y_key, "data.y_key")):
            if name not in archive.files:
                raise DataError(f"{path.name} has no array {name!r}; it has {', '.join(archive.files)}", key=key)
        try:
            x, y = archive[x_key], archive[y_key]
        except ValueError as exc:  # object arrays need pickle, which we refuse
            raise DataError(f"cannot read arrays from {path.name}: {exc}", key="data.path") from exc
    if len(x) != len(y):
        raise DataError(f"{path.name}: {x_key!r} has {len(x)} samples but {y_key!r} has {len(y)}", key="data.path")
    codes, names = _encode_labels(y, key="data.y_key")
    inputs = _as_inputs(x, key="data.x_key", add_channel=config.add_channel, channels=config.channels)
    return inputs, codes, names, _raw_scale(x)


def _image_folder(
    path: Path, image_size: tuple[int, int] | None, grayscale: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise DataError(f"image folder {str(path)!r} does not exist", key="data.path")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{str(path)!r} must hold one sub-folder per class (at least 2); found {len(classes)}", key="data.path"
        )
    images: list[np.ndarray] = []
    labels: list[int] = []
    mode = "L" if grayscale else "RGB"
    for label, name in enumerate(classes):
        files = sorted(p for p in (path / name).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"class folder {name!r} in {str(path)!r} has no images", key="data.path")
        for file in files:
            try:
                with Image.open(file) as opened:
                    image = opened.convert(mode)
                    if image_size is not None:
                        image = image.resize((image_size[1], image_size[0]))
                    array = np.asarray(image, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"cannot read image {file}: {exc}", key="data.path") from exc
            if images and array.shape != images[0].shape:
                raise DataError(
                    f"{file} is {array.shape[1]}x{array.shape[0]} but earlier images are "
                    f"{images[0].shape[1]}x{images[0].shape[0]}; set data.image_size to resize them",
                    key="data.image_size",
                )
            images.append(array)
            labels.append(label)
    x = np.stack(images).astype(np.float32) / 255.0
    x = x[:, None] if grayscale else x.transpose(0, 3, 1, 2)
    return x, np.asarray(labels, dtype=np.int64), classes


def _materialise(value: Any, *, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays from a tuple/list pair, an {"x", "y"} mapping or a map-style torch Dataset."""
    if isinstance(value, Mapping) and {"x", "y"} <= set(value):
        value = (value["x"], value["y"])
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _numpy(value[0]), _numpy(value[1])
    if hasattr(value, "__getitem__") and hasattr(value, "__len__"):
        pairs = [value[i] for i in range(len(value))]
        if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
            raise DataError("a Dataset returned by the factory must yield (input, label) pairs", key=key)
        return np.stack([_numpy(p[0]) for p in pairs]), np.asarray([int(_numpy(p[1])) for p in pairs])
    raise DataError(
        f"the factory must return (x, y), {{'x': ..., 'y': ...}}, a Dataset, or {{'train': ..., 'test': ...}}; "
        f"got {type(value).__name__}",
        key=key,
    )


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _factory(config: FactoryData, base: Path) -> tuple[np.ndarray, np.ndarray, list[str], Any, float]:
    key = "data.factory"
    function = import_callable(config.factory, key=key, search_dirs=[base])
    try:
        result = function(**config.kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # user code
        raise DataError(f"{config.factory}(...) {what_went_wrong(exc)}", key=key) from exc
    test = None
    if isinstance(result, Mapping) and "train" in result:
        x, y = _materialise(result["train"], key=key)
        if "test" in result:
            test = _materialise(result["test"], key=key)
    else:
        x, y = _materialise(result, key=key)
    for part, (given, labels) in (("train", (x, y)), ("test", test or (x, y))):
        if len(given) != len(labels):
            raise DataError(f"the factory returned {len(given)} {part} inputs but {len(labels)} labels", key=key)
    if test is not None and test[0].shape[1:] != x.shape[1:]:
        raise DataError(
            f"the factory's test inputs have shape {list(test[0].shape[1:])}, its train inputs {list(x.shape[1:])}",
            key=key,
        )
    codes, names = _encode_labels(np.concatenate([y, test[1]]) if test else y, key=key)
    train_codes = codes[: len(y)]

    def inputs(arrays: np.ndarray) -> np.ndarray:
        return _as_inputs(arrays, key=key, add_channel=config.add_channel, channels=config.channels)

    test_pair = (inputs(test[0]), codes[len(y) :]) if test else None
    return inputs(x), train_codes, names, test_pair, _raw_scale(x)
