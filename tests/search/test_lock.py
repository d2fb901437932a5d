"""The study lock beside a sqlite storage: one process at a time, kept out of the store's folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from autoprune.search._lock import storage_lock

CHILD = textwrap.dedent(
    """
    import sys
    from autoprune.search._lock import storage_lock
    with storage_lock(sys.argv[1], None, "study:open", on_wait=lambda: print("waiting", flush=True)):
        print("got it", flush=True)
    """
)


def test_second_process_waits_for_the_holder_and_store_folder_stays_clean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    with storage_lock(url, None, "study:open"):
        child = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"  # blocks until the child has tried and waits
    assert child.stdout.readline().strip() == "got it"
    assert child.wait(timeout=30) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".optuna.db.locks"]
    assert len(list((tmp_path / ".optuna.db.locks").glob("*.lock"))) == 1


def test_different_names_do_not_block_each_other(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    waited: list[str] = []
    with storage_lock(url, None, "a:open"), storage_lock(url, None, "b:open", on_wait=lambda: waited.append("b")):
        pass
    assert waited == []
