"""What a finished search prints: the front's title and table, and the commands that go on from it."""

from __future__ import annotations

from pathlib import Path

from autoprune.cli import console
from autoprune.cli._closing import front_title, print_result
from autoprune.config import PipelineConfig
from autoprune.search import DenseReference, FinalizedMember, TrialRecord, TrialState
from autoprune.workflow import PipelineResult

DENSE = DenseReference(val_accuracy=0.9, test_accuracy=0.9, params=1000, macs=1000, size_bytes=4000, latency_ms=1.0)


def _member(trial: int, **figures: object) -> FinalizedMember:
    values: dict[str, object] = {
        "test_accuracy": 0.88,
        "val_accuracy": 0.89,
        "params": 250,
        "macs": 300,
        "size_bytes": 1000,
        "latency_ms": 0.5,
        "latency_ratio": 0.5,
        "epochs": 2,
        "lr": 0.01,
        "distill_alpha": 0.0,
        "ema_decay": 0.0,
        "run_id": f"{trial:032x}",
    }
    return FinalizedMember(trial=trial, **{**values, **figures})  # type: ignore[arg-type]


def _result(
    front: list[int], members: list[FinalizedMember], copies: dict[int, int], failed: int = 0
) -> PipelineResult:
    records = [TrialRecord(n, TrialState.COMPLETE, {}) for n in range(24 - failed)]
    records += [TrialRecord(100 + n, TrialState.FAILED, {}) for n in range(failed)]
    return PipelineResult(
        config=PipelineConfig(name="x"),
        study="x",
        storage="sqlite:///s/optuna.db",
        experiment_id="1",
        experiment_url="e",
        front_url="u",
        model_url=None,
        parent_run_id="p",
        dense=DENSE,
        splits=None,  # type: ignore[arg-type]
        records=records,
        members=members,
        front=front,
        copies=copies,
    )


def test_the_ui_and_export_hints_repeat_the_overrides_that_name_the_store(capsys) -> None:
    result = _result([], [], {})
    store = "tracking.uri=sqlite:///elsewhere/m.db"
    print_result(console, result, Path("p.yaml"), [store, "search.trials=3", "objectives={accuracy: max}"])
    out = capsys.readouterr().out
    assert "Open the UI with: autoprune ui p.yaml --set tracking.uri=sqlite:///elsewhere/m.db   (" in out
    assert "Export one with" not in out  # nothing registered
    result.model_url, result.aliases = "m", {"smallest": 2, "champion": 3}
    print_result(console, result, Path("p.yaml"), [store, "search.trials=3"])
    expected = "Export one with:  autoprune export champion -p p.yaml --set tracking.uri=sqlite:///elsewhere/m.db   ("
    assert expected in capsys.readouterr().out
    result.aliases = {"smallest": 2}  # a retrain that kept the last champion does not set it again
    print_result(console, result, Path("p.yaml"), [])
    assert "Export one with:  autoprune export smallest -p p.yaml   (" in capsys.readouterr().out
    print_result(console, result, Path("p.yaml"), [], champion=True)
    assert "Export one with:  autoprune export champion -p p.yaml   (" in capsys.readouterr().out


def test_front_title_says_why_fewer_members_than_front_trials_follow() -> None:
    assert front_title(_result([1, 4], [_member(1), _member(4)], {})) == "Pareto front of x: 2 of 24 trials"
    four_failed = _result([1, 4], [_member(1), _member(4)], {}, failed=4)
    assert front_title(four_failed) == "Pareto front of x: 2 of 20 trials (4 failed)"
    assert front_title(_result([1, 4, 7, 9], [_member(1), _member(4)], {9: 4})) == (
        "Pareto front of x: 4 of 24 trials; 2 finalized, 1 repeating one of them (trial 9 = 4: same channels and "
        "score), "
        "1 left out by finalize.max_members or a failed finalize (see the log)"
    )


def test_the_front_table_shows_each_members_figures_against_the_dense_models(capsys) -> None:
    member = _member(7, version=3, aliases=("champion", "smallest"), latency_ratio=0.25)
    print_result(console, _result([7], [member], {}), Path("p.yaml"), [])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("7 "))
    assert row.split()[:9] == ["7", "3", "champion,smallest", "0.8800", "250", "(25%)", "300", "(30%)", "0.250"]
    assert "4.00x" in row and member.run_id[:12] in row


def test_a_compressed_front_keeps_every_column_name_when_written_to_a_file(capsys, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    members = [
        _member(n, version=n, aliases=("champion", "most-accurate", "smallest"), compression="16 shared values + int8")
        for n in (3, 5)
    ]
    print_result(console, _result([3, 5], members, {}), Path("p.yaml"), [])
    header = next(line for line in capsys.readouterr().out.splitlines() if "trial" in line and "aliases" in line)
    assert "…" not in header and "stored as" in header and "version" in header
