"""`eval_mode`: run a block with a model in eval mode and give it back in the mode it was in, also
when the block raises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The block sees ``model`` in eval mode (BatchNorm uses its running statistics, dropout is off)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
