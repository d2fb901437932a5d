"""Screenshots of the picking flow for the README, taken from a real store in Debian's Chromium.

    make quickstart                                   # a finished search in mlflow/
    .venv/bin/python docs/screenshots.py              # writes docs/images/front.png, registered_model.png

Options: --tracking-uri (default sqlite:///mlflow/mlflow.db), --experiment and --model
(default quickstart-digits), --out (default docs/images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoprune.tracking import MlflowServer, Tracker  # noqa: E402
from tests.e2e import browser  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow/mlflow.db")
    parser.add_argument("--experiment", default="quickstart-digits")
    parser.add_argument("--model", default=None, help="registered model (default: the experiment's name)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--port", type=int, default=5077)
    args = parser.parse_args()
    if reason := browser.unavailable():
        raise SystemExit(reason)
    with MlflowServer(args.tracking_uri, port=args.port) as server:
        tracker = Tracker(args.tracking_uri, args.experiment, ui=server.url, create=False).open()
        searches = tracker.search("tags.`autoprune.kind` = 'search'")
        latest = max(searches, key=lambda run: run.info.start_time)
        with browser.chromium_page(width=1440, height=760) as page:
            _, names = browser.front_view(page, tracker.front_url)
            print(f"front: {len(names)} runs ({latest.info.run_name})", file=sys.stderr)
            print(browser.screenshot(page, args.out, "front"))
            page.set_viewport_size({"width": 1440, "height": 1320})  # every version in view
            browser.version_aliases(page, tracker.model_url(args.model or args.experiment))
            print(browser.screenshot(page, args.out, "registered_model"))


if __name__ == "__main__":
    main()
