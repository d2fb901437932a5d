"""Factories that go wrong, for the bad-input corpus."""

import sys


def not_a_model(input_shape, num_classes):
    return "a string, not an nn.Module"


def not_a_dataset():
    return 42


def exits(input_shape, num_classes):
    sys.exit(0)


def fails_in_two_lines(input_shape, num_classes):
    raise ValueError("the first line of the factory's error\nand a second line")


def diverges_in_training(input_shape, num_classes):
    """A model whose logits overflow while it trains (and only then): the dense training diverges."""
    import torch
    from torch import nn

    class Overflowing(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[0], 8, 3, padding=1)
            self.head = nn.Linear(8 * input_shape[1] * input_shape[2], num_classes)

        def forward(self, x):
            logits = self.head(torch.relu(self.conv(x)).flatten(1))
            return logits * float("inf") if self.training else logits

    return Overflowing()


def never_returns(input_shape, num_classes):
    import time

    while True:
        time.sleep(0.05)


def nothing_to_prune(input_shape, num_classes):
    """Only a classifier: no channel can be removed without changing the outputs."""
    from torch import nn

    size = 1
    for d in input_shape:
        size *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(size, num_classes))
