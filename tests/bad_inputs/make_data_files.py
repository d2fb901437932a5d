"""Writes the small broken data files the bad-input corpus points at (run once; the files are committed).

python tests/bad_inputs/make_data_files.py
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent / "data"


def idx(array: np.ndarray, magic: bytes | None = None) -> bytes:
    header = magic or struct.pack(">HBB", 0, 8, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def fashion_like(directory: Path, *, magic: bytes | None = None, cut: int = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 40), ("t10k", 10)):
        images = idx(rng.integers(0, 255, size=(count, 28, 28)), magic if prefix == "train" else None)
        if cut and prefix == "train":
            images = images[:-cut]
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.arange(count) % 10)))


def main() -> None:
    HERE.mkdir(exist_ok=True)
    fashion_like(HERE / "idx_bad_magic", magic=b"\x00\x00\x0d\x03")
    fashion_like(HERE / "idx_truncated", cut=500)
    np.savez(HERE / "mismatch.npz", x=np.zeros((30, 8, 8), np.float32), y=np.arange(29) % 3)
    np.savez(HERE / "flat.npz", x=np.zeros((30, 5), np.float32), y=np.arange(30) % 3)
    np.savez(HERE / "hwc.npz", x=np.zeros((30, 8, 8, 3), np.uint8), y=np.arange(30) % 3)  # (N, H, W, C) images
    labels = np.arange(30) % 3 + 0.5  # fractional labels are no classes
    np.savez(HERE / "fractional_labels.npz", x=np.zeros((30, 8, 8), np.float32), y=labels)
    labels = np.where(np.arange(30) == 7, np.nan, np.arange(30) % 3)  # one label missing
    np.savez(HERE / "nan_labels.npz", x=np.zeros((30, 8, 8), np.float32), y=labels)
    np.savez(HERE / "complex.npz", x=np.zeros((30, 8, 8), np.complex64), y=np.arange(30) % 3)
    np.savez(HERE / "empty.npz", x=np.zeros((0, 8, 8), np.float32), y=np.zeros(0, np.int64))
    inputs = np.zeros((30, 8, 8), np.float32)
    inputs[3, 2, 2] = np.inf  # one overflowed pixel
    np.savez(HERE / "inf_inputs.npz", x=inputs, y=np.arange(30) % 3)
    np.savez(HERE / "tiny_images.npz", x=np.zeros((30, 2, 2), np.float32), y=np.arange(30) % 3)
    (HERE / "not_an_npz.npz").write_text("this is not a numpy archive\n")
    (HERE / "not_a_database.db").write_text("not a database\n")  # a tracking URI naming a text file
    one_class = HERE / "one_class" / "cats"
    one_class.mkdir(parents=True, exist_ok=True)
    (one_class / "README").write_text("an image folder needs at least two class folders\n")
    import datetime

    import torch

    torch.save({"when": datetime.datetime(2026, 1, 1)}, HERE / "pickled_object.pt")  # weights_only refuses it
    torch.save({"features.0.weight": torch.full((8, 1, 3, 3), float("nan"))}, HERE / "nan_weights.pt")
    whole = HERE / "truncated.pt"
    torch.save({"features.0.weight": torch.zeros(8, 1, 3, 3)}, whole)
    whole.write_bytes(whole.read_bytes()[:200])  # a copy cut short


if __name__ == "__main__":
    main()
