"""Weight sharing (Deep Compression, Han et al., ICLR 2016): each convolution's and linear layer's
weights replaced by ``clusters`` shared values, the shared values fine-tuned, the layer stored as
packed indices plus a small codebook.

The shared values are found by 1-D k-means over the layer's weights, started from values spread
evenly between the smallest and largest weight (the initialisation Deep Compression found best: it
keeps the rare large weights, which matter most, their own values). While sharing, a layer's weight
is ``codebook[indices]`` (a parametrization), so training moves the shared values only: each one's
gradient is its weights' gradients summed, as in the paper, and divided by how many they are, so a
learning rate moves a shared value as far as it would move a plain weight (with the plain sum, a
value shared by 375 weights took 375 times the step, and a fine-tune at lr 0.005 diverged).
`unshare` turns the layers back into plain weights holding exactly ``clusters`` distinct values.
`save_shared` writes the deployable file: for each shared layer its indices in ``ceil(log2 clusters)``
bits each and its codebook in float32, every other tensor (biases, BatchNorm) as it is, in one blob
beside a JSON layout, deflated in a zip file, so its size on disk is the model's shared size.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..config._engine import MAX_CLUSTERS
from ..errors import ModelError

__all__ = ["MAX_CLUSTERS", "distinct_weights", "kmeans_1d", "load_shared", "save_shared", "share_weights", "unshare"]

_SHARED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def kmeans_1d(values: torch.Tensor, clusters: int, *, iterations: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``clusters`` centroids of ``values`` (1-D k-means from evenly spread starting values) and
    each value's centroid index. A centroid that loses all its values keeps its place."""
    flat = values.detach().flatten().double()
    centroids = torch.linspace(float(flat.min()), float(flat.max()), clusters, dtype=torch.float64)
    assignment = torch.zeros(len(flat), dtype=torch.long)
    for _ in range(iterations):
        order = torch.argsort(centroids)
        centroids = centroids[order]
        assignment = torch.bucketize(flat, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros(clusters, dtype=torch.float64).index_add_(0, assignment, flat)
        counts = torch.bincount(assignment, minlength=clusters)
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if torch.allclose(moved, centroids):
            break
        centroids = moved
    return centroids.to(values.dtype), assignment.view(values.shape)


class _Shared(nn.Module):
    """A weight as ``codebook[indices]``: the codebook is what trains."""

    def __init__(self, codebook: torch.Tensor, indices: torch.Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook)
        self.indices: torch.Tensor
        self.register_buffer("indices", indices)
        self.shares: torch.Tensor  # how many weights share each value
        self.register_buffer("shares", torch.bincount(indices.flatten(), minlength=len(codebook)).clamp_min(1))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        fixed = self.codebook.detach()[self.indices]
        scale = self.shares.to(self.codebook.dtype)[self.indices]
        # the value is codebook[indices]; its gradient reaches each shared value as the mean of its weights'
        shared: torch.Tensor = fixed + (self.codebook[self.indices] - fixed) / scale
        return shared


def share_weights(model: nn.Module, clusters: int) -> dict[str, int]:
    """Share each convolution's and linear layer's weight among ``clusters`` values, in place (see the
    module docstring); layers with no more weights than that are left alone. Returns the layers shared
    and their weight counts. Train the model as usual (only the shared values move), then `unshare`.

    Raises:
        ValueError: ``clusters`` is not in [2, MAX_CLUSTERS].
    """
    if not 2 <= clusters <= MAX_CLUSTERS:
        raise ValueError(f"weight sharing needs 2 to {MAX_CLUSTERS} clusters, but got {clusters}")
    shared = {}
    for name, module in model.named_modules():
        if not isinstance(module, _SHARED) or parametrize.is_parametrized(module, "weight"):
            continue
        weight = module.weight
        if weight.numel() <= clusters:
            continue
        codebook, indices = kmeans_1d(weight, clusters)
        weight.requires_grad_(False)  # kept as the parametrization's original: the codebook trains instead
        parametrize.register_parametrization(module, "weight", _Shared(codebook, indices), unsafe=True)
        shared[name] = weight.numel()
    return shared


def unshare(model: nn.Module) -> nn.Module:
    """Turn shared layers back into plain weights (each holding its codebook's values), in place."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            module.weight.requires_grad_(True)  # a plain weight again, trained as any other
    return model


def distinct_weights(model: nn.Module) -> dict[str, int]:
    """How many distinct values each convolution's and linear layer's weight holds."""
    return {
        name: int(torch.unique(module.weight.detach()).numel())
        for name, module in model.named_modules()
        if isinstance(module, _SHARED)
    }


def _bits(clusters: int) -> int:
    return max(1, math.ceil(math.log2(clusters)))


def _pack(indices: np.ndarray, bits: int) -> np.ndarray:
    """``indices`` (< 2**bits) in ``bits`` bits each, little-endian within bytes."""
    as_bits = ((indices.astype(np.uint32)[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(as_bits.reshape(-1), bitorder="little")


def _unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    as_bits = np.unpackbits(packed, bitorder="little")[: count * bits].reshape(count, bits).astype(np.uint32)
    indices: np.ndarray = (as_bits << np.arange(bits, dtype=np.uint32)).sum(axis=1)
    return indices


def save_shared(model: nn.Module, path: str | Path, *, metadata: dict[str, object] | None = None) -> int:
    """Write ``model`` (after `unshare`, or a model whose layers hold few distinct values) as packed
    indices and codebooks for its convolution and linear weights, float32 for everything else, in one
    zip file, deflated (Deep Compression's third step codes the indices by their frequencies with
    Huffman codes; zip's deflate does so too, and finds repeats). Returns its size in bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = bytearray()
    layout: dict[str, dict[str, object]] = {}

    def put(payload: bytes) -> list[int]:
        blob.extend(payload)
        return [len(blob) - len(payload), len(payload)]

    layers = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, _SHARED)}
    for key, tensor in model.state_dict().items():
        values = tensor.detach().cpu()
        packs = False
        if key in layers and values.is_floating_point():
            codebook, inverse = torch.unique(values.flatten(), return_inverse=True)
            bits = _bits(len(codebook))
            smaller = bits * values.numel() / 8 + 4 * len(codebook) < 4 * values.numel()
            packs = len(codebook) <= MAX_CLUSTERS and smaller
        if packs:
            layout[key] = {
                "shape": list(values.shape),
                "bits": bits,
                "codebook": put(codebook.float().numpy().tobytes()),
                "indices": put(_pack(inverse.numpy(), bits).tobytes()),
            }
        else:
            dtype = str(values.dtype).removeprefix("torch.")
            layout[key] = {"shape": list(values.shape), "dtype": dtype, "data": put(values.numpy().tobytes())}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(
            "layout.json", json.dumps({"tensors": layout, "metadata": metadata or {}}, separators=(",", ":"))
        )
        archive.writestr("tensors.bin", bytes(blob))
    return path.stat().st_size


