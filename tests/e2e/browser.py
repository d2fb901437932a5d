"""Driving the MLflow UI in Debian's Chromium with Playwright (never a downloaded browser).

Used by the browser test and by ``docs/screenshots.py``. The selectors are MLflow 3.17's: the runs
page's search box (``data-testid="search-box"``), the run-name cell whose button expands a parent
run, and the registered-model page's rows ("Version N ... @ alias").
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# as root, without a sandbox; and without the background networking whose refused connections stall it
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000
# MLflow's assistant panel opens on a first visit and covers part of the run table: keep it closed
NO_ASSISTANT = """
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""


def unavailable() -> str | None:
    """Why no browser test can run here (None when it can)."""
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@contextlib.contextmanager
def chromium_page(width: int = 1440, height: int = 900) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            page.add_init_script(NO_ASSISTANT)
            yield page
        finally:
            browser.close()


def filter_front(page: Any, runs_url: str, search_run: str, query: str = 'tags.pareto = "true"') -> list[str]:
    """Type ``query`` in the runs page's search box, expand the search's parent row, return run names."""
    page.goto(runs_url, wait_until="load")
    box = page.get_by_test_id("search-box")
    box.fill(query)
    box.press("Enter")
    page.get_by_text(re.compile(r"\d+ matching runs?")).wait_for()
    row = page.locator("[role=row]", has_text=search_run)
    row.locator("button[data-component-id*='runnamecellrenderer']").click()
    names = page.locator("[role=gridcell][col-id='attributes.`Run Name`'] a")
    page.wait_for_function(
        "n => document.querySelectorAll(\"[role=gridcell][col-id='attributes.`Run Name`'] a\").length > n", arg=1
    )
    return [names.nth(i).inner_text() for i in range(names.count()) if names.nth(i).inner_text() != search_run]


def front_view(page: Any, front_url: str) -> tuple[list[str], list[str]]:
    """Open the front's saved view (the address autoprune prints); its column headers, left to right,
    and the run names it lists."""
    page.goto(front_url, wait_until="load")
    page.get_by_text("front.test_accuracy").first.wait_for()
    page.get_by_text(re.compile(r"\d+ matching runs?")).wait_for()
    headers = page.locator("[role=columnheader]")
    placed = []  # the grid moves reordered columns on screen, not in the page: read them left to right
    for index in range(headers.count()):
        box = headers.nth(index).bounding_box()
        if box is not None:
            placed.append((box["x"], headers.nth(index).inner_text().strip()))
    shown = [name for _, name in sorted(placed)]
    columns = [name for i, name in enumerate(shown) if name and name not in shown[:i]]  # headers come in pairs
    names = page.locator("[role=gridcell][col-id='attributes.`Run Name`'] a")
    return columns, [names.nth(i).inner_text() for i in range(names.count())]


def matching_runs(page: Any) -> int:
    text = page.get_by_text(re.compile(r"\d+ matching runs?")).inner_text()
    return int(text.split()[0])


def version_aliases(page: Any, model_url: str) -> dict[int, list[str]]:
    """Version number -> aliases as the registered model's page shows them."""
    page.goto(model_url, wait_until="load")
    page.get_by_text(re.compile(r"^Version \d+$")).first.wait_for()
    with contextlib.suppress(Exception):  # aliases arrive after the rows; a model may have none
        page.get_by_text(re.compile(r"^@\s")).first.wait_for(timeout=10_000)
    shown: dict[int, list[str]] = {}
    rows = page.locator("[role=row]")
    for index in range(rows.count()):
        text = rows.nth(index).inner_text()
        version = re.search(r"Version (\d+)", text)
        if version:
            shown[int(version.group(1))] = sorted(re.findall(r"@\s*([\w-]+)", text))
    return shown


def screenshot(page: Any, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path))
    return path
