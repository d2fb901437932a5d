"""The prepared GPU check (issue 38): autoprune's engine and a whole pipeline on a CUDA device, against
the same machine's CPU, in one run of well under 5 minutes on one GPU.

1. Engine, per zoo model (the CNN, ResNet-20, MobileNetV2) on 1x28x28 inputs of 10 learnable synthetic
   classes: the dense model trained one epoch, pruned by half (uniform, L1) on the device, the pruned
   copy fine-tuned one epoch in fp32 and one in bf16, evaluated, and timed at batch 1 and 128 (CUDA
   events, dense and pruned interleaved); training throughput on the GPU against the CPU.
2. The quickstart pipeline end to end with ``device=cuda`` (its stores in a temporary folder).
3. torchvision's classification models through ``autoprune validate`` (a wider zoo check), when
   torchvision is installed: which pass, which fail, and the one-line error of each failure.

Runs from the source tree on torch 2.11 or newer, with the packages autoprune needs that the machine
lacks installed from wheels carried beside it (``benchmarks/gpu_wheels.sh`` downloads them)::

    python benchmarks/gpu_wheels.py .whl                     # here: the wheels the GPU image lacks
    # there, in one call (carry .whl):
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:. && python3 benchmarks/gpu_check.py --out "$OUT"
    python3 -m pytest -q -p no:cacheprovider -m gpu tests/engine/test_device.py tests/workflow/test_placement.py
    python benchmarks/gpu_check.py --device cpu --quick      # the same code on the CPU (a dry run)

Prints what it measured and writes it as JSON (``gpu_check.json`` in ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoprune import config, data, engine, models  # noqa: E402

ZOO = {
    "cnn": config.CNNModel(arch="cnn", widths=[32, 64, 128]),
    "resnet20": config.ResNetModel(arch="resnet", depth=20),
    "mobilenet_v2": config.MobileNetV2Model(arch="mobilenet_v2"),
}
FACTORY = "benchmarks.gpu_check:torchvision_model"
TORCHVISION = [
    "resnet18",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_x_400mf",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
    "densenet121",
    "convnext_tiny",
    "mnasnet0_5",
    "vit_b_16",
]


def synthetic_splits(samples: int, *, shape: tuple[int, ...] = (1, 28, 28), seed: int = 0) -> data.Splits:
    """``samples`` images of 10 classes, each a fixed random pattern plus noise (learnable in an epoch)."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(0, 1, (10, *shape)).astype(np.float32)
    y = rng.integers(0, 10, samples)
    x = templates[y] + rng.normal(0, 1.0, (samples, *shape)).astype(np.float32)
    classes = [str(c) for c in range(10)]
    return data.make_splits(
        x, y, val_fraction=0.1, test_fraction=0.1, seed=seed, class_names=classes, source="synthetic"
    )


def _epoch(model: torch.nn.Module, splits: data.Splits, precision: str) -> tuple[float, float]:
    """One fine-tune epoch: samples per second and the validation accuracy after it."""
    if splits.device.type == "cuda":
        torch.cuda.synchronize()
    history = engine.finetune(model, splits, engine.FinetuneConfig(epochs=1, lr=0.02, precision=precision))
    seconds = history.epochs[-1].seconds
    return history.train_samples / seconds, history.epochs[-1].val_accuracy


def engine_check(name: str, device: torch.device, samples: int) -> dict[str, Any]:
    """Section 1 for one zoo model (see the module docstring)."""
    splits = synthetic_splits(samples).with_layout(True)
    torch.manual_seed(0)
    dense = models.build(ZOO[name], splits.input_shape, 10).to(device)
    on_device = splits.on(device)
    clock = time.perf_counter()
    _epoch(dense, on_device, "fp32")  # the dense model's training (and the device's warm-up)
    warm = time.perf_counter() - clock
    groups = engine.discover(dense, splits.input_shape)
    pruned = copy.deepcopy(dense)
    clock = time.perf_counter()
    engine.apply_plan(pruned, engine.PrunePlan.uniform(groups, 0.5), splits.input_shape)
    prune_s = time.perf_counter() - clock
    fp32_rate, fp32_acc = _epoch(pruned, on_device, "fp32")
    bf16_rate, bf16_acc = _epoch(pruned, on_device, "bf16")
    accuracy = engine.evaluate(pruned, on_device.val).accuracy
    pair = {"dense": dense.eval(), "pruned": pruned.eval()}
    latency = {
        batch: engine.measure_latency(pair, splits.input_shape, engine.LatencyConfig(batch_size=batch, repeats=50))
        for batch in (1, 128)
    }
    batch = torch.arange(128)
    gpu_train = engine.measure_train_throughput(
        {"pruned": pruned}, on_device.train.rows(batch), on_device.train.labels(batch), batch_size=128
    )["pruned"]
    cpu_pruned = engine.cpu_copy(pruned)
    cpu_train = engine.measure_train_throughput(
        {"pruned": cpu_pruned}, splits.train.rows(batch), splits.train.labels(batch), batch_size=128, repeats=5
    )["pruned"]
    cpu_latency = engine.measure_latency({"pruned": cpu_pruned.eval()}, splits.input_shape, engine.LatencyConfig())
    return {
        "model": name,
        "params": [engine.count_params(dense), engine.count_params(pruned)],
        "first_epoch_s": round(warm, 2),
        "prune_s": round(prune_s, 3),
        "finetune_samples_per_s": {"fp32": round(fp32_rate), "bf16": round(bf16_rate)},
        "val_accuracy": {"fp32": fp32_acc, "bf16": bf16_acc, "evaluate": accuracy},
        "latency_ms": {str(b): {k: round(v, 4) for k, v in lat.items()} for b, lat in latency.items()},
        "train_step_samples_per_s": {"device": round(gpu_train), "cpu": round(cpu_train)},
        "device_vs_cpu_train": round(gpu_train / cpu_train, 1),
        "cpu_latency_ms_b1": round(cpu_latency["pruned"], 4),
    }


