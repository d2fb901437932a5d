"""The ``autoprune`` commands that read a finished search back from its MLflow store: ``pareto``,
``export`` and ``ui``. They read the pipeline only for where its store is (no data, no model)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import UsageError
from ._app import app
from ._console import DEFAULT_TRACKING_URI, SET, console, print_whole, setup_logging

if TYPE_CHECKING:
    from ..config import PipelineConfig
    from ..tracking import Tracker

__all__ = ["export", "pareto", "relocate", "ui"]

TRACKING_URI = typer.Option(None, help=f"Tracking URI (default: the pipeline's, else {DEFAULT_TRACKING_URI}).")


def _config(pipeline: Path | None, overrides: Sequence[str]) -> PipelineConfig | None:
    """The pipeline's configuration (None without a pipeline; ``--set`` then is a usage error)."""
    from ..config import load_pipeline

    if pipeline is None:
        if overrides:
            raise UsageError("--set needs a pipeline to override")
        return None
    return load_pipeline(pipeline, overrides).config


def _tracker(
    config: PipelineConfig | None, tracking_uri: str | None, experiment: str | None, ui: str | None = None
) -> Tracker:
    """A read-only view of an existing experiment (never creates one), opened."""
    from ..tracking import Tracker

    if config is None and experiment is None:
        raise UsageError("give a pipeline file, or --experiment NAME (and --tracking-uri if not the default)")
    uri = tracking_uri or (config.tracking.uri if config else DEFAULT_TRACKING_URI)
    name = experiment or (config.experiment if config else None)
    return Tracker(uri, name, ui=ui, create=False).open()


@app.command()
def pareto(
    pipeline: Path = typer.Argument(None, help="Pipeline YAML (gives the store and experiment)."),
    experiment: str = typer.Option(None, help="Experiment name, when no pipeline file is given."),
    tracking_uri: str = TRACKING_URI,
    search_run: str = typer.Option(None, "--run", help="Parent run id of a search (default: the latest search)."),
    overrides: list[str] = SET,
) -> None:
    """Print the Pareto front of a search, read back from MLflow."""
    from ..tracking import latest_front, store_errors
    from ._closing import front_notes, front_table

    setup_logging(False)
    config = _config(pipeline, overrides)
    with store_errors():
        tracker = _tracker(config, tracking_uri, experiment)
        view = latest_front(tracker, search_run)
    on_front = max(view.on_front, len(view.members))
    title = f"{view.parent_name} ({view.status.lower()}): front of {on_front} among {view.trials} trials"
    title += front_notes(on_front, len(view.members), view.copies)
    if view.dense is not None:
        print_whole(console, front_table(title, view.members, view.dense))
    else:
        console.print(f"{title}: the search has not logged its dense reference yet")
    console.print(f"Pareto front:     {tracker.front_url}", soft_wrap=True)
    console.print(f"Search run:       {tracker.run_url(view.parent_run_id)}")
    if view.registered_model:
        console.print(f"Registered model: {tracker.model_url(view.registered_model)}")


