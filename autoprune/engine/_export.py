"""Export: ONNX (checked against torch) and the replayable pair plan JSON + state dict.

A pruned model is stored as ``plan.json`` (a resolved plan: exact channels kept per group, plus the
input shape and any metadata the caller adds, such as the model spec) and ``state_dict.pt`` (tensors
only, loaded with ``weights_only=True``: no pickled code). Rebuilding means: build the dense
architecture, apply the resolved plan, load the tensors.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ._device import cpu_copy
from ._modes import eval_mode
from ._plan import PrunePlan
from ._prune import apply_plan

__all__ = [
    "PLAN_FILE",
    "WEIGHTS_FILE",
    "describe_onnx",
    "export_onnx",
    "load_pruned",
    "read_pruned_metadata",
    "save_pruned",
]

PLAN_FILE = "plan.json"
WEIGHTS_FILE = "state_dict.pt"
ONNX_TOLERANCE = 1e-4


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    check: bool = True,
    atol: float = ONNX_TOLERANCE,
    metadata: Mapping[str, str] | None = None,
) -> float:
    """Write ``model`` as ONNX with a dynamic batch dimension (input ``input``, output ``logits``),
    ``metadata`` as the file's metadata properties, and no source paths of this machine (the
    exporter's per-node stack traces are dropped).

    With ``check``, run the file in onnxruntime on a batch of 3 and compare with torch.

    Returns:
        The largest absolute difference between onnxruntime and torch outputs (0.0 when not checked).

    Raises:
        ModelError: The export fails or the outputs differ by more than ``atol``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = cpu_copy(model)  # exported (and checked in onnxruntime) from the CPU
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=65536)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with eval_mode(model), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise ModelError(f"ONNX export failed: {type(exc).__name__}: {exc}", key="model") from exc
    finally:
        onnx_logger.setLevel(level)
    _finish(path, metadata or {})
    return _check_onnx(model, input_shape, path, atol) if check else 0.0


_NODE_SOURCE_KEYS = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")  # file paths, local code lines


def describe_onnx(path: str | Path, metadata: Mapping[str, str]) -> None:
    """Set ``metadata`` as the ONNX file's metadata properties (others it has are kept), in place."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    kept = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    for key, value in {**kept, **metadata}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def _finish(path: Path, metadata: Mapping[str, str]) -> None:
    """Check the batch dimension stayed free, drop the per-node source traces, write ``metadata``."""
    import onnx  # heavy: imported only when exporting

    proto = onnx.load(str(path), load_external_data=False)
    _check_batch_is_free(proto)
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key not in _NODE_SOURCE_KEYS]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def _check_batch_is_free(proto: Any) -> None:
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value"):  # torch.export turned the batch dimension into a constant
        raise ModelError(
            f"the ONNX export fixed the batch size at {batch.dim_value}: the model's code makes it a constant "
            "(len(x) is "
            "the usual cause; x.size(0), x.flatten(1) or x.reshape(x.size(0), -1) keep it free)",
            key="model",
        )


def _check_onnx(model: nn.Module, input_shape: Sequence[int], path: Path, atol: float) -> float:
    import onnxruntime as ort  # heavy: imported only when asked for

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(1))
    with eval_mode(model), torch.inference_mode():
        expected = model(inputs).numpy()
    try:
        actual = session.run(None, {"input": inputs.numpy()})[0]
    except Exception as exc:  # onnxruntime's own errors: the exported graph does not run
        raise ModelError(
            f"onnxruntime cannot run the exported {path.name}: {' '.join(str(exc).split())}", key="model"
        ) from exc
    difference = float(abs(actual - expected).max())
    if difference > atol:
        raise ModelError(
            f"ONNX outputs differ from torch by {difference:.2e} (> {atol:.0e}) in {path.name}", key="model"
        )
    return difference


def save_pruned(
    model: nn.Module,
    plan: PrunePlan,
    directory: str | Path,
    *,
    input_shape: Sequence[int],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``plan.json`` and ``state_dict.pt`` for a pruned model into ``directory``.

    ``plan`` should be resolved (`PrunePlan.resolved`) so the architecture can be rebuilt exactly.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {"plan": plan.to_dict(), "input_shape": list(input_shape), "metadata": dict(metadata or {})}
    (directory / PLAN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    torch.save(model.state_dict(), directory / WEIGHTS_FILE)
    return directory


def read_pruned_metadata(directory: str | Path) -> dict[str, Any]:
    """The JSON record written by `save_pruned` (plan, input shape, metadata)."""
    path = Path(directory) / PLAN_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ModelError(f"no {PLAN_FILE} in {directory}: not a saved pruned model") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc


def load_pruned(directory: str | Path, build: Callable[[], nn.Module]) -> nn.Module:
    """Rebuild a model saved by `save_pruned`.

    Args:
        directory: Where ``plan.json`` and ``state_dict.pt`` are.
        build: Returns a fresh dense model of the same architecture (its weights do not matter).
    """
    directory = Path(directory)
    record = read_pruned_metadata(directory)
    model = build()
    # Only the shapes matter here (the saved tensors replace every weight), so rank channels by l1
    # whatever the original criterion was: taylor would need data, and the result is the same.
    plan = PrunePlan.from_dict({**record["plan"], "importance": "l1", "threshold": None})
    apply_plan(model, plan, record["input_shape"])
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"the weights in {directory} do not fit the rebuilt architecture: {exc}") from exc
    return model.eval()
