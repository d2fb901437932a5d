"""Engine efficiency: does removing X% of the MACs remove X% of the latency?

For every zoo model at uniform ratios 0.25/0.5/0.75 this measures params, MACs and CPU latency at batch
1 and 64 of the dense model and four pruned variants, all timed interleaved in this one process
(medians), and reports

    efficiency = latency speed-up / MACs reduction        (1.0 is the limit; higher is better)

A second copy of the dense model (``dense_copy``) is timed alongside: its speed-up should be 1.00 and
its spread is the noise floor of the run. The variants: autoprune's engine with and without
``round_to=8``, and a plain Torch-Pruning ``BasePruner`` (L1 group importance, local pruning;
``MagnitudePruner`` is its deprecated alias) with and without ``round_to=8`` at the same ratio, so the
effect of each choice shows side by side.

Weights are random (latency does not depend on their values); BN statistics are set by a few
training-mode passes. Usage::

    python benchmarks/engine.py                 # full run, ~10 min on 2 cores
    python benchmarks/engine.py --quick         # fewer repeats, ~2 min
    python benchmarks/engine.py --markdown out.md
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from datetime import date

import torch
import torch_pruning as tp

from autoprune import config, engine, models

ZOO = {
    "mlp": config.MLPModel(arch="mlp"),
    "lenet5": config.LeNet5Model(arch="lenet5"),
    "cnn": config.CNNModel(arch="cnn", widths=[32, 64, 128]),
    "resnet20": config.ResNetModel(arch="resnet", depth=20),
    "mobilenet_v2": config.MobileNetV2Model(arch="mobilenet_v2"),
}
VARIANTS = ("ours", "ours_r8", "tp", "tp_r8")
# A second copy of the dense model is timed like the others: its "speed-up" (ideally 1.00) shows the
# measurement noise floor of the run.
CONTROL = "dense_copy"


def dense_model(name: str, shape: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build(ZOO[name], shape, 10).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *shape))
    return model.eval()


def prune_ours(dense: torch.nn.Module, shape: tuple[int, ...], ratio: float, round_to: int | None) -> torch.nn.Module:
    model = copy.deepcopy(dense)
    plan = engine.PrunePlan.uniform(engine.discover(dense, shape), ratio, round_to=round_to)
    engine.apply_plan(model, plan, shape)
    return model.eval()


def prune_torch_pruning(
    dense: torch.nn.Module, shape: tuple[int, ...], ratio: float, round_to: int | None
) -> torch.nn.Module:
    model = copy.deepcopy(dense)
    pruner = tp.pruner.BasePruner(
        model,
        torch.randn(2, *shape),
        importance=tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=[model.classifier],
        round_to=round_to,
    )
    pruner.step()
    return model.eval()


def measure(name: str, ratio: float, shape: tuple[int, ...], args: argparse.Namespace) -> list[dict]:
    dense = dense_model(name, shape)
    variants = {
        "dense": dense,
        CONTROL: copy.deepcopy(dense),
        "ours": prune_ours(dense, shape, ratio, None),
        "ours_r8": prune_ours(dense, shape, ratio, 8),
        "tp": prune_torch_pruning(dense, shape, ratio, None),
        "tp_r8": prune_torch_pruning(dense, shape, ratio, 8),
    }
    latency = {}
    for batch, (warmup, repeats) in {
        1: (args.warmup, args.repeats),
        64: (max(2, args.warmup // 4), args.repeats_64),
    }.items():
        cfg = engine.LatencyConfig(batch_size=batch, threads=args.threads, warmup=warmup, repeats=repeats)
        latency[batch] = engine.measure_latency(variants, shape, cfg)
    dense_macs = engine.count_macs(dense, shape)
    rows = []
    for variant in ("dense", CONTROL, *VARIANTS):
        model = variants[variant]
        macs = engine.count_macs(model, shape)
        reduction = dense_macs / macs
        row = {
            "model": name,
            "ratio": ratio,
            "variant": variant,
            "params": engine.count_params(model),
            "macs": macs,
            "macs_reduction": reduction,
        }
        for batch in (1, 64):
            speedup = latency[batch]["dense"] / latency[batch][variant]
            row[f"lat{batch}_ms"] = latency[batch][variant]
            row[f"speedup{batch}"] = speedup
            row[f"eff{batch}"] = speedup / reduction
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    header = (
        "| model | ratio | variant | params | MACs | MACs ÷ | lat b1 ms | speed-up b1 | eff b1 "
        "| lat b64 ms | speed-up b64 | eff b64 |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for r in rows:
        if r["variant"] == "dense" and r["ratio"] != rows[0]["ratio"]:
            continue
        ratio = "–" if r["variant"] in ("dense", CONTROL) else f"{r['ratio']:.2f}"
        lines.append(
            f"| {r['model']} | {ratio} | {r['variant']} | {r['params']:,} | {r['macs']:,} | {r['macs_reduction']:.2f}x "
            f"| {r['lat1_ms']:.3f} | {r['speedup1']:.2f}x | {r['eff1']:.2f} "
            f"| {r['lat64_ms']:.2f} | {r['speedup64']:.2f}x | {r['eff64']:.2f} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Median efficiency per variant over all models and ratios."""
    import statistics

    lines = ["| variant | median eff b1 | median eff b64 |", "|---|---:|---:|"]
    for variant in (CONTROL, *VARIANTS):
        picked = [r for r in rows if r["variant"] == variant]
        lines.append(
            f"| {variant} | {statistics.median(r['eff1'] for r in picked):.2f} "
            f"| {statistics.median(r['eff64'] for r in picked):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (~2 min)")
    parser.add_argument("--models", default=",".join(ZOO), help="comma-separated subset of " + ",".join(ZOO))
    parser.add_argument("--ratios", default="0.25,0.5,0.75")
    parser.add_argument("--input-shape", default="1,28,28", help="C,H,W (default: Fashion-MNIST's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args()
    args.warmup, args.repeats, args.repeats_64 = (5, 40, 8) if args.quick else (20, 200, 30)
    shape = tuple(int(d) for d in args.input_shape.split(","))
    started = time.time()
    rows = []
    for name in args.models.split(","):
        for ratio in (float(r) for r in args.ratios.split(",")):
            rows.extend(measure(name, ratio, shape, args))
            print(f"  measured {name} at {ratio}", file=sys.stderr, flush=True)
    header = (
        f"Engine efficiency, {date.today().isoformat()}, input {args.input_shape}, {args.threads} thread(s), "
        f"{args.repeats} repeats at batch 1 / {args.repeats_64} at batch 64, "
        f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {time.time() - started:.0f} s"
    )
    text = f"{header}\n\n{markdown(rows)}\n\n{summary(rows)}\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
