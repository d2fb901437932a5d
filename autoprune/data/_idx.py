"""Reading IDX files (the MNIST / Fashion-MNIST format), gzipped or not, with checked headers."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["read_idx"]

_UBYTE = 0x08


def read_idx(path: Path, *, key: str = "data.path") -> np.ndarray:
    """The array stored in an IDX file.

    Raises:
        DataError: The file is missing, is not IDX (wrong magic number), or is truncated.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path} does not exist", key=key) from exc
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc}", key=key) from exc
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes)", key=key)
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or not 1 <= ndim <= 4:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file: magic number 0x{raw[:4].hex()} "
            f"(expected 0x0000080N with N = number of dimensions)",
            key=key,
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header", key=key)
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path} is truncated or padded: header says {'x'.join(map(str, shape))} = {expected} bytes "
            f"of data, file has {len(raw) - header}",
            key=key,
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
