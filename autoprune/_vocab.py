"""Names and wordings shared by the configuration, the engine and the display, defined once (no heavy
imports here)."""

from __future__ import annotations

__all__ = ["IMPORTANCES", "OBJECTIVE_METRICS", "OPTIMIZERS", "RUNTIMES", "SAMPLERS", "duration"]

IMPORTANCES = ("l1", "l2", "bn_scale", "taylor", "random")
OPTIMIZERS = ("sgd", "adamw")
RUNTIMES = ("torch", "onnxruntime")
SAMPLERS = ("tpe", "nsga2", "random", "qmc")
# objective -> the only direction that makes sense for it
OBJECTIVE_METRICS = {"accuracy": "max", "params": "min", "macs": "min", "size_bytes": "min", "latency_ms": "min"}


def duration(seconds: float, decimals: int = 0) -> str:
    """A duration as a person reads it: minutes from 90 s on, seconds (to ``decimals`` places) below."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.{decimals}f} s"
