"""The memory layout a model runs in: channels-last where its convolutions take it."""

from __future__ import annotations


def test_convolutional_models_are_evaluated_channels_last_and_others_in_the_default_layout(digits) -> None:
    from autoprune import config, models
    from autoprune.workflow._layout import fit_layout

    pipeline = config.PipelineConfig(name="x", model=config.CNNModel(arch="cnn", widths=[8, 16]))
    for model, channels_last in (
        (config.CNNModel(arch="cnn", widths=[8, 16]), True),
        (config.MLPModel(arch="mlp"), False),
    ):
        built = models.build(model, digits.input_shape, digits.num_classes)
        for splits in (digits.with_layout(False), digits.with_layout(True)):
            laid_out, refused = fit_layout(built, pipeline, splits)
            assert laid_out.channels_last is channels_last and refused is None
