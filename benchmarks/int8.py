"""Size beyond pruning, Deep-Compression style: dense fp32 -> dense int8, and each front member pruned
fp32 -> pruned int8, with the real files' bytes, test accuracy on raw inputs and onnxruntime latency.

Run after ``autoprune run PIPELINE`` (it reads that run's front from the pipeline's store)::

    python benchmarks/int8.py --pipeline pipelines/quickstart_digits.yaml
    python benchmarks/int8.py --pipeline pipelines/fashion_mnist_lenet5.yaml

Every model is the deployed ONNX file (raw inputs in, preprocessing inside); int8 is
``autoprune export --format onnx-int8``'s quantization (static, per-channel int8 weights, activations
calibrated on 512 training inputs). Latency: onnxruntime on one thread, the fp32 and int8 files of a
row called in turn (interleaved), medians, at batch 1 and 64.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnxruntime as ort
from evaluator_quality import CACHE_HELP, ROOT, load  # this folder is on sys.path

from autoprune import engine, workflow
from autoprune.tracking import Tracker, export_run


def latency_ms(paths: list[Path], inputs: np.ndarray, repeats: int) -> list[float]:
    """Median milliseconds per call of each file on ``inputs``, the files called in turn."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
    times: list[list[float]] = [[] for _ in sessions]
    for call in range(repeats + 10):
        for index, session in enumerate(sessions):
            start = time.perf_counter()
            session.run(None, {"input": inputs})
            if call >= 10:  # warm-up
                times[index].append(1000 * (time.perf_counter() - start))
    return [statistics.median(t) for t in times]


def accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predicted = np.concatenate(
        [session.run(None, {"input": inputs[i : i + 512]})[0].argmax(1) for i in range(0, len(inputs), 512)]
    )
    return float((predicted == labels).mean())


def member_params(run: object) -> int | None:
    """A finalized member's params as its run logged them (``front.params``; ``final_params`` before 2026-12-07)."""
    metrics = run.data.metrics  # type: ignore[attr-defined]
    value = metrics.get("front.params", metrics.get("final_params"))
    return None if value is None else int(value)


def finalized_front(tracker: Tracker, pipeline: Path) -> list:
    """The finalized front members of the latest search in ``tracker``'s experiment (exits without one)."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id], "tags.pareto = 'true'", order_by=["attributes.start_time DESC"]
    )
    parent = runs[0].data.tags.get("mlflow.parentRunId") if runs else None
    members = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent and member_params(r) is not None]
    if not members:
        sys.exit(f"no finalized front in {tracker.uri}: run `autoprune run {pipeline}` first")
    return members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "quickstart_digits.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per file at batch 1 (a fifth at 64)")
    parser.add_argument("--cache", type=Path, help=CACHE_HELP)
    args = parser.parse_args()
    loaded = workflow.load(args.pipeline, args.overrides)
    config, splits, dense = load(args.pipeline, args.overrides, args.cache)
    preprocessing = engine.Preprocessed.for_splits(dense, splits)
    raw_test = preprocessing.raw(splits.test.x).numpy().astype(np.float32)
    labels = splits.test.y.numpy()
    tracker = Tracker(config.tracking.uri, config.experiment, create=False).open()
    members = finalized_front(tracker, args.pipeline)
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as workdir:
        work = Path(workdir)
        models = [("dense", work / "dense", int(sum(p.numel() for p in dense.parameters())))]
        engine.export_onnx(preprocessing.eval(), splits.input_shape, work / "dense" / "model.onnx")
        for run in sorted(members, key=member_params):
            name = f"trial {run.data.tags.get('autoprune.trial', '?')}"
            export_run(tracker, run.info.run_id, "onnx", work / name)
            models.append((name, work / name, member_params(run)))
        for name, folder, params in models:
            fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
            done = workflow.quantize_member(loaded, fp32, int8)
            one = latency_ms([fp32, int8], raw_test[:1], args.repeats)
            batch = latency_ms([fp32, int8], raw_test[:64], max(10, args.repeats // 5))
            rows.append(
                f"| {name} | {params:,} | {fp32.stat().st_size:,} | {int8.stat().st_size:,} | "
                f"{fp32.stat().st_size / int8.stat().st_size:.2f}x | {accuracy(fp32, raw_test, labels):.4f} | "
                f"{accuracy(int8, raw_test, labels):.4f} | {done.agreement:.2%} | {one[0]:.3f} / {one[1]:.3f} | "
                f"{batch[0]:.2f} / {batch[1]:.2f} |"
            )
            print(rows[-1], flush=True)
    pipeline = args.pipeline.relative_to(ROOT) if args.pipeline.is_absolute() else args.pipeline
    print(f"\n{date.today()} · python benchmarks/int8.py --pipeline {pipeline} · test split {len(labels):,} samples\n")
    print(
        "| model | params | fp32 bytes | int8 bytes | smaller | test acc fp32 | test acc int8 | same prediction |"
        " ms batch 1 fp32 / int8 | ms batch 64 fp32 / int8 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
