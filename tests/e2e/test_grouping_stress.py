"""Models that stress Torch-Pruning's grouping, through `autoprune validate` as a user runs it: each
ends within the time limit with exit status 0 (what can be pruned is) or one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoprune.engine._groups import GROUPING_LIMIT_S

ROOT = Path(__file__).resolve().parents[2]
AUTOPRUNE = os.path.join(os.path.dirname(sys.executable), "autoprune")

CASES = {
    # ShuffleNetV2 (CIFAR version): Torch-Pruning's grouping loops; stopped at the limit, naming where
    "shufflenet_slices": (2, f"did not finish grouping the model's channels in {GROUPING_LIMIT_S:g} s (stopped in"),
    # ShuffleNetV2 with chunk and view: Torch-Pruning fails on the shuffle's reshape
    "shufflenet_chunk": (2, "Torch-Pruning cannot follow the model's graph (ZeroDivisionError"),
    # DPN's dual path: the sliced groups are held whole, which leaves nothing to prune here
    "dual_path": (2, "are split and joined again (as in dual-path networks)"),
    # one convolution in two branches: one group, pruned
    "shared_branch": (0, "2 prunable dependency groups"),
}


@pytest.mark.slow
@pytest.mark.parametrize("factory", sorted(CASES))
def test_a_model_that_stresses_the_grouping_ends_in_time(factory: str, tmp_path: Path) -> None:
    status, expected = CASES[factory]
    pipeline = tmp_path / "stress.yaml"
    pipeline.write_text(
        textwrap.dedent(f"""\
        name: stress
        model:
          arch: factory
          factory: tests.shuffle_models:{factory}
        tracking:
          uri: sqlite:///{tmp_path / "store" / "mlflow.db"}
        """)
    )
    done = subprocess.run(
        [AUTOPRUNE, "validate", str(pipeline)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=GROUPING_LIMIT_S + 120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == status, done.stderr
    if status == 2:
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert expected in (done.stderr if status else done.stdout)
    assert not (tmp_path / "store").exists()  # validate writes nothing
