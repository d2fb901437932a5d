"""What a finished search prints: its front as a table (``run`` and ``pareto`` print the same figures),
why it stopped if it did, and the commands that go on from it (the UI, an export), with the ``--set``
overrides that name its store."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._vocab import TrialState
from ._console import print_whole

if TYPE_CHECKING:  # torch comes with them: not on `autoprune --help`
    from ..search import DenseReference, FinalizedMember
    from ..workflow import PipelineResult

__all__ = ["front_table", "front_title", "names_the_store", "print_result", "set_flags"]


def _share(value: float, reference: float) -> str:
    return f"{value:,.0f} ({value / reference:.0%})" if reference else f"{value:,.0f}"


def front_table(title: str, members: Sequence[FinalizedMember], dense: DenseReference) -> Table:
    """Front members by MACs with their final figures; latency is the dense model's latency times the
    ratio measured interleaved with it (stable where absolute milliseconds drift). When a member is
    compressed, its deployable's bytes and how it is stored come too."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="latency: dense latency × the pruned/dense ratio measured side by side",
        caption_justify="left",
    )
    stored = any(member.compression != "fp32" for member in members)
    columns = ["trial", "version", "aliases", "test acc", "params", "MACs", "latency ms", "speed-up"]
    columns += ["bytes", "stored as"] if stored else []
    for column in (*columns, "run id"):
        table.add_column(
            column, justify="left" if column in ("aliases", "run id", "stored as") else "right", no_wrap=True
        )
    figures = [f"{dense.test_accuracy:.4f}", f"{dense.params:,.0f}", f"{dense.macs:,.0f}", f"{dense.latency_ms:.3f}"]
    figures += ["1.00x", *([f"{dense.size_bytes:,.0f}", "fp32"] if stored else [])]
    table.add_row("dense", "", "", *figures, "", style="dim")
    for member in sorted(members, key=lambda m: m.macs):
        row = [
            str(member.trial),
            "" if member.version is None else str(member.version),
            ",".join(member.aliases),
            f"{member.test_accuracy:.4f}",
            _share(member.params, dense.params),
            _share(member.macs, dense.macs),
            f"{dense.latency_ms * member.latency_ratio:.3f}",
            f"{member.speedup:.2f}x",
        ]
        row += [_share(member.size_bytes, dense.size_bytes), member.compression] if stored else []
        table.add_row(*row, member.run_id[:12])
    return table


def print_result(
    console: Console, result: PipelineResult, pipeline: Path, overrides: Sequence[str], *, champion: bool = False
) -> None:
    """The front table and where to go next; ``champion``: the registry has a champion even if this
    search did not set it (a retrain that kept the last one)."""
    if not result.concluded:
        console.print(
            f"This worker is done ({result.completed} trials completed in the study); other workers still run "
            "trials, and the last one to finish concludes the search."
        )
        return
    print_whole(console, front_table(front_title(result), result.members, result.dense))
    _print_notes(console, result, pipeline)
    console.print(f"hypervolume {result.hypervolume:.4f} · study {result.study} in {result.storage}")
    console.print(f"Pareto front:     {result.front_url}", soft_wrap=True)
    if result.model_url:
        console.print(f"Registered model: {result.model_url}")
    store_flags = set_flags(o for o in overrides if names_the_store(o))
    console.print(
        f"Open the UI with: {escape(f'autoprune ui {pipeline}{store_flags}')}   (the addresses above work while it "
        "runs)",
        soft_wrap=True,
    )
    if result.model_url and (result.aliases or champion):
        alias = "champion" if champion or "champion" in result.aliases else sorted(result.aliases)[0]
        console.print(
            f"Export one with:  {escape(f'autoprune export {alias} -p {pipeline}{store_flags}')}   "
            "(or another alias, a version or a run id from the table)",
            soft_wrap=True,
        )


def _print_notes(console: Console, result: PipelineResult, pipeline: Path) -> None:
    """Why the front is empty, how many trials broke a size limit, why the search stopped early."""
    if result.already_complete:
        budget = "oneshot.candidates" if result.config.search.strategy == "oneshot" else "search.trials"
        console.print(
            f"[yellow]Nothing to do:[/] study {escape(result.study)} had spent its budget and was concluded, so "
            f"nothing was trained or rewritten. To search on, raise {budget} (--set {budget}=N) and resume; to "
            "start again, run without --resume.",
            soft_wrap=True,
        )
    if not result.members:
        console.print(
            "[yellow]No trial is on the front:[/] every trial failed or broke a constraint (see the runs' "
            "autoprune.error tags and constraint.* metrics)."
        )
    over = sum(r.finetune_skipped for r in result.records if r.state == TrialState.COMPLETE)
    if over:
        console.print(
            f"{over} of {result.completed} trials broke a size limit and were not fine-tuned "
            "(search.skip_over_limit; their runs are named over-limit)"
        )
    if result.stop_reason:
        console.print(f"[yellow]The search stopped early:[/] {escape(result.stop_reason)}")
        if result.failed_out:
            console.print(
                f"`autoprune validate {escape(str(pipeline))}` prunes the model to the smallest the space allows "
                "and names the groups whose pruning breaks it",
                soft_wrap=True,
            )


def front_title(result: PipelineResult) -> str:
    """ "Pareto front of NAME: 7 of 24 trials", saying why fewer rows follow when not every front trial
    was finalized (the UI's ``tags.pareto`` filter shows them all)."""
    on_front = len(result.front) or len(result.members)
    failed = f" ({result.failed} failed)" if result.failed else ""
    title = f"Pareto front of {result.config.name}: {on_front} of {result.completed} trials{failed}"
    return title + front_notes(on_front, len(result.members), result.copies)


def front_notes(on_front: int, finalized: int, copies: Mapping[int, int]) -> str:
    """``; 12 finalized, 1 repeating one of them (trial 19 = 7: ...)`` when fewer members than front
    trials are shown, else nothing."""
    if on_front <= finalized:
        return ""
    notes = [f"{finalized} finalized"]
    if copies:
        pairs = ", ".join(f"trial {copy} = {original}" for copy, original in sorted(copies.items()))
        notes.append(f"{len(copies)} repeating one of them ({pairs}: same channels and score)")
    left = on_front - finalized - len(copies)
    if left > 0:
        notes.append(f"{left} left out by finalize.max_members or a failed finalize (see the log)")
    return "; " + ", ".join(notes)


def set_flags(overrides: Iterable[str]) -> str:
    """The overrides as ``--set`` flags to paste into a shell (quoted where they hold spaces)."""
    return "".join(f" --set {shlex.quote(o)}" for o in overrides)


def names_the_store(override: str) -> bool:
    """Whether a --set changes where `autoprune ui` looks: the store, the experiment or the model name."""
    key = override.partition("=")[0].strip()
    return key in {"name", "tracking"} or key.startswith("tracking.")
