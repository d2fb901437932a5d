"""The ``autoprune`` command line: thin wrappers that parse, call the library and print.

Known errors (bad input, unreachable stores) print one red line ``file:line: key: message`` and exit
with status 2; Ctrl-C exits with 130 after saying how to resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from . import __version__
from ._closing import print_result, set_flags
from .config import LoadedPipeline, load_pipeline
from .errors import AutoPruneError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="AutoML structured-pruning search for PyTorch.")
PIPE_WIDTH = 160  # into a file or pipe rich assumes 80 columns and would cut the front table's figures


def _console(*, stderr: bool = False) -> Console:
    """A console that is as wide as the terminal, or `PIPE_WIDTH` when writing to a file (unless COLUMNS says)."""
    console = Console(log_path=False, stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


console = _console()
err_console = _console(stderr=True)
DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"

PIPELINE = typer.Argument(..., exists=False, dir_okay=False, help="Pipeline YAML file.")
SET = typer.Option([], "--set", "-s", metavar="KEY.PATH=VALUE", help="Override a value of the pipeline (repeatable).")

BACKEND = typer.Option(None, "--backend", help="optuna or ray (default: the pipeline's search.backend).")
ADDRESS = typer.Option(None, "--address", help="Ray cluster address (default: ray.address, RAY_ADDRESS, or local).")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Log each phase and trial.")


def _with_backend(overrides: Sequence[str], backend: str | None, address: str | None) -> list[str]:
    """``--backend``/``--address`` are shorthands for ``--set search.backend=...``/``--set ray.address=...``."""
    return [
        *overrides,
        *([f"search.backend={backend}"] if backend else []),
        *([f"ray.address={address}"] if address else []),
    ]


class UsageError(AutoPruneError):
    """A command-line problem that is not in a file."""


def _setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    logger = logging.getLogger("autoprune")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch._export", "mlflow", "alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _load(path: Path, overrides: Sequence[str]) -> LoadedPipeline:
    return load_pipeline(path, overrides)


def _version(value: bool) -> None:
    if value:
        console.print(f"autoprune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """AutoML structured-pruning search for PyTorch: per-layer pruning ratios and fine-tune settings,
    searched for the Pareto front of accuracy, size and latency, tracked in MLflow."""


@app.command()
def run(
    pipeline: Path = PIPELINE,
    resume: bool = typer.Option(False, "--resume", help="Continue the latest search of this pipeline."),
    overrides: list[str] = SET,
    backend: str | None = BACKEND,
    address: str | None = ADDRESS,
    verbose: bool = VERBOSE,
) -> None:
    """Search a pipeline: prune, fine-tune and measure candidates; log them and the front to MLflow."""
    from . import pipeline as pipelines
    from ._display import SearchProgress
    from .tracking import store_errors

    _setup_logging(verbose)
    overrides = _with_backend(overrides, backend, address)
    loaded = _load(pipeline, overrides)
    try:
        with SearchProgress(console) as progress, store_errors():
            result = pipelines.run(loaded, resume=resume, observer=progress)
    except KeyboardInterrupt:
        command = f"autoprune run {pipeline} --resume" + set_flags(overrides)
        err_console.print(f"[yellow]interrupted[/]: finished trials are kept. Continue with\n  {escape(command)}")
        raise typer.Exit(130) from None
    except AutoPruneError as exc:
        raise loaded.locate(exc) from None
    print_result(console, result, pipeline, overrides)
    if result.failed_out:
        raise typer.Exit(1)


@app.command()
def retrain(
    pipeline: Path = PIPELINE,
    overrides: list[str] = SET,
    backend: str | None = BACKEND,
    address: str | None = ADDRESS,
    verbose: bool = VERBOSE,
) -> None:
    """Scheduled retraining: a new search warm-started from the last front; champion moves only if the new model wins."""
    from ._display import SearchProgress
    from .retrain import retrain as run_retrain
    from .tracking import store_errors

    _setup_logging(verbose)
    loaded = _load(pipeline, _with_backend(overrides, backend, address))
    try:
        with SearchProgress(console) as progress, store_errors():
            report, result = run_retrain(loaded, observer=progress)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished trials are kept; the champion was not moved.")
        raise typer.Exit(130) from None
    except AutoPruneError as exc:
        raise loaded.locate(exc) from None
    print_result(
        console,
        result,
        pipeline,
        overrides,
        champion=report.decision != "not-registered"
        and (report.champion_version is not None or report.decision in ("promoted", "first-champion")),
    )
    colour = "green" if report.decision in ("promoted", "first-champion") else "yellow"
    console.print(f"[bold {colour}]retrain: {report.decision}[/] - {escape(report.reason)}")
    console.print(f"report: retrain_report.md on {result.experiment_url}/runs/{result.parent_run_id}", soft_wrap=True)


schedule_app = typer.Typer(no_args_is_help=True, help="Scheduled retraining: render Kubernetes and cron manifests.")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("render")
def schedule_render(
    pipeline: Path = PIPELINE,
    overrides: list[str] = SET,
    out: Path = typer.Option(Path("deploy"), "--out", "-o", help="Folder for the manifests."),
) -> None:
    """Write a Kubernetes CronJob, a KubeRay RayJob and RayCronJob, and a crontab line from the schedule: block."""
    from .schedule import render

    _setup_logging(False)
    loaded = _load(pipeline, overrides)
    try:
        written = render(loaded, out)
    except AutoPruneError as exc:
        raise loaded.locate(exc) from None
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"apply with: kubectl apply -f {out / (loaded.config.name + '-cronjob.yaml')}")


@app.command()
def validate(pipeline: Path = PIPELINE, overrides: list[str] = SET) -> None:
    """Check a pipeline without training: data, model, dependency groups, search space, ONNX export."""
    from ._preflight import preflight

    _setup_logging(False)
    loaded = _load(pipeline, overrides)
    with console.status("checking data, model, groups and ONNX export"):
        try:
            report = preflight(loaded)
        except AutoPruneError as exc:
            raise loaded.locate(exc) from None
    console.print(f"[bold]data[/]   {report.data_summary}")
    console.print(
        f"[bold]model[/]  {loaded.config.model.arch}: {report.params:,} params, {report.macs:,} MACs per input"
    )
    table = Table(
        "group",
        "channels",
        "coupled modules",
        title=f"{len(report.groups)} prunable dependency groups",
        title_justify="left",
    )
    for group in report.groups:
        blocks = f" in {group.blocks} blocks" if group.blocks > 1 else ""
        table.add_row(group.name, f"{group.size}{blocks}", ", ".join(group.members))
    console.print(table)
    for name, reason in report.unprunable:
        console.print(f"[dim]not prunable: {name} ({reason})[/]")
    console.print(
        f"[bold]search[/] {len(report.searched)} searched settings, {len(report.fixed)} fixed; storage {report.storage}"
    )
    onnx = (
        " (ONNX not checked: finalize.onnx is off)"
        if report.onnx_max_diff is None
        else f" and exports to ONNX (max diff {report.onnx_max_diff:.1e})"
    )
    console.print(
        f"[bold]checks[/] zero-ratio prune leaves outputs unchanged; the smallest model of the space "
        f"({report.smallest_params:,} params) runs{onnx}"
    )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print(f"[green]OK[/] {pipeline} is ready to run")


def _tracker(pipeline: Path | None, overrides: Sequence[str], tracking_uri: str | None, experiment: str | None) -> Any:
    """A read-only view of an existing experiment (never creates one)."""
    from .tracking import Tracker

    if pipeline is not None:
        config = _load(pipeline, overrides).config
        return Tracker(tracking_uri or config.tracking.uri, experiment or config.experiment, create=False)
    if experiment is None:
        raise UsageError("give a pipeline file, or --experiment NAME (and --tracking-uri if not the default)")
    return Tracker(tracking_uri or DEFAULT_TRACKING_URI, experiment, create=False)


@app.command()
def pareto(
    pipeline: Path = typer.Argument(None, dir_okay=False, help="Pipeline YAML (gives the store and experiment)."),
    experiment: str = typer.Option(None, help="Experiment name, when no pipeline file is given."),
    tracking_uri: str = typer.Option(
        None, help=f"Tracking URI (default: the pipeline's, else {DEFAULT_TRACKING_URI})."
    ),
    search_run: str = typer.Option(None, "--run", help="Parent run id of a search (default: the latest search)."),
    overrides: list[str] = SET,
) -> None:
    """Print the Pareto front of a search, read back from MLflow."""
    from ._display import front_table
    from .tracking import latest_front, store_errors

    _setup_logging(False)
    with store_errors():
        tracker = _tracker(pipeline, overrides, tracking_uri, experiment)
        view = latest_front(tracker, search_run)
    title = f"{view.parent_name} ({view.status.lower()}): front of {len(view.rows)} among {view.trials} trials"
    if view.dense:
        console.print(front_table(title, view.rows, view.dense))
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
    export_format: str = typer.Option("onnx", "--format", "-f", help="onnx or state-dict (plan.json + state_dict.pt)."),
    out: Path = typer.Option(Path("exported"), "--out", "-o", file_okay=False, help="Output directory."),
    pipeline: Path = typer.Option(
        None, "--pipeline", "-p", dir_okay=False, help="Pipeline YAML (gives the store and the registered model)."
    ),
    tracking_uri: str = typer.Option(
        None, help=f"Tracking URI (default: the pipeline's, else {DEFAULT_TRACKING_URI})."
    ),
    overrides: list[str] = SET,
) -> None:
    """Write a front member's model as ONNX, or as its replayable plan and state dict."""
    from .tracking import EXPORT_FORMATS, Tracker, export_run, find_member, store_errors

    _setup_logging(False)
    if export_format not in EXPORT_FORMATS:
        raise UsageError(f"--format {export_format!r}: choose {' or '.join(EXPORT_FORMATS)}")
    if overrides and pipeline is None:
        raise UsageError("--set needs a pipeline (--pipeline) to override")
    config = _load(pipeline, overrides).config if pipeline else None
    uri = tracking_uri or (config.tracking.uri if config else DEFAULT_TRACKING_URI)
    with store_errors():
        tracker = Tracker(uri, None, create=False)
        found = find_member(tracker, member, config.registered_model if config else None)
        console.print(f"exporting {found.describe()}", highlight=False)
        for path in export_run(tracker, found.run_id, export_format, out):
            console.print(f"wrote {path}")


