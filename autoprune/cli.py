"""The ``autoprune`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import AutoPruneError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="AutoML structured-pruning search for PyTorch.")
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"autoprune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """AutoML structured-pruning search for PyTorch."""


@app.command()
def demo(
    ratios: str = typer.Option("0.25,0.5,0.75", help="Comma-separated uniform pruning ratios."),
    epochs: int = typer.Option(2, min=0, help="Fine-tune epochs after pruning."),
) -> None:
    """Train the digits CNN, prune it uniformly at a few ratios, fine-tune and measure each."""
    import torch

    from . import config, data, engine, models

    torch.manual_seed(0)
    splits = data.load(config.DigitsData(), seed=0)
    console.print(f"[bold]data[/] {splits.summary()}")
    dense = models.build(config.CNNModel(arch="cnn"), splits.input_shape, splits.num_classes)
    with console.status("training the dense CNN (15 epochs)"):
        engine.finetune(dense, splits, engine.FinetuneConfig(epochs=15, lr=0.05))
    groups = engine.discover(dense, splits.input_shape)
    console.print("[bold]groups[/] " + ", ".join(f"{g.name} ({g.size} ch)" for g in groups))
    table = Table("ratio", "test acc", "params", "MACs", "latency ms", "speed-up", "train samples/s")
    dense_test = engine.evaluate(dense, splits.test).accuracy
    table.add_row("dense", f"{dense_test:.3f}", f"{engine.count_params(dense):,}",
                  f"{engine.count_macs(dense, splits.input_shape):,}", "", "1.00x", "")  # fmt: skip
    for ratio in (float(r) for r in ratios.split(",")):
        candidate = engine.Candidate(engine.PrunePlan.uniform(groups, ratio), engine.FinetuneConfig(epochs=epochs))
        with console.status(f"ratio {ratio}: prune, fine-tune, measure"):
            result = engine.evaluate_candidate(
                dense, candidate, splits, measure=engine.MeasureConfig(train_throughput=True)
            )
        test = engine.evaluate(result.model, splits.test).accuracy
        table.add_row(
            f"{ratio:.2f}", f"{test:.3f}", f"{result.params:,}", f"{result.macs:,}", f"{result.latency_ms:.3f}",
            f"{result.speedup_vs_dense:.2f}x", f"{result.train_samples_per_s:,.0f} (dense {result.dense_train_samples_per_s:,.0f})",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    """Console-script entry point: known errors become one red line and exit status 2."""
    try:
        app()
    except AutoPruneError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
