"""Building models from configs, specs, checkpoints and the user's factory."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch

from autoprune import config, models
from autoprune.errors import ModelError

from ..conftest import ZOO


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 28, 28), (2, 13, 17)])
def test_zoo_adapts_to_input_shape_and_classes(name: str, shape: tuple[int, ...]) -> None:
    model = models.build(ZOO[name], shape, 7).eval()
    assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("depth", [20, 32, 56])
def test_resnet_depths(depth: int) -> None:
    model = models.build(config.ResNetModel(arch="resnet", depth=depth), (3, 16, 16), 10)
    convs = sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert convs == depth - 1  # stem + 2 per block; the classifier makes depth


def test_spec_round_trip_builds_the_same_architecture() -> None:
    cfg = config.CNNModel(arch="cnn", widths=[8, 16, 32], hidden=64)
    spec = models.model_spec(cfg)
    assert spec["widths"] == [8, 16, 32] and "train" not in spec
    rebuilt = models.build_from_spec(spec, (1, 8, 8), 10)
    original = models.build(cfg, (1, 8, 8), 10)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in original.parameters()]


def test_conv_arch_on_flat_features_names_the_key() -> None:
    with pytest.raises(ModelError, match=re.escape("model.arch: arch 'cnn' needs image inputs")):
        models.build(config.CNNModel(arch="cnn"), (20,), 3)
    assert models.build(config.MLPModel(arch="mlp"), (20,), 3)(torch.randn(2, 20)).shape == (2, 3)


def test_factory_model(tmp_path) -> None:
    (tmp_path / "user_models.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        def tiny(input_shape, num_classes, hidden=8):
            c, h, w = input_shape
            head = (nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, num_classes))
            return nn.Sequential(nn.Conv2d(c, hidden, 3), nn.ReLU(), *head)
        def not_a_module(**kwargs):
            return "model"
    """)
    )
    model = models.build(
        config.FactoryModel(arch="factory", factory="user_models:tiny", kwargs={"hidden": 5}),
        (1, 8, 8),
        4,
        search_dirs=[tmp_path],
    )
    assert model[0].out_channels == 5
    with pytest.raises(
        ModelError,
        match=re.escape("model.factory: user_models:not_a_module must return a torch.nn.Module, but returned str"),
    ):
        models.build(
            config.FactoryModel(arch="factory", factory="user_models:not_a_module"),
            (1, 8, 8),
            4,
            search_dirs=[tmp_path],
        )


def test_checkpoint_loading_is_weights_only(tmp_path) -> None:
    cfg = config.CNNModel(arch="cnn")
    model = models.build(cfg, (1, 8, 8), 10)
    torch.save(model.state_dict(), tmp_path / "dense.pt")
    loaded = models.load_checkpoint(models.build(cfg, (1, 8, 8), 10), tmp_path / "dense.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    torch.save({"evil": object()}, tmp_path / "pickle.pt")
    with pytest.raises(ModelError, match=r"cannot load .* as a state dict: it holds pickled Python objects \(object\)"):
        models.load_checkpoint(model, tmp_path / "pickle.pt")
    with pytest.raises(ModelError, match="does not fit the configured model"):
        models.load_checkpoint(
            models.build(config.CNNModel(arch="cnn", widths=[8]), (1, 8, 8), 10), tmp_path / "dense.pt"
        )


def test_a_factory_that_never_returns_is_stopped_naming_where(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("autoprune._imports.FACTORY_LIMIT_S", 0.5)
    (tmp_path / "slow_models.py").write_text(
        textwrap.dedent(
            """
            import time

            def forever(input_shape, num_classes):
                while True:
                    time.sleep(0.01)
            """
        )
    )
    with pytest.raises(
        ModelError,
        match=r"model.factory: slow_models:forever\(...\) did not return within 0.5 s \(stopped in forever\(\)",
    ):
        models.build(
            config.FactoryModel(arch="factory", factory="slow_models:forever"), (1, 8, 8), 4, search_dirs=[tmp_path]
        )
    import signal

    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no timer left behind


def test_a_model_too_big_for_memory_names_its_size_key() -> None:
    with pytest.raises(
        ModelError,
        match=r"model.hidden: the model does not fit in this machine's memory \(it tried to allocate 4.0 TB\)",
    ):
        models.build(config.MLPModel(arch="mlp", hidden=[8, 1_000_000, 1_000_000]), (1, 8, 8), 4)


def test_a_deadline_inside_another_leaves_the_outer_one_running() -> None:
    import signal
    import time

    from autoprune._deadline import Expired, deadline

    with pytest.raises(Expired) as outer, deadline(0.6):
        with deadline(30):  # the outer one ends first: it governs
            pass
        with deadline(0.1):
            pass  # finishes in time; the outer timer goes on
        time.sleep(2)
    assert outer.value.seconds == 0.6
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_stop_lost_where_python_ignores_exceptions_comes_again() -> None:
    """Python drops an exception raised in a weakref callback or ``__del__``: the stop repeats."""
    import contextlib
    import signal
    import time

    from autoprune._deadline import Expired, deadline

    with pytest.raises(Expired), deadline(0.1):
        with contextlib.suppress(Expired):  # lost, as in a weakref callback
            time.sleep(5)
        for _ in range(100):  # 5 s: without a second stop the block runs to the end
            time.sleep(0.05)
        pytest.fail("the block ran to its end")
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
