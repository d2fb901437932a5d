"""The candidate journal: Optuna's journal format for one writer, read back as Optuna reads it."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from autoprune.search._journal import CandidateJournal


def _study(storage: JournalStorage) -> optuna.Study:
    return optuna.create_study(
        storage=storage, study_name="s", directions=["maximize", "minimize"], load_if_exists=True
    )


def test_what_it_writes_optunas_own_reader_reads_and_a_reopened_journal_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "c" / "s.journal"
    journal = CandidateJournal(path).open()
    study = _study(JournalStorage(journal))
    for value in range(3):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr("outcome", {"kept": {"a": 1}, "pair": (1, 2)})
        study.tell(trial, [value / 3, value])
    journal.close()
    journal.close()  # idempotent
    theirs = _study(JournalStorage(JournalFileBackend(str(path)))).get_trials()
    again = CandidateJournal(path).open()
    ours = _study(JournalStorage(again)).get_trials()
    assert [t.values for t in theirs] == [t.values for t in ours] == [[0.0, 0.0], [1 / 3, 1.0], [2 / 3, 2.0]]
    assert ours[0].user_attrs == theirs[0].user_attrs == {"outcome": {"kept": {"a": 1}, "pair": [1, 2]}}
    _study(JournalStorage(again)).enqueue_trial({"x": 0.5})  # appends after what was there
    again.close()
    assert len(_study(JournalStorage(JournalFileBackend(str(path)))).get_trials()) == 4


def test_a_line_torn_by_a_kill_is_cut_off_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "s.journal"
    journal = CandidateJournal(path).open()
    _study(JournalStorage(journal))
    journal.close()
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"op_code": 5, "worker_id": "x", "tri')  # killed mid-write
    journal = CandidateJournal(path).open()
    study = _study(JournalStorage(journal))
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), [0.5, 1.0])
    journal.close()
    assert path.read_bytes().startswith(complete) and b"tri\n" not in path.read_bytes()
    assert [t.values for t in _study(JournalStorage(JournalFileBackend(str(path)))).get_trials()] == [[0.5, 1.0]]
