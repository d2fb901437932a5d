"""The front of a search that compressed its candidates (a ``compression`` section in its space): each
member's deployable file as the search wrote it, its test accuracy, and, for shared-weights files,
the bytes of the same two entries (layout and tensors) written deflated, as ``engine.save_shared``
writes them since files are deflated (re-zipped here, contents unchanged).

Run after ``autoprune run PIPELINE``::

    python benchmarks/compressed_front.py --pipeline pipelines/fashion_mnist_lenet5_compressed.yaml
"""

from __future__ import annotations

import argparse
import io
import tempfile
import zipfile
from datetime import date
from pathlib import Path

from int8 import finalized_front, member_params  # this folder is on sys.path

from autoprune import workflow
from autoprune.tracking import Tracker

ROOT = Path(__file__).resolve().parents[1]


def deflated_size(path: Path) -> int:
    """The bytes of ``path``'s zip entries written again with deflate (level 9), in the same order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for name in source.namelist():
            out.writestr(name, source.read(name))
    return buffer.getbuffer().nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = workflow.load(args.pipeline, args.overrides).config
    tracker = Tracker(config.tracking.uri, config.experiment, create=False).open()
    dense_bytes = float(tracker.search("tags.`autoprune.kind` = 'search'")[0].data.metrics["dense_size_bytes"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="compressed-front-") as workdir:
        for run in sorted(finalized_front(tracker, args.pipeline), key=member_params):
            metrics, stored = run.data.metrics, run.data.tags.get("autoprune.compression", "fp32")
            accuracy = metrics.get("front.test_accuracy", metrics.get("test_accuracy"))
            size = int(metrics.get("front.size_bytes", metrics.get("final_size_bytes", 0)))
            deflated = ""
            if stored.endswith("shared values"):
                local = Path(tracker.client.download_artifacts(run.info.run_id, "pruned/model.shared", workdir))
                size = local.stat().st_size
                deflated = f"{deflated_size(local):,} ({dense_bytes / deflated_size(local):.1f}x)"
            trial = run.data.tags.get("autoprune.trial", "?")
            written = f"{size:,} ({dense_bytes / size:.1f}x)"
            rows.append(f"| {trial} | {stored} | {member_params(run):,} | {accuracy:.4f} | {written} | {deflated} |")
    pipeline = args.pipeline.relative_to(ROOT) if args.pipeline.is_absolute() else args.pipeline
    print(f"{date.today()} · python benchmarks/compressed_front.py --pipeline {pipeline}")
    print(f"dense model: {dense_bytes:,.0f} bytes\n")
    print("| trial | stored as | params | test acc | bytes as written (smaller) | deflated (smaller) |")
    print("|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
