"""Stratified index splits from scikit-learn, remembered in a cache folder when one is given.

scikit-learn computes each split; importing it takes about a second (it loads scipy.stats and pandas),
which is most of what `autoprune validate` costs once its other answers are known. A split follows
only from the labels, the size asked for, the seed and scikit-learn's version, so its indices are kept
under that key and read back instead of importing scikit-learn again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np

from .._files import write_atomically
from ..errors import DataError

__all__ = ["stratified_indices"]


def stratified_indices(
    labels: np.ndarray, first_size: int, *, seed: int, key: str = "data", cache: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into a stratified part of ``first_size`` and the rest (in
    scikit-learn's order). With ``cache``, an existing folder, the answer is kept there and reused."""
    path = _cached_file(cache, labels, first_size, seed)
    remembered = _read(path)
    if remembered is not None:
        return remembered
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    try:
        first, rest = train_test_split(indices, train_size=first_size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot make a stratified split of {len(labels)} samples: {exc}", key=key) from exc
    answer = np.asarray(first), np.asarray(rest)
    _write(path, answer)
    return answer


def _cached_file(cache: Path | None, labels: np.ndarray, first_size: int, seed: int) -> Path | None:
    if cache is None or not cache.is_dir():
        return None
    from importlib.metadata import version

    digest = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest.update(f"{first_size}:{seed}:{version('scikit-learn')}".encode())
    return cache / f"split-{digest.hexdigest()[:24]}.npz"


def _read(path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as kept:
            return kept["first"], kept["rest"]
    except (OSError, ValueError, KeyError):  # damaged: split again and write it anew
        return None


def _write(path: Path | None, answer: tuple[np.ndarray, np.ndarray]) -> None:
    if path is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, first=answer[0], rest=answer[1])
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        write_atomically(path, lambda partial: partial.write_bytes(buffer.getvalue()))
