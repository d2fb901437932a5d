"""Factories that go wrong, for the bad-input corpus."""


def not_a_model(input_shape, num_classes):
    return "a string, not an nn.Module"


def not_a_dataset():
    return 42
