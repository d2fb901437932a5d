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
