"""The progress display: a live bar on a terminal, one line per event in a log file."""

from __future__ import annotations

import re

from ..helpers import run_cli


def _progress_log(**console_options: object) -> str:
    from io import StringIO

    from rich.console import Console

    from autoprune.cli._progress import SearchProgress
    from autoprune.search import TrialRecord

    out = StringIO()
    metrics = {"val_accuracy": 0.9512, "params": 2_500.0, "macs": 40_000.0, "latency_ratio": 0.5}
    with SearchProgress(Console(file=out, width=200, **console_options)) as progress:
        progress.search_started(total=3, earlier=[])
        progress.trial_finished(TrialRecord(number=4, state="complete", params={}, metrics=metrics, seconds=12.3))
        progress.trial_finished(TrialRecord(number=5, state="failed", params={}, error="ValueError: boom"))
    return out.getvalue()


def test_a_search_logged_to_a_file_shows_each_finished_trial() -> None:
    log = _progress_log()  # a file is not a terminal: the live bar cannot draw there
    assert "[1/3] trial 4 done in 12.3 s: val acc 0.9512 · 2,500 params · 40,000 MACs · latency 0.50x dense" in log
    assert "trial 5 failed: ValueError: boom" in log
    assert all(line == line.rstrip() for line in log.splitlines()[:2])  # one unpadded line each, for grep and tail
    assert "trial 4 done" not in _progress_log(force_terminal=True)  # on a terminal the bar's status says it


def test_a_long_training_logged_to_a_file_shows_each_epoch_and_the_time_left(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: epochs\ndata: {source: digits}\nmodel: {arch: cnn, widths: [8, 16], train: {epochs: 3}}\n"
        "search: {space: {pruning: {ratio: {low: 0.3, high: 0.5}}, finetune: {epochs: 1}}, trials: 1}\n"
        "objectives: {accuracy: max}\nlatency: {repeats: 5, warmup: 1}\nfinalize: {epochs: 2}\n"
        "tracking: {uri: 'sqlite:///store/mlflow.db', register: false}\n"
    )
    assert run_cli("run", "p.yaml") == 0
    out = capsys.readouterr().out
    assert re.search(
        r"dense model: epoch 1/3 · train loss \d\.\d{4} · val acc \d\.\d{4} · [\d.]+ s/epoch · about \d+ s left", out
    )
    assert re.search(
        r"dense model: epoch 3/3 · train loss \d\.\d{4} · val acc \d\.\d{4} · [\d.]+ s/epoch\n", out
    )  # no time left
    assert re.search(r"trial 0 final fine-tune: epoch 2/2 · ", out)
    assert out.index("dense model: epoch 3/3") < out.index("[1/1] trial 0 done") < out.index("trial 0 final fine-tune")
    assert re.search(
        r"dense model trained in [\d.]+ s: val acc \d\.\d{4} · [\d,]+ params · [\d,]+ MACs · latency [\d.]+ ms", out
    )
    assert run_cli("run", "p.yaml", "--set", "name=epochs-again") == 0
    again = capsys.readouterr().out
    assert "dense model: epoch" not in again  # the cached dense model is not trained again, and says so
    assert "dense model loaded from the cache in " in again


def test_a_log_file_shows_fast_epochs_sparingly_and_slow_ones_all() -> None:
    from io import StringIO

    from rich.console import Console

    from autoprune.cli._progress import EPOCH_LOG_EVERY_S, SearchProgress
    from autoprune.engine import EpochReport

    out, now = StringIO(), [0.0]
    progress = SearchProgress(Console(file=out, width=200, force_terminal=False))
    progress.clock = lambda: now[0]
    for epoch in range(1, 11):  # ten fast epochs: the first (with the time left) and the last
        now[0] += 0.05
        progress.training_epoch("trial 3 final fine-tune", EpochReport(epoch, 0.5, 0.9, 0.3, 0.05, epochs=10))
    for epoch in range(1, 5):  # four slow ones: each, as every one takes longer than the interval
        now[0] += EPOCH_LOG_EVERY_S
        progress.training_epoch("dense model", EpochReport(epoch, 0.5, 0.9, 0.3, EPOCH_LOG_EVERY_S, epochs=4))
    lines = out.getvalue().splitlines()
    assert [line.split("] ")[1].split(" · ")[0] for line in lines] == [
        "trial 3 final fine-tune: epoch 1/10",
        "trial 3 final fine-tune: epoch 10/10",
        "dense model: epoch 1/4",
        "dense model: epoch 2/4",
        "dense model: epoch 3/4",
        "dense model: epoch 4/4",
    ]
    assert "0.05 s/epoch" in lines[0]

    for epoch in range(1, 7):  # a fine-tune that stops early, at epoch 6 of 10: the next phase shows where
        now[0] += 0.05
        progress.training_epoch("trial 4 final fine-tune", EpochReport(epoch, 0.5, 0.9, 0.3, 0.05, epochs=10))
    progress.phase("registering front models")
    tail = [line.split("] ")[1].split(" · ")[0] for line in out.getvalue().splitlines()[len(lines) :]]
    assert tail == [
        "trial 4 final fine-tune: epoch 1/10",
        "trial 4 final fine-tune: epoch 6/10",
        "registering front models",
    ]


def test_the_time_left_goes_by_the_median_epoch_so_one_slow_epoch_does_not_swing_it() -> None:
    from io import StringIO

    from rich.console import Console

    from autoprune.cli._progress import SearchProgress
    from autoprune.engine import EpochReport

    out, now = StringIO(), [0.0]
    progress = SearchProgress(Console(file=out, width=200, force_terminal=False))
    progress.clock = lambda: now[0]
    for epoch, seconds in enumerate([40.0, 200.0, 44.0], start=1):  # the second epoch shared the machine
        now[0] += seconds
        progress.training_epoch("dense model", EpochReport(epoch, 0.5, 0.9, 0.3, seconds, epochs=13))
    lines = out.getvalue().splitlines()
    assert "200.0 s/epoch · about 22 min left" in lines[1]  # 11 epochs x the median 120 s, not 37 min at 200 s
    assert "44.0 s/epoch · about 7 min left" in lines[2]  # 10 x the median 44 s, not 16 min at the mean 95 s


def test_a_long_training_on_a_terminal_is_a_bar_that_goes_when_it_ends() -> None:
    from io import StringIO

    from rich.console import Console

    from autoprune.cli._progress import SearchProgress
    from autoprune.engine import EpochReport

    out = StringIO()
    with SearchProgress(Console(file=out, width=200, force_terminal=True)) as progress:
        progress.training_epoch("dense model", EpochReport(1, 0.52, 0.8812, 0.33, 48.0, epochs=2))
        assert [task.description for task in progress.progress.tasks] == ["dense model"]
        assert "about 48 s left" in progress.progress.tasks[0].fields["status"]
        progress.training_epoch("dense model", EpochReport(2, 0.31, 0.9012, 0.30, 47.0, epochs=2))
        assert not progress.progress.tasks  # the search's bar follows alone
        progress.training_epoch("trial 3 final fine-tune", EpochReport(1, 0.5, 0.9, 0.3, 1.0, epochs=5))
        progress.phase("registering front models")  # a training that stopped early ends with its phase
        assert not progress.progress.tasks
    assert "dense model: epoch" not in out.getvalue()
