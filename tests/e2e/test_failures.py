"""Failing trials are recorded as failed and the search goes on; too many failures end it cleanly."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from autoprune import config, engine, models, search
from autoprune.errors import PruningError

from ..helpers import run_cli

FRAGILE = '''
import torch.nn as nn


class Fragile(nn.Module):
    """Fails to train below 6 channels in its first layer, and diverges (NaN) at 6 or 7."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], 12, 3, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.bn(self.conv(x)).relu()
        if self.training and self.conv.out_channels < 6:
            raise RuntimeError("fragile layer got too thin")
        logits = self.classifier(self.pool(self.conv2(x).relu()).flatten(1))
        if self.training and self.conv.out_channels < 8:
            return logits * float("nan")
        return logits


def build(input_shape, num_classes):
    return Fragile(input_shape, num_classes)
'''

PIPELINE = """\
name: {name}
data: {{source: digits, batch_size: 64}}
model: {{arch: factory, factory: "fragile:build", train: {{epochs: 3, lr: 0.05}}}}
search:
  space:
    pruning: {{ratio: {{low: {low}, high: 0.9, step: 0.1}}, exclude: [conv2]}}
    finetune: {{lr: [0.02, 0.05, 0.1], epochs: 1}}
  sampler: random
  trials: {trials}
  max_failed_trials: {max_failed}
objectives: {{accuracy: max, macs: min}}
latency: {{repeats: 5, warmup: 1}}
tracking: {{uri: "sqlite:///{root}/store/mlflow.db"}}
finalize: {{epochs: 1, onnx: false}}
"""


def _write(root: Path, name: str, **values) -> Path:
    (root / "fragile.py").write_text(textwrap.dedent(FRAGILE))
    path = root / f"{name}.yaml"
    path.write_text(PIPELINE.format(name=name, root=root, **values))
    return path


def _children(root: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{root}/store/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([found.experiment_id]) if r.data.tags.get("mlflow.parentRunId")]


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    pipeline = _write(tmp_path, "flaky", low=0.3, trials=5, max_failed=40)  # 15 of the 21 candidates fail
    assert run_cli("run", str(pipeline)) == 0
    study = optuna.load_study(study_name="flaky", storage=f"sqlite:///{tmp_path}/store/optuna.db")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 5
    failed = [r for r in _children(tmp_path, "flaky") if r.info.status == "FAILED"]
    assert len(failed) == states.count(optuna.trial.TrialState.FAIL) > 0
    errors = [r.data.tags["autoprune.error"] for r in failed]
    assert all(r.data.tags["autoprune.state"] == "failed" for r in failed)
    assert any("RuntimeError: fragile layer got too thin" in e for e in errors)  # an exception in fine-tuning
    assert any("TrialDiverged: the training loss became" in e for e in errors)  # a NaN/inf loss


def test_max_failed_trials_ends_the_search_cleanly(tmp_path: Path, capsys) -> None:
    pipeline = _write(tmp_path, "doomed", low=0.6, trials=5, max_failed=3)  # every candidate is too thin
    optuna_lines: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = optuna_lines.append  # type: ignore[method-assign]
    logging.getLogger("optuna.study._optimize").addHandler(handler)
    try:
        assert run_cli("run", str(pipeline)) == 1
    finally:
        logging.getLogger("optuna.study._optimize").removeHandler(handler)
    out = capsys.readouterr().out
    assert "The search stopped early: 3 trials failed (search.max_failed_trials = 3)" in out
    assert f"`autoprune validate {pipeline}` prunes the model to the smallest the space allows" in out
    assert not [
        r for r in optuna_lines if "failed with" in r.getMessage()
    ]  # Optuna's own traceback per failed trial is dropped
    assert "No trial is on the front" in out
    study = optuna.load_study(study_name="doomed", storage=f"sqlite:///{tmp_path}/store/optuna.db")
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.FAIL) == 3
    assert [r.info.status for r in _children(tmp_path, "doomed")] == ["FAILED"] * 3


def test_a_plan_that_would_empty_a_layer_is_a_failed_trial(digits) -> None:
    model = models.build(config.CNNModel(arch="cnn", widths=[8, 16]), digits.input_shape, 10).eval()
    groups = engine.discover(model, digits.input_shape)
    space = search.SearchSpace(config.SpaceConfig(), groups)
    space.candidate = lambda params: engine.Candidate(engine.PrunePlan(keep={"features.0": 0}))  # type: ignore[method-assign]
    reference = search.DenseReference(0.9, 0.9, 1, 1, 1, 1.0)
    evaluator = search.CandidateEvaluator(
        model, digits, space, measure=engine.MeasureConfig(), reference=reference, constraints={}
    )
    record, result = evaluator(7, {})
    assert record.state == "failed" and result is None
    assert record.error.startswith("PruningError: features.0: The 'keep' count of group 'features.0' must be >= 1")
    with pytest.raises(PruningError):
        engine.PrunePlan(keep={"features.0": 0})
