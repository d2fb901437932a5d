"""Training-time augmentation: what each transform does to a batch, where it applies, and its errors."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from autoprune import config, data, engine
from autoprune.errors import DataError


def _dots(count: int, size: int = 9) -> torch.Tensor:
    """Images holding one bright pixel in the centre on a zero background."""
    x = torch.zeros(count, 1, size, size)
    x[:, 0, size // 2, size // 2] = 1.0
    return x


def test_shift_moves_each_image_by_at_most_shift_pixels_and_keeps_its_pixels() -> None:
    x = _dots(200)
    out = data.Augment(shift=2)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # the dot never leaves the image
    where = out[:, 0].flatten(1).argmax(dim=1)
    rows, cols = where // 9 - 4, where % 9 - 4
    assert rows.abs().max() == 2 and cols.abs().max() == 2  # every offset up to 2 happens ...
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) == 25  # ... independently per image
    assert torch.equal(x, _dots(200))  # the input batch is untouched


def test_shift_pads_with_the_border_not_zeros() -> None:
    x = torch.full((50, 1, 6, 6), -0.4)  # a normalised background is not zero
    out = data.Augment(shift=3)(x, torch.Generator().manual_seed(1))
    assert torch.allclose(out, x)


def test_hflip_mirrors_about_half_the_images() -> None:
    x = torch.arange(2000 * 4, dtype=torch.float32).reshape(2000, 1, 2, 2)
    out = data.Augment(hflip=True)(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped ^ kept).all())
    assert 0.45 < float(flipped.float().mean()) < 0.55


def test_no_augmentation_by_default() -> None:
    assert not data.Augment().active
    splits = data.load(config.DigitsData(source="digits"))
    assert splits.augment == data.Augment()


def test_augment_config_reaches_the_splits_and_needs_images(tmp_path) -> None:
    settings = {"hflip": True, "shift": 1}
    splits = data.load(config.DigitsData(source="digits", augment=settings))
    assert splits.augment == data.Augment(hflip=True, shift=1)
    np.savez(tmp_path / "flat.npz", x=np.random.rand(60, 5).astype(np.float32), y=np.arange(60) % 3)
    flat = config.NpzData(source="npz", path=tmp_path / "flat.npz", augment=settings)
    with pytest.raises(DataError, match="needs image inputs") as caught:
        data.load(flat)
    assert caught.value.key == "data.augment"


def test_finetune_trains_on_augmented_batches_and_distils_per_batch(digits, trained_cnn) -> None:
    """With augmentation the teacher sees the same augmented batch as the student."""
    augmented = dataclasses.replace(digits, augment=data.Augment(hflip=True, shift=1))
    model = copy.deepcopy(trained_cnn)
    engine.apply_plan(
        model, engine.PrunePlan.uniform(engine.discover(model, digits.input_shape), 0.5), digits.input_shape
    )
    seen: list[torch.Tensor] = []
    hook = trained_cnn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    try:
        recipe = engine.FinetuneConfig(epochs=1, lr=0.01, distill_alpha=0.5, batch_size=256)
        history = engine.finetune(model, augmented, recipe, teacher=trained_cnn)
    finally:
        hook.remove()
    assert math.isfinite(history.epochs[0].train_loss)
    batches = -(-len(digits.train) // 256)
    assert len(seen) == batches  # one teacher call per batch, not one pass over the whole split
    originals = {tuple(row.flatten().tolist()) for row in digits.train.x}
    changed = sum(tuple(img.flatten().tolist()) not in originals for batch in seen for img in batch)
    assert changed > len(digits.train) // 2  # most inputs the teacher saw were augmented


def _distilled_with_flips(digits, teacher: torch.nn.Module, epochs: int) -> tuple[torch.nn.Module, int]:
    """A half-pruned copy of ``teacher`` fine-tuned distilled with flips on; also how many forward
    passes the teacher made."""
    flipped = dataclasses.replace(digits, augment=data.Augment(hflip=True))
    model = copy.deepcopy(teacher)
    engine.apply_plan(
        model, engine.PrunePlan.uniform(engine.discover(model, digits.input_shape), 0.5), digits.input_shape
    )
    calls = 0

    def count(*_: object) -> None:
        nonlocal calls
        calls += 1

    hook = teacher.register_forward_hook(count)
    try:
        recipe = engine.FinetuneConfig(epochs=epochs, lr=0.01, distill_alpha=0.5, batch_size=64)
        engine.finetune(model, flipped, recipe, teacher=teacher)
    finally:
        hook.remove()
    return model, calls


def test_with_flips_only_the_teacher_sees_each_image_and_its_mirror_once(digits, trained_cnn, monkeypatch) -> None:
    """Flips make two versions of an image, so the teacher's logits are computed once for each
    (two passes over the split, not one forward pass per step), and the fine-tune is the one a
    teacher run on every flipped batch gives."""
    cached, calls = _distilled_with_flips(digits, trained_cnn, epochs=3)
    assert calls == 2 * -(-len(digits.train) // engine.INFERENCE_BATCH)
    monkeypatch.setattr("autoprune.engine._finetune._teacher_logits", lambda *args: None)
    per_batch, calls = _distilled_with_flips(digits, trained_cnn, epochs=3)
    assert calls == 3 * -(-len(digits.train) // 64)
    for name, value in per_batch.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[name], value, rtol=1e-3, atol=1e-4, msg=name)


def test_augmentation_is_part_of_the_dense_cache_key(digits) -> None:
    """A dense model trained without augmentation is not reused for a pipeline that asks for it."""
    from autoprune.workflow._dense import build_dense, dense_cache_key

    pipeline = config.PipelineConfig(name="key", model={"arch": "mlp", "hidden": [16]})
    model = build_dense(pipeline, digits, base_dir=Path("."))
    plain = dense_cache_key(pipeline, digits, model)
    assert dense_cache_key(pipeline, dataclasses.replace(digits, augment=data.Augment()), model) == plain
    flipped = dense_cache_key(pipeline, dataclasses.replace(digits, augment=data.Augment(hflip=True)), model)
    shifted = dense_cache_key(pipeline, dataclasses.replace(digits, augment=data.Augment(shift=1)), model)
    assert len({plain, flipped, shifted}) == 3