def load_shared(path: str | Path, build: Callable[[], nn.Module]) -> nn.Module:
    """The model `save_shared` wrote, its weights unpacked into ``build()`` (the same architecture).

    Raises:
        ModelError: The file is not such a file, or does not fit the model.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            layout = json.loads(archive.read("layout.json"))["tensors"]
            blob = archive.read("tensors.bin")
            state = {key: _read_tensor(blob, entry) for key, entry in layout.items()}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read the shared-weights file {path}: {exc}") from exc
    model = build()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit the model: {str(exc).splitlines()[0]}") from exc
    return model.eval()


def _read_tensor(blob: bytes, entry: dict[str, Any]) -> torch.Tensor:
    shape = [int(d) for d in entry["shape"]]

    def part(name: str) -> bytes:
        start, length = (int(v) for v in entry[name])
        return blob[start : start + length]

    if "bits" in entry:
        codebook = np.frombuffer(part("codebook"), dtype=np.float32)
        packed = np.frombuffer(part("indices"), dtype=np.uint8)
        indices = _unpack(packed, int(entry["bits"]), int(np.prod(shape)))
        return torch.from_numpy(codebook[indices].reshape(shape).copy())
    dtype = getattr(torch, str(entry["dtype"]))
    payload = part("data")
    if not payload:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(payload), dtype=dtype).reshape(shape).clone()
