"""Names shared by the configuration and the engine, defined once (no heavy imports here)."""

from __future__ import annotations

__all__ = ["IMPORTANCES", "OPTIMIZERS", "RUNTIMES", "SAMPLERS", "OBJECTIVE_METRICS"]

IMPORTANCES = ("l1", "l2", "bn_scale", "taylor", "random")
OPTIMIZERS = ("sgd", "adamw")
RUNTIMES = ("torch", "onnxruntime")
SAMPLERS = ("tpe", "nsga2", "random", "qmc")
# objective -> the only direction that makes sense for it
OBJECTIVE_METRICS = {"accuracy": "max", "params": "min", "macs": "min", "size_bytes": "min", "latency_ms": "min"}