def pipeline_check(device: str, quick: bool) -> dict[str, Any]:
    """Section 2: the quickstart pipeline end to end on ``device``, its stores in a temporary folder."""
    from autoprune import workflow

    with tempfile.TemporaryDirectory(prefix="autoprune-gpu-") as folder:
        overrides = [
            f"device={device}",
            f"tracking.uri=sqlite:///{folder}/mlflow.db",
            f"search.storage=sqlite:///{folder}/optuna.db",
        ]
        if quick:
            overrides += ["search.trials=4", "finalize.epochs=2", "model.train.epochs=3"]
        clock = time.perf_counter()
        result = workflow.run(ROOT / "pipelines" / "quickstart_digits.yaml", overrides=overrides)
        seconds = time.perf_counter() - clock
    members = [
        {"trial": m.trial, "test_accuracy": m.test_accuracy, "macs": m.macs, "latency_ms": m.latency_ms}
        for m in result.members
    ]
    return {"seconds": round(seconds, 1), "concluded": result.concluded, "members": members}


def torchvision_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """A torchvision classification model by name (a factory for ``model.arch: factory``)."""
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def zoo_check(names: list[str]) -> dict[str, str]:
    """Section 3: each torchvision model through validate on 3x64x64 synthetic images (224 for ViT)."""
    from autoprune import workflow
    from autoprune.errors import AutoPruneError

    outcome: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="autoprune-zoo-") as folder:
        for name in names:
            size = 224 if name.startswith("vit") else 64
            rng = np.random.default_rng(0)
            path = Path(folder) / f"{size}.npz"
            if not path.is_file():
                np.savez(path, x=rng.normal(0, 1, (120, 3, size, size)).astype(np.float32), y=np.arange(120) % 4)
            pipeline = Path(folder) / f"{name}.yaml"
            pipeline.write_text(
                f"name: zoo-{name}\ndata: {{source: npz, path: {path}}}\n"
                f"model: {{arch: factory, factory: '{FACTORY}', kwargs: {{name: {name}}}}}\n"
                f"tracking: {{uri: 'sqlite:///{folder}/mlflow.db'}}\nsearch: {{storage: 'sqlite:///{folder}/optuna.db'}}\n"
            )
            clock = time.perf_counter()
            try:
                report = workflow.validate(pipeline)
                outcome[name] = f"ok: {len(report.groups)} groups, {time.perf_counter() - clock:.1f} s"
            except AutoPruneError as exc:
                outcome[name] = f"refused: {exc.message}"
            except Exception as exc:  # a crash is what this check is for: report it, go on
                outcome[name] = f"CRASH {type(exc).__name__}: {exc}"
            print(f"  {name:22s} {outcome[name]}", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu for a dry run")
    parser.add_argument("--quick", action="store_true", help="fewer samples and trials (a dry run on a CPU)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["engine", "pipeline", "zoo"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    device = engine.resolve_device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"torch {torch.__version__} on {device} ({card}); python {platform.python_version()}", flush=True)
    results: dict[str, Any] = {"device": str(device), "card": card, "torch": torch.__version__, "date": time.ctime()}
    if "engine" not in args.skip:
        results["engine"] = []
        for name in ZOO:
            row = engine_check(name, device, 2048 if args.quick else 16384)
            results["engine"].append(row)
            print(json.dumps(row), flush=True)
    if "pipeline" not in args.skip:
        results["pipeline"] = pipeline_check(args.device, args.quick)
        print("quickstart:", json.dumps(results["pipeline"]), flush=True)
    if "zoo" not in args.skip:
        try:
            import torchvision  # noqa: F401
        except Exception as exc:  # not installed, or (CPU torch) not importable
            print(f"torchvision zoo skipped: {type(exc).__name__}: {exc}")
        else:
            results["zoo"] = zoo_check(TORCHVISION[:3] if args.quick else TORCHVISION)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
