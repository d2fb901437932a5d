"""Models Torch-Pruning cannot group: one line naming the cause, never a hang."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from autoprune import engine
from autoprune.errors import ModelError

from ..shuffle_models import shufflenet_chunk, shufflenet_slices

SHAPE = (1, 28, 28)


def test_a_channel_shuffle_torch_pruning_fails_on_is_one_model_error() -> None:
    with pytest.raises(ModelError) as info:
        engine.discover(shufflenet_chunk(SHAPE, 10), SHAPE)
    message = str(info.value)
    assert message.startswith(
        "model: Torch-Pruning cannot follow the model's graph (ZeroDivisionError in update_reshape_index_mapping"
    )
    assert "a channel shuffle" in message and "\n" not in message


def test_grouping_that_loops_is_stopped_at_the_time_limit(monkeypatch) -> None:
    """The CIFAR ShuffleNetV2 makes Torch-Pruning's grouping loop (memory growing): it is bounded."""
    monkeypatch.setattr("autoprune.engine._groups.GROUPING_LIMIT_S", 3)
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"did not finish grouping the model's channels in 3 s \(stopped in "):
        engine.discover(shufflenet_slices(SHAPE, 10), SHAPE)
    assert time.monotonic() - start < 30


class _SlowToTrace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(5)
        return self.head(self.conv(x).mean((2, 3)))


def test_the_time_limit_covers_tracing_and_leaves_no_timer_behind(monkeypatch) -> None:
    import signal

    monkeypatch.setattr("autoprune.engine._groups.GROUPING_LIMIT_S", 0.5)
    with pytest.raises(
        ModelError,
        match=r"forward pass did not return within 0.5 s of tracing \(stopped in _SlowToTrace.forward\(\)\)$",
    ):
        engine.discover(_SlowToTrace(), SHAPE)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