@app.command()
def export(
    member: str = typer.Argument(
        ...,
        metavar="MEMBER",
        help="A front member: run id (or the 12 characters `autoprune pareto` "
        "prints), registered version (3 or v3), alias (champion) or models:/NAME@ALIAS.",
    ),
    export_format: str = typer.Option(
        "onnx",
        "--format",
        "-f",
        help="onnx, onnx-int8 (quantized, calibrated and checked on the pipeline's data), state-dict "
        "(plan.json + state_dict.pt) or shared (weights shared among --clusters values per layer, fine-tuned on "
        "the pipeline's data, packed).",
    ),
    clusters: int | None = typer.Option(
        None,
        "--clusters",
        min=2,
        max=65536,
        help="Shared values per layer (--format shared; default: the member's own when the search shared its "
        "weights, else 16).",
    ),
    out: Path = typer.Option(Path("exported"), "--out", "-o", file_okay=False, help="Output directory."),
    pipeline: Path = typer.Option(
        None, "--pipeline", "-p", help="Pipeline YAML (gives the store and the registered model)."
    ),
    tracking_uri: str = TRACKING_URI,
    overrides: list[str] = SET,
) -> None:
    """Write a front member's model as ONNX, or as its replayable plan and state dict."""
    from ..tracking import EXPORT_FORMATS, Tracker, export_run, find_member, store_errors

    setup_logging(False)
    formats = [*EXPORT_FORMATS, INT8, SHARED]
    if export_format not in formats:
        raise UsageError(f"--format {export_format!r}: choose {', '.join(formats[:-1])} or {formats[-1]}")
    if overrides and pipeline is None:
        raise UsageError("--set needs a pipeline (--pipeline) to override")
    config = _config(pipeline, overrides)
    uri = tracking_uri or (config.tracking.uri if config else DEFAULT_TRACKING_URI)
    with store_errors():
        tracker = Tracker(uri, None, create=False).open()
        found = find_member(tracker, member, config.registered_model if config else None)
        console.print(f"exporting {found.describe()}", highlight=False)
        if export_format in (INT8, SHARED):
            _export_compressed(tracker, found.run_id, export_format, clusters, pipeline, overrides, out)
            return
        for path in export_run(tracker, found.run_id, export_format, out):
            console.print(f"wrote {path}")


INT8 = "onnx-int8"
SHARED = "shared"


def _export_compressed(
    tracker: Tracker,
    run_id: str,
    export_format: str,
    clusters: int | None,
    pipeline: Path | None,
    overrides: Sequence[str],
    out: Path,
) -> None:
    """The member's int8 or shared-weights file: the search's own when it made one, else made now on
    the pipeline's data."""
    from ..tracking import export_run

    if _copied_deployable(tracker, run_id, export_format, clusters, out):
        return
    if pipeline is None:
        uses = "calibrates" if export_format == INT8 else "fine-tunes"
        raise UsageError(f"--format {export_format} needs --pipeline: its training split {uses}, its test split checks")
    with tempfile.TemporaryDirectory(prefix="autoprune-export-") as workdir:
        if export_format == INT8:
            (fp32,) = export_run(tracker, run_id, "onnx", Path(workdir))
            _quantized(pipeline, overrides, fp32, out / "model.int8.onnx")
        else:
            plan, _ = export_run(tracker, run_id, "state-dict", Path(workdir))
            _shared(pipeline, overrides, plan.parent, out, clusters or 16)


def _copied_deployable(tracker: Tracker, run_id: str, export_format: str, clusters: int | None, out: Path) -> bool:
    """Copy the compressed file a search made for this member (``model.int8.onnx``, or ``model.shared``
    with its ``plan.json`` when ``clusters`` is its count or None) into ``out``; False when it has none."""
    from .._vocab import DEPLOYABLE_FILES
    from ..tracking import member_where

    stored = member_where(tracker.client.get_run(run_id))["compression"]
    shared = stored.split(" shared values")[0] if " shared values" in stored else None
    if export_format == INT8 and stored.endswith("int8"):
        names = [DEPLOYABLE_FILES[INT8]]
    elif export_format == SHARED and shared is not None and clusters in (None, int(shared)) and "int8" not in stored:
        names = [DEPLOYABLE_FILES[SHARED], "plan.json"]
    else:
        return False
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(tracker.client.download_artifacts(run_id, f"pruned/{name}"), out / name)
        console.print(f"wrote {out / name} (stored as {stored} by the search)", highlight=False)
    return True


