"""Weight sharing: k shared values per layer through a fine-tune, a packed file whose size is the
model's shared size and which gives the same model back."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from autoprune import config, data, engine, models
from autoprune.errors import ModelError


def _trained(digits: data.Splits) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), digits.input_shape, digits.num_classes)
    engine.finetune(model, digits, engine.FinetuneConfig(epochs=6, lr=0.05))
    return model.eval()


def test_kmeans_finds_the_clusters_of_values_and_assigns_each_to_its_nearest() -> None:
    values = torch.cat([torch.full((50,), -1.0), torch.full((30,), 0.2), torch.full((20,), 3.0)])
    values = values + 0.01 * torch.randn(len(values), generator=torch.Generator().manual_seed(0))
    centroids, assignment = engine.kmeans_1d(values, 3)
    assert torch.allclose(centroids, torch.tensor([-1.0, 0.2, 3.0]), atol=0.01)
    assert torch.equal(torch.bincount(assignment), torch.tensor([50, 30, 20]))


def test_shared_layers_keep_k_values_through_a_finetune_and_after(digits: data.Splits) -> None:
    model = _trained(digits)
    dense_accuracy = engine.evaluate(model, digits.val).accuracy
    shared = engine.share_weights(model, 16)
    assert set(shared) == {"features.0", "features.4", "classifier"}
    before = engine.distinct_weights(model)
    assert all(count <= 16 for count in before.values())
    engine.finetune(model, digits, engine.FinetuneConfig(epochs=2, lr=0.01))
    assert all(count <= 16 for count in engine.distinct_weights(model).values())  # only the shared values moved
    engine.unshare(model)
    assert all(count <= 16 for count in engine.distinct_weights(model).values())
    assert all(p.requires_grad for p in model.parameters())  # plain, trainable weights again
    assert engine.evaluate(model, digits.val).accuracy >= dense_accuracy - 0.03


def test_the_packed_file_is_the_shared_size_and_gives_the_same_model_back(digits: data.Splits, tmp_path: Path) -> None:
    model = _trained(digits)
    build = copy.deepcopy(model)
    engine.share_weights(model, 16)
    engine.unshare(model)
    size = engine.save_shared(model, tmp_path / "m.shared", metadata={"clusters": 16})
    assert size == (tmp_path / "m.shared").stat().st_size
    assert size < engine.size_bytes(model) / 4  # 4-bit indices against 32-bit floats, plus the fixed parts
    loaded = engine.load_shared(tmp_path / "m.shared", lambda: copy.deepcopy(build))
    inputs = digits.val.x[:32]
    with torch.no_grad():
        assert torch.equal(loaded(inputs), model.eval()(inputs))


def test_bad_clusters_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"weight sharing needs 2 to 65536 clusters, but got 1"):
        engine.share_weights(torch.nn.Linear(4, 4), 1)
    (tmp_path / "bad.shared").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"cannot read the shared-weights file"):
        engine.load_shared(tmp_path / "bad.shared", lambda: torch.nn.Linear(4, 4))


def test_a_shared_value_moves_as_far_as_one_of_its_weights_would() -> None:
    """Its gradient is the mean of its weights' gradients: each weight's is 1 here, so is each value's
    (the sum would be the value's count, hundreds of times the step a plain weight takes)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(100, 10)
    engine.share_weights(layer, 4)
    layer.weight.sum().backward()
    codebook = layer.parametrizations.weight[0].codebook
    assert torch.allclose(codebook.grad, torch.ones(4))
    assert torch.equal(layer.weight, codebook.detach()[layer.parametrizations.weight[0].indices])
