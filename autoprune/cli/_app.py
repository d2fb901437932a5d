"""The ``autoprune`` commands that run pipelines: ``run``, ``retrain``, ``validate`` and ``schedule
render``. Each parses, calls `autoprune.workflow` and prints; the library locates errors (file, line,
key) and `main` prints them as one line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ._closing import print_result, set_flags
from ._console import ADDRESS, BACKEND, PIPELINE, SET, VERBOSE, console, err_console, setup_logging, with_backend
from ._signals import exit_status

if TYPE_CHECKING:
    from ..workflow import ValidationReport

__all__ = ["app"]


class _FlagHelp:
    """``--help`` shown as the flag it is (typer gives it a ``<bool>`` value)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Command(_FlagHelp, TyperCommand):
    pass


class _Group(_FlagHelp, TyperGroup):
    pass


class _App(typer.Typer):
    """A typer app whose commands show ``--help`` as a flag."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _App(cls=_Group, add_completion=False, no_args_is_help=True, help="AutoML structured-pruning search for PyTorch.")


def _version(value: bool) -> None:
    if value:
        console.print(f"autoprune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, metavar="", help="Print the version."
    ),
) -> None:
    """AutoML structured-pruning search for PyTorch: per-layer pruning ratios and fine-tune settings,
    searched for the Pareto front of accuracy, size and latency, tracked in MLflow."""


@app.command()
def run(
    pipeline: Path = PIPELINE,
    resume: bool = typer.Option(False, "--resume", metavar="", help="Continue the latest search of this pipeline."),
    overrides: list[str] = SET,
    backend: str | None = BACKEND,
    address: str | None = ADDRESS,
    verbose: bool = VERBOSE,
) -> None:
    """Search a pipeline: prune, fine-tune and measure candidates; log them and the front to MLflow."""
    from .. import workflow
    from ..tracking import store_errors
    from ._progress import SearchProgress

    setup_logging(verbose)
    overrides = with_backend(overrides, backend, address)
    loaded = workflow.load(pipeline, overrides)
    try:
        with SearchProgress(console) as progress, store_errors():
            result = workflow.run(loaded, resume=resume, observer=progress)
    except KeyboardInterrupt as exc:
        command = f"autoprune run {pipeline} --resume" + set_flags(overrides)
        err_console.print(f"[yellow]interrupted[/]: finished trials are kept. Continue with\n  {escape(command)}")
        raise typer.Exit(exit_status(exc)) from None
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
    """Scheduled retraining: a new search warm-started from the last front; champion moves only if it wins."""
    from .. import workflow
    from ..tracking import store_errors
    from ._progress import SearchProgress

    setup_logging(verbose)
    loaded = workflow.load(pipeline, with_backend(overrides, backend, address))
    try:
        with SearchProgress(console) as progress, store_errors():
            report, result = workflow.retrain(loaded, observer=progress)
    except KeyboardInterrupt as exc:
        err_console.print("[yellow]interrupted[/]: finished trials are kept; the champion was not moved.")
        raise typer.Exit(exit_status(exc)) from None
    promoted = report.decision in ("promoted", "first-champion")
    has_champion = report.decision != "not-registered" and (report.champion_version is not None or promoted)
    print_result(console, result, pipeline, overrides, champion=has_champion)
    colour = "green" if promoted else "yellow"
    console.print(f"[bold {colour}]retrain: {report.decision}[/] - {escape(report.reason)}")
    console.print(f"report: retrain_report.md on {result.experiment_url}/runs/{result.parent_run_id}", soft_wrap=True)


schedule_app = _App(
    cls=_Group, no_args_is_help=True, help="Scheduled retraining: render Kubernetes and cron manifests."
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("render")
def schedule_render(
    pipeline: Path = PIPELINE,
    overrides: list[str] = SET,
    out: Path = typer.Option(Path("deploy"), "--out", "-o", help="Folder for the manifests."),
) -> None:
    """Write a Kubernetes CronJob, a KubeRay RayJob and RayCronJob, and a crontab line from the schedule: block."""
    from .. import workflow
    from ..schedule import render

    setup_logging(False)
    loaded = workflow.load(pipeline, overrides)
    with workflow.located(loaded):
        written = render(loaded, out)
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"apply with: kubectl apply -f {out / (loaded.config.name + '-cronjob.yaml')}")


@app.command()
def validate(pipeline: Path = PIPELINE, overrides: list[str] = SET) -> None:
    """Check a pipeline without training: data, model, dependency groups, search space, ONNX export."""
    from .. import workflow

    setup_logging(False)
    loaded = workflow.load(pipeline, overrides)
    with console.status("checking data, model, groups and ONNX export"):
        report = workflow.validate(loaded)
    _print_validation(report, loaded.config.model.arch, pipeline)


def _print_validation(report: ValidationReport, arch: str, pipeline: Path) -> None:
    console.print(f"[bold]data[/]   {report.data_summary}")
    console.print(f"[bold]model[/]  {arch}: {report.params:,} params, {report.macs:,} MACs per input")
    console.print(f"[bold]device[/] {report.device}")
    title = f"{len(report.groups)} prunable dependency groups"
    table = Table("group", "channels", "coupled modules", title=title, title_justify="left")
    for group in report.groups:
        blocks = f" in {group.blocks} blocks" if group.blocks > 1 else ""
        table.add_row(group.name, f"{group.size}{blocks}", ", ".join(group.members))
    console.print(table)
    for name, reason in report.unprunable:
        console.print(f"[dim]not prunable: {name} ({reason})[/]")
    console.print(
        f"[bold]search[/] {report.strategy}: {len(report.searched)} searched settings, {len(report.fixed)} fixed; "
        f"storage {report.storage}"
    )
    if report.onnx_max_diff is None:
        onnx = " (ONNX not checked: finalize.onnx is off)"
    else:
        onnx = f" and exports to ONNX (max diff {report.onnx_max_diff:.1e})"
    console.print(
        f"[bold]checks[/] zero-ratio prune leaves outputs unchanged; the smallest model of the space "
        f"({report.smallest_params:,} params) runs{onnx}"
    )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print(f"[green]OK[/] {pipeline} is ready to run")