@app.command()
def ui(
    pipeline: Path = typer.Argument(None, dir_okay=False, help="Pipeline YAML (gives the store)."),
    tracking_uri: str = typer.Option(
        None, help=f"Backend store URI (default: the pipeline's, else {DEFAULT_TRACKING_URI})."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1 keeps it on this machine)."),
    port: int = typer.Option(5000, help="Port."),
    overrides: list[str] = SET,
) -> None:
    """Start the MLflow UI over the project's store (one worker); Ctrl-C stops it."""
    from .tracking import MlflowServer, Tracker, store_errors

    _setup_logging(False)
    if overrides and pipeline is None:
        raise UsageError("--set needs a pipeline to override")
    config = _load(pipeline, overrides).config if pipeline else None
    uri = tracking_uri or (config.tracking.uri if config else DEFAULT_TRACKING_URI)
    with MlflowServer(uri, host=host, port=port) as server:
        console.print(f"MLflow UI:        {server.url}")
        if config is not None:
            with store_errors():
                tracker = Tracker(uri, config.experiment, ui=server.url, create=False)
            console.print(f"Pareto front:     {tracker.front_url}", soft_wrap=True)
            console.print(f"Registered model: {tracker.model_url(config.registered_model)}")
            console.print("[dim]expand the search's row (+) to see its front runs[/]")
        console.print("[dim]Ctrl-C stops the server[/]")
        with contextlib.suppress(KeyboardInterrupt):
            status = server.wait()
            if status != 0:
                raise UsageError(f"mlflow server exited with status {status}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point. Known errors become one red line and exit status 2; an unexpected
    one becomes one line and status 1 (``AUTOPRUNE_DEBUG=1`` shows its traceback); Ctrl-C is 130."""
    import click

    try:
        status = app(args=argv, standalone_mode=False, prog_name="autoprune")
    except AutoPruneError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort, typer.Abort):
        sys.exit(130)
    except (click.ClickException, typer.TyperException) as exc:  # usage errors: unknown option, missing argument
        # typer vendors its own click, whose errors are not the click package's: both are caught here
        if hasattr(exc, "show"):
            exc.show()
        else:
            err_console.print(f"Error: {escape(str(exc))}", highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if os.environ.get("AUTOPRUNE_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err_console.print(
            f"[red]unexpected error:[/] {escape(type(exc).__name__)}: {escape(first)} (set AUTOPRUNE_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
