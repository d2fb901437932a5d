"""A person picks a Pareto model in the real MLflow UI, in Debian's Chromium.

Starts ``mlflow server`` on 127.0.0.1 over the store of the finished e2e search, filters the runs by
the pareto tag, checks the front's runs are the ones listed, opens the registered model and checks
its aliases. Screenshots go to ``$AUTOPRUNE_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from autoprune.tracking import MlflowServer, Tracker

from ..helpers import free_port
from . import browser
from .conftest import Store

pytestmark = pytest.mark.slow


def test_a_person_picks_a_front_model_in_the_mlflow_ui(finished_search: Store, tmp_path: Path) -> None:
    if reason := browser.unavailable():
        pytest.skip(reason)
    shots = Path(os.environ.get("AUTOPRUNE_SCREENSHOTS", tmp_path))
    client = MlflowClient(finished_search.uri)
    experiment = client.get_experiment_by_name("e2e-digits")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    front = sorted(r.info.run_name for r in runs if r.data.tags.get("pareto") == "true")
    search = next(r.info.run_name for r in runs if r.data.tags.get("autoprune.kind") == "search")
    aliases = {int(v.version): [] for v in client.search_model_versions("name = 'e2e-digits'")}
    for alias, version in client.get_registered_model("e2e-digits").aliases.items():
        aliases[int(version)] = sorted([*aliases[int(version)], alias])
    server = MlflowServer(finished_search.uri, port=free_port()).start()
    try:
        tracker = Tracker(finished_search.uri, "e2e-digits", ui=server.url, create=False).open()
        with browser.chromium_page() as page:
            listed = browser.filter_front(page, f"{tracker.experiment_url}/runs", search)
            browser.screenshot(page, shots, "front")
            assert sorted(listed) == front and front
            assert browser.matching_runs(page) == len(front) + 1  # MLflow counts the search's row shown above them

            columns, listed = browser.front_view(page, tracker.front_url)  # the address autoprune prints
            browser.screenshot(page, shots, "front_view")
            finalized = sorted(r.info.run_name for r in runs if r.data.tags.get("autoprune.finalized") == "true")
            assert sorted(listed) == finalized and browser.matching_runs(page) == len(finalized)
            assert page.get_by_test_id("search-box").input_value().startswith('tags.pareto = "true" and ')
            figures = [c for c in columns if c.startswith("front.")]  # the members' final figures, in reading order
            reading = ("test_accuracy", "params", "macs", "size_bytes", "latency_ms", "speedup")
            assert figures == [f"front.{name}" for name in reading]
            assert columns.index("Run Name") < columns.index("front.test_accuracy") and "Models" in columns

            shown = browser.version_aliases(page, tracker.model_url("e2e-digits"))
            browser.screenshot(page, shots, "registered_model")
            assert shown == aliases
            assert {"champion", "smallest", "fastest", "most-accurate"} <= {
                a for names in shown.values() for a in names
            }
        group = server.process.pid
    finally:
        server.stop()
    leftover = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
    assert (shots / "front.png").stat().st_size > 10_000
