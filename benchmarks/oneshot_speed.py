"""How fast the one-shot strategy is: end to end against the trials strategy, and per candidate.

1. ``autoprune run PIPELINE`` as a user runs it (a subprocess, a fresh store each time, the dense model
   trained too), with ``search.strategy`` trials and oneshot alternating for ``--rounds`` rounds:
   median wall times and their ratio.
2. The one-shot search once more in-process with the dense model and the supernet cached: candidates
   scored per second, and the framework's overhead per candidate (the candidate loop's seconds not
   spent scoring: the sampler, the journal study, the progress display) as a share of the scoring time.

Usage (results in BENCHMARKS.md)::

    python benchmarks/oneshot_speed.py                       # the quickstart, 3 rounds (~6 min)
    python benchmarks/oneshot_speed.py --rounds 1 --set oneshot.candidates=300
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from datetime import date
from pathlib import Path

from pipeline import PIPELINE, ROOT, end_to_end  # this folder is on sys.path


def in_process(pipeline_file: Path, workdir: Path, overrides: list[str]) -> dict[str, float]:
    """The one-shot search again in ``workdir``'s store: the dense model and the supernet come from its cache."""
    os.chdir(workdir)
    from autoprune import workflow

    result = workflow.run(pipeline_file, overrides=[*overrides, "search.strategy=oneshot", "search.study=speed"])
    seconds = result.seconds
    scored = result.config.oneshot.candidates
    return {
        "candidates": scored,
        "candidates_s": seconds["candidates"],
        "scoring_s": seconds["scoring"],
        "per_second": scored / seconds["candidates"],
        "overhead": (seconds["candidates"] - seconds["scoring"]) / seconds["scoring"],
        "supernet_s": seconds["supernet"],
        "finalize_s": seconds["finalize"],
        "members": len(result.members),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, default=PIPELINE, help="default: the quickstart")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end runs of each strategy, alternating")
    args = parser.parse_args()
    pipeline_file = args.pipeline.resolve()
    walls: dict[str, list[float]] = {"trials": [], "oneshot": []}
    with tempfile.TemporaryDirectory(prefix="autoprune-oneshot-") as tmp:
        for round_index in range(args.rounds):
            order = ("trials", "oneshot") if round_index % 2 == 0 else ("oneshot", "trials")
            for strategy in order:
                workdir = Path(tmp) / f"{strategy}-{round_index}"
                workdir.mkdir()
                walls[strategy].append(
                    end_to_end(pipeline_file, workdir, [*args.overrides, f"search.strategy={strategy}"])
                )
        stats = in_process(pipeline_file, Path(tmp) / "oneshot-0", args.overrides)
    shown = pipeline_file.relative_to(ROOT) if pipeline_file.is_relative_to(ROOT) else pipeline_file.name
    trials, oneshot = statistics.median(walls["trials"]), statistics.median(walls["oneshot"])
    print(f"One-shot speed, {date.today().isoformat()}, {shown}, overrides: {' '.join(args.overrides) or 'none'}\n")
    print("| measure | value |\n|---|---:|")
    print(f"| `autoprune run`, fresh store, trials strategy (median of {args.rounds}) | {trials:.1f} s |")
    print(f"| the same with `--set search.strategy=oneshot` | {oneshot:.1f} s ({oneshot / trials:.2f}x) |")
    print(
        f"| one-shot, cached dense model and supernet: {stats['candidates']:.0f} candidates | "
        f"{stats['candidates_s']:.1f} s ({stats['per_second']:.0f} candidates/s) |"
    )
    print(f"| framework overhead per candidate (sampler, journal, display) / scoring time | {stats['overhead']:.1%} |")
    print(
        f"| supernet (from the cache) / finalize of {stats['members']:.0f} members | "
        f"{stats['supernet_s']:.1f} / {stats['finalize_s']:.1f} s |"
    )


if __name__ == "__main__":
    main()
