"""Weight sharing after pruning (Deep Compression's second step) on a finished search's front: each
member's fp32 state dict against its shared file at 16 and 32 values per layer (the bytes of the real
files), test accuracy, and how often the shared model predicts what the fp32 one does.

Run after ``autoprune run PIPELINE`` (it reads that run's front from the pipeline's store)::

    python benchmarks/weight_sharing.py --pipeline pipelines/fashion_mnist_lenet5.yaml
    python benchmarks/weight_sharing.py --pipeline pipelines/quickstart_digits.yaml --clusters 16

Sharing is ``workflow.share_member``: per-layer k-means, 2 epochs of fine-tuning the shared values
(distilled from the member), the deployable written packed (indices of ceil(log2 k) bits).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from int8 import finalized_front, member_params  # this folder is on sys.path

from autoprune import workflow
from autoprune.tracking import Tracker, export_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "quickstart_digits.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--clusters", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    loaded = workflow.load(args.pipeline, args.overrides)
    config = loaded.config
    tracker = Tracker(config.tracking.uri, config.experiment, create=False).open()
    members = finalized_front(tracker, args.pipeline)
    rows = []
    with tempfile.TemporaryDirectory(prefix="share-bench-") as workdir:
        for run in sorted(members, key=member_params):
            name = f"trial {run.data.tags.get('autoprune.trial', '?')}"
            folder = Path(workdir) / name
            export_run(tracker, run.info.run_id, "state-dict", folder)
            cells = []
            fp32 = None
            for clusters in args.clusters:
                done = workflow.share_member(
                    loaded, folder, folder / f"k{clusters}.shared", clusters=clusters, epochs=args.epochs
                )
                fp32 = done
                cells.append(
                    f"{done.shared_bytes:,} ({done.fp32_bytes / done.shared_bytes:.1f}x) | {done.accuracy:.4f} | "
                    f"{done.agreement:.2%}"
                )
            assert fp32 is not None
            params = member_params(run)
            rows.append(
                f"| {name} | {params:,} | {fp32.fp32_bytes:,} | {fp32.fp32_accuracy:.4f} | " + " | ".join(cells) + " |"
            )
            print(rows[-1], flush=True)
    pipeline = args.pipeline.relative_to(ROOT) if args.pipeline.is_absolute() else args.pipeline
    print(f"\n{date.today()} · python benchmarks/weight_sharing.py --pipeline {pipeline}\n")
    head = " | ".join(f"k={k} bytes (smaller) | test acc | same prediction" for k in args.clusters)
    print(f"| model | params | fp32 bytes | test acc fp32 | {head} |")
    print("|---|---:|---:|---:|" + "---:|---:|---:|" * len(args.clusters))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