def _shared(pipeline: Path, overrides: Sequence[str], member: Path, out: Path, clusters: int) -> None:
    """Share ``member``'s weights (its plan and state dict) into ``out``, with its plan beside."""
    from .. import workflow

    loaded = workflow.load(pipeline, overrides)
    with workflow.located(loaded), console.status(f"sharing the weights among {clusters} values per layer"):
        done = workflow.share_member(loaded, member, out / workflow.SHARED_FILE, clusters=clusters)
    shutil.copyfile(member / "plan.json", out / "plan.json")
    console.print(
        f"wrote {done.path} ({done.shared_bytes:,} bytes, fp32 {done.fp32_bytes:,}: "
        f"{done.fp32_bytes / done.shared_bytes:.1f}x smaller); test accuracy {done.accuracy:.4f} (fp32 "
        f"{done.fp32_accuracy:.4f}), the same prediction on {done.agreement:.2%} of the test split",
        highlight=False,
    )


def _quantized(pipeline: Path, overrides: Sequence[str], fp32: Path, target: Path) -> None:
    from .. import workflow

    loaded = workflow.load(pipeline, overrides)
    with workflow.located(loaded):
        done = workflow.quantize_member(loaded, fp32, target)
    ratio = done.fp32_bytes / done.int8_bytes
    size = f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger: at this size the scales cost more"
    console.print(
        f"wrote {done.path} ({done.int8_bytes:,} bytes, fp32 {done.fp32_bytes:,}: {size}); predicts as the fp32 "
        f"model on {done.agreement:.2%} of the test split",
        highlight=False,
    )


@app.command()
def ui(
    pipeline: Path = typer.Argument(None, help="Pipeline YAML (gives the store)."),
    tracking_uri: str = typer.Option(
        None, help=f"Backend store URI (default: the pipeline's, else {DEFAULT_TRACKING_URI})."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1 keeps it on this machine)."),
    port: int = typer.Option(5000, help="Port."),
    overrides: list[str] = SET,
) -> None:
    """Start the MLflow UI over the project's store (one worker); Ctrl-C stops it."""
    from ..tracking import MlflowServer, store_errors

    setup_logging(False)
    config = _config(pipeline, overrides)
    uri = tracking_uri or (config.tracking.uri if config else DEFAULT_TRACKING_URI)
    # Ctrl-C, SIGTERM or SIGHUP at any moment: the server's process group is stopped, and `ui` ends normally
    with contextlib.suppress(KeyboardInterrupt), MlflowServer(uri, host=host, port=port) as server:
        console.print(f"MLflow UI:        {server.url}")
        if config is not None:
            with store_errors():
                tracker = _tracker(config, uri, None, ui=server.url)
            console.print(f"Pareto front:     {tracker.front_url}", soft_wrap=True)
            console.print(f"Registered model: {tracker.model_url(config.registered_model)}")
            console.print("[dim]expand the search's row (+) to see its front runs[/]")
        console.print("[dim]Ctrl-C stops the server[/]")
        status = server.wait()
        if status != 0:
            raise UsageError(f"mlflow server exited with status {status}")


@app.command()
def relocate(
    pipeline: Path = typer.Argument(None, help="Pipeline YAML (gives the store)."),
    tracking_uri: str = typer.Option(
        None, help=f"Backend store URI (default: the pipeline's, else {DEFAULT_TRACKING_URI})."
    ),
    overrides: list[str] = SET,
) -> None:
    """Point a moved or copied sqlite store's artifact paths at the folder it is in now (once)."""
    import sqlite3

    from .._sqlite import sqlite_path
    from ..tracking import relocate as relocate_store

    setup_logging(False)
    config = _config(pipeline, overrides)
    uri = tracking_uri or (config.tracking.uri if config else DEFAULT_TRACKING_URI)
    database = sqlite_path(uri)
    if database is None:
        raise UsageError(f"{uri} is not a sqlite store: a server's or a database's artifact locations are its own")
    if not database.is_file():
        raise UsageError(f"no MLflow store at {database}")
    try:
        moved = relocate_store(database)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot rewrite {database}: {exc} (is a search or the UI using it?)") from exc
    if moved is None:
        console.print(f"nothing to do: the artifact paths of {database} already name the folder beside it")
        return
    old, new, changed = moved
    console.print(f"{database}: {changed} artifact paths now name {new} (they named {old})")
