"""How long each command takes to answer, as a user waits for it (issue 37): wall seconds of fresh
processes, the commands interleaved round by round, medians over the rounds.

Runs the quickstart once in a temporary folder (a copy of pipelines/ and search_spaces/), then times
``--help``, ``validate`` (its ONNX check answered from the store's cache after the first), ``pareto``,
``export champion`` and ``ui`` (until its address answers HTTP; the server is then stopped)::

    python benchmarks/cli_speed.py --rounds 5
    python benchmarks/cli_speed.py --source ../before   # another checkout's code (PYTHONPATH), same venv

With several ``--source`` folders, each round times every command of every source in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "pipelines/quickstart_digits.yaml"
COMMANDS = {
    "--help": ["--help"],
    "validate": ["validate", PIPELINE],
    "pareto": ["pareto", PIPELINE],
    "export": ["export", "champion", "-p", PIPELINE, "-o", "exported"],
}


def _autoprune() -> list[str]:
    return [sys.executable, "-m", "autoprune"]


def _env(source: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    return env


def _timed(args: list[str], folder: Path, source: Path | None) -> float:
    start = time.perf_counter()
    subprocess.run([*_autoprune(), *args], cwd=folder, check=True, capture_output=True, env=_env(source))
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ui_answers(folder: Path, source: Path | None, timeout: float = 120.0) -> float:
    """Seconds from starting ``autoprune ui`` until its address answers; the server is stopped after."""
    port = _free_port()
    start = time.perf_counter()
    process = subprocess.Popen(
        [*_autoprune(), "ui", PIPELINE, "--port", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=_env(source),
    )
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"autoprune ui did not answer in {timeout:.0f} s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the samples here")
    parser.add_argument("--source", type=Path, action="append", help="a checkout whose code to time (repeatable)")
    args = parser.parse_args()
    sources: list[Path | None] = list(args.source or [None])
    with tempfile.TemporaryDirectory(prefix="autoprune-cli-") as name:
        folder = Path(name)
        for part in ("pipelines", "search_spaces"):
            shutil.copytree(ROOT / part, folder / part)
        print("running the quickstart once ...", flush=True)
        subprocess.run([*_autoprune(), "run", PIPELINE], cwd=folder, check=True, capture_output=True)
        samples: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for source in sources:
                label = "" if source is None else f"{source.name}: "
                for command, argv in COMMANDS.items():
                    samples.setdefault(label + command, []).append(_timed(argv, folder, source))
                samples.setdefault(label + "ui", []).append(_ui_answers(folder, source))
    for command, times in samples.items():
        print(f"{command:22s} median {statistics.median(times):5.2f} s  (min {min(times):.2f}, max {max(times):.2f})")
    if args.json:
        args.json.write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
