"""The bad-input corpus: one exact line naming file, line and key; exit status 2; nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoprune.cli import main

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.glob("*.yaml"))


def _expected(name: str) -> str:
    text = (CORPUS / name).read_bytes().decode("utf-8", "replace")  # one file of the corpus is not UTF-8
    lines = [line for line in text.splitlines() if line.startswith("# expect: ")]
    assert len(lines) == 1, f"{name} needs one '# expect:' line"
    return lines[0].removeprefix("# expect: ")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("bad") / "bad_inputs"
    shutil.copytree(CORPUS, copy)
    return copy


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 120
    assert len(list((CORPUS / "spaces").glob("*.yaml"))) >= 4


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(name: str, workdir: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    before = {p.relative_to(workdir) for p in workdir.rglob("*") if "__pycache__" not in p.parts}
    with pytest.raises(SystemExit) as info:
        main(["run", name])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.strip() == f"error: {_expected(name)}"
    assert "Traceback" not in err and err.count("\n") == 1
    after = {p.relative_to(workdir) for p in workdir.rglob("*") if "__pycache__" not in p.parts}
    assert after == before  # no store, no study, no cache, no half-written file
