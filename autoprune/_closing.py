"""What a finished search prints: its front as a table, why it stopped if it did, and the commands
that go on from it (the UI, an export), with the ``--set`` overrides that name its store."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["front_title", "names_the_store", "print_result", "set_flags"]


def print_result(
    console: Console, result: Any, pipeline: Path, overrides: Sequence[str], *, champion: bool = False
) -> None:
    """The front table and where to go next; ``champion``: the registry has a champion even if this
    search did not set it (a retrain that kept the last one)."""
    from ._display import front_table  # torch comes with it: not on `autoprune --help`

    completed = sum(r.state == "complete" for r in result.records)
    failed = sum(r.state == "failed" for r in result.records)
    if not result.concluded:
        console.print(
            f"This worker is done ({completed} trials completed in the study); other workers still run "
            "trials, and the last one to finish concludes the search."
        )
        return
    console.print(front_table(front_title(result, completed, failed), result.front, result.dense.__dict__))
    if not result.front:
        console.print(
            "[yellow]No trial is on the front:[/] every trial failed or broke a constraint (see the runs' "
            "autoprune.error tags and constraint.* metrics)."
        )
    over = sum(r.state == "complete" and r.finetune_skipped for r in result.records)
    if over:
        console.print(
            f"{over} of {completed} trials broke a size limit and were not fine-tuned "
            "(search.skip_over_limit; their runs are named over-limit)"
        )
    if result.stop_reason:
        console.print(f"[yellow]The search stopped early:[/] {escape(result.stop_reason)}")
        if result.failed_out:
            console.print(
                f"`autoprune validate {escape(str(pipeline))}` prunes the model to the smallest the space allows and "
                "names the groups whose pruning breaks it",
                soft_wrap=True,
            )
    console.print(f"hypervolume {result.hypervolume:.4f} · study {result.study} in {result.storage}")
    console.print(f"Pareto front:     {result.front_url}", soft_wrap=True)
    if result.model_url:
        console.print(f"Registered model: {result.model_url}")
    store_flags = set_flags(o for o in overrides if names_the_store(o))
    console.print(
        f"Open the UI with: {escape(f'autoprune ui {pipeline}{store_flags}')}   (the addresses above work while it runs)",
        soft_wrap=True,
    )
    if result.model_url and (result.aliases or champion):
        alias = "champion" if champion or "champion" in result.aliases else sorted(result.aliases)[0]
        console.print(
            f"Export one with:  {escape(f'autoprune export {alias} -p {pipeline}{store_flags}')}   "
            "(or another alias, a version or a run id from the table)",
            soft_wrap=True,
        )


def front_title(result: Any, completed: int, failed: int) -> str:
    """ "Pareto front of NAME: 7 of 24 trials", saying why fewer rows follow when not every front trial
    was finalized (the UI's ``tags.pareto`` filter shows them all)."""
    on_front = len(result.front_trials) or len(result.front)
    title = f"Pareto front of {result.config.name}: {on_front} of {completed} trials" + (
        f" ({failed} failed)" if failed else ""
    )
    finalized = {int(row["trial"]) for row in result.front}
    if on_front <= len(finalized):
        return title
    notes = [f"{len(finalized)} finalized"]
    if result.copies:
        pairs = ", ".join(f"trial {copy} = {original}" for copy, original in sorted(result.copies.items()))
        notes.append(f"{len(result.copies)} repeating one of them ({pairs}: same channels and score)")
    left = on_front - len(finalized) - len(result.copies)
    if left > 0:
        notes.append(f"{left} left out by finalize.max_members or a failed finalize (see the log)")
    return f"{title}; " + ", ".join(notes)


def set_flags(overrides: Iterable[str]) -> str:
    """The overrides as ``--set`` flags to paste into a shell (quoted where they hold spaces)."""
    return "".join(f" --set {shlex.quote(o)}" for o in overrides)


def names_the_store(override: str) -> bool:
    """Whether a --set changes where `autoprune ui` looks: the store, the experiment or the model name."""
    key = override.partition("=")[0].strip()
    return key == "name" or key == "tracking" or key.startswith("tracking.")
