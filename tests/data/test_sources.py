"""Dataset sources and splits."""

from __future__ import annotations

import gzip
import struct
import textwrap

import numpy as np
import pytest
import torch

from autoprune import config, data
from autoprune.data import _sources
from autoprune.errors import ConfigError, DataError


def test_digits_splits_are_stratified_disjoint_and_deterministic() -> None:
    first = data.load(config.DigitsData(), seed=3)
    again = data.load(config.DigitsData(), seed=3)
    other = data.load(config.DigitsData(), seed=4)
    assert (len(first.train), len(first.val), len(first.test)) == (1257, 270, 270)
    assert first.input_shape == (1, 8, 8) and first.num_classes == 10
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    assert not torch.equal(first.test.y, other.test.y)
    counts = torch.bincount(first.test.y, minlength=10)
    assert int(counts.max() - counts.min()) <= 2  # stratified: classes hold 174 to 183 images
    assert abs(float(first.train.x.mean())) < 1e-4 and abs(float(first.train.x.std()) - 1) < 1e-2


def test_digits_are_scikit_learns_own() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y, names = _sources._digits()
    assert np.array_equal(x[:, 0], (digits.images / 16.0).astype(np.float32))
    assert np.array_equal(y, digits.target) and names == [str(c) for c in digits.target_names]


def test_splits_kept_in_a_cache_folder_are_the_same_and_skip_scikit_learn(tmp_path, monkeypatch) -> None:
    from sklearn import model_selection

    fresh = data.load(config.DigitsData(), seed=5)
    kept = data.load(config.DigitsData(), seed=5, cache=tmp_path)
    assert len(list(tmp_path.glob("split-*.npz"))) == 2  # test off the whole, then val off the rest

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("split again")

    monkeypatch.setattr(model_selection, "train_test_split", refuse)
    again = data.load(config.DigitsData(), seed=5, cache=tmp_path)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(fresh, split).x, getattr(kept, split).x)
        assert torch.equal(getattr(fresh, split).y, getattr(again, split).y)
    with pytest.raises(AssertionError, match="split again"):  # another seed: split anew
        data.load(config.DigitsData(), seed=6, cache=tmp_path)
    for file in tmp_path.glob("split-*.npz"):
        file.write_bytes(b"damaged")
    with pytest.raises(AssertionError, match="split again"):  # damaged: split anew
        data.load(config.DigitsData(), seed=5, cache=tmp_path)


def test_splits_partition_the_samples() -> None:
    x = np.arange(300, dtype=np.float32).reshape(300, 1, 1, 1)  # each sample is its own index
    y = np.arange(300) % 3
    splits = data.make_splits(
        x, y, val_fraction=0.2, test_fraction=0.1, seed=0, class_names=["a", "b", "c"], source="t", normalize=False
    )
    ids = [set(split.x.flatten().long().tolist()) for split in (splits.train, splits.val, splits.test)]
    assert [len(i) for i in ids] == [210, 60, 30]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and set.union(*ids) == set(range(300))


def test_max_train_samples_caps_the_training_split() -> None:
    splits = data.load(config.DigitsData(max_train_samples=200), seed=0)
    assert len(splits.train) == 200 and len(splits.val) == 270
    assert torch.bincount(splits.train.y).min() >= 19


def test_fashion_mnist_missing_directory_says_how_to_get_it(tmp_path) -> None:
    cfg = config.FashionMnistData(source="fashion_mnist", path=tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        data.load(cfg)
    assert info.value.key == "data.path"


def _write_idx(path, array: np.ndarray, magic: bytes | None = None, cut: int = 0) -> None:
    header = magic or struct.pack(">HBB", 0, 8, array.ndim)
    raw = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw[: len(raw) - cut] if cut else raw))


def _fake_fashion(directory, *, magic: bytes | None = None, cut: int = 0) -> None:
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 200), ("t10k", 50)):
        images = rng.integers(0, 255, size=(count, 28, 28))
        labels = np.arange(count) % 10
        _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images, magic if prefix == "train" else None, cut)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)


def test_fashion_mnist_reads_idx_files_and_keeps_the_official_test(tmp_path) -> None:
    _fake_fashion(tmp_path)
    splits = data.load(config.FashionMnistData(source="fashion_mnist", path=tmp_path))
    assert splits.input_shape == (1, 28, 28) and len(splits.test) == 50
    assert len(splits.train) + len(splits.val) == 200
    assert splits.class_names[9] == "Ankle boot"


def test_idx_with_wrong_magic_number(tmp_path) -> None:
    _fake_fashion(tmp_path, magic=b"\x00\x00\x0d\x03")
    with pytest.raises(DataError, match=r"not an unsigned-byte IDX file: magic number 0x00000d03"):
        data.load(config.FashionMnistData(source="fashion_mnist", path=tmp_path))


def test_truncated_idx(tmp_path) -> None:
    _fake_fashion(tmp_path, cut=100)
    with pytest.raises(
        DataError, match=r"truncated or padded: header says 200x28x28 = 156800 bytes of data, file has 156700"
    ):
        data.load(config.FashionMnistData(source="fashion_mnist", path=tmp_path))


def test_real_fashion_mnist_when_installed() -> None:
    if not config.FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    splits = data.load(config.FashionMnistData(source="fashion_mnist", max_train_samples=1000))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1000, 9000, 10000)


def test_npz_source_with_string_labels(tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(
        path, images=rng.integers(0, 255, (90, 12, 12)).astype(np.uint8), labels=np.array(["cat", "dog", "eel"] * 30)
    )
    splits = data.load(config.NpzData(source="npz", path=path, x_key="images", y_key="labels"))
    assert splits.input_shape == (1, 12, 12) and splits.class_names == ("cat", "dog", "eel")


def test_npz_sequences_keep_their_channels_with_add_channel_false(tmp_path) -> None:
    np.savez(
        tmp_path / "s.npz", x=np.random.default_rng(0).normal(size=(60, 2, 16)).astype(np.float32), y=np.arange(60) % 3
    )
    images = data.load(config.NpzData(source="npz", path=tmp_path / "s.npz"))
    sequences = data.load(config.NpzData(source="npz", path=tmp_path / "s.npz", add_channel=False))
    assert (images.input_shape, sequences.input_shape) == (
        (1, 2, 16),
        (2, 16),
    )  # (N, H, W) images, or (N, C, L) as given
    assert sequences.train.x.shape[1:] == (2, 16)


def test_a_model_that_cannot_take_the_inputs_says_so_with_the_fix(tmp_path, capsys) -> None:
    from autoprune.cli import main

    np.savez(tmp_path / "s.npz", x=np.zeros((60, 1, 32), np.float32), y=np.arange(60) % 3)
    (tmp_path / "seq.py").write_text(
        "import torch.nn as nn\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Conv1d(1, 8, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, "
        "num_classes))\n"
    )
    (tmp_path / "p.yaml").write_text(
        'name: seq\ndata: {source: npz, path: s.npz}\nmodel: {arch: factory, factory: "seq:build"}\n'
    )
    with pytest.raises(SystemExit) as info:
        main(["validate", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "model: the model cannot take the data's 1x1x32 inputs: RuntimeError: " in err
    assert err.rstrip().endswith("for (N, C, L) sequences set data.add_channel: false")
    with pytest.raises(SystemExit) as info:
        main(["validate", str(tmp_path / "p.yaml"), "--set", "data.add_channel=false"])
    assert info.value.code == 0, capsys.readouterr().err


def test_npz_mismatched_lengths(tmp_path) -> None:
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 4, 4)), y=np.zeros(9))
    with pytest.raises(DataError, match="'x' has 10 samples but 'y' has 9"):
        data.load(config.NpzData(source="npz", path="bad.npz"), base_dir=tmp_path)


def test_npz_missing_key_lists_the_arrays(tmp_path) -> None:
    np.savez(tmp_path / "bad.npz", inputs=np.zeros((10, 4, 4)), y=np.zeros(10))
    with pytest.raises(DataError, match="has no array 'x'; it has inputs, y") as info:
        data.load(config.NpzData(source="npz", path=tmp_path / "bad.npz"))
    assert info.value.key == "data.x_key"


def test_image_folder(tmp_path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("circle", "square"):
        (tmp_path / name).mkdir()
        for index in range(20):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3)).astype(np.uint8)).save(tmp_path / name / f"{index}.png")
    splits = data.load(config.ImageFolderData(source="image_folder", path=tmp_path, image_size=(8, 8)))
    assert splits.input_shape == (3, 8, 8) and splits.class_names == ("circle", "square")
    gray = data.load(config.ImageFolderData(source="image_folder", path=tmp_path, grayscale=True))
    assert gray.input_shape == (1, 10, 12)


def test_factory_source_from_a_module_beside_the_pipeline(tmp_path) -> None:
    (tmp_path / "my_data.py").write_text(
        textwrap.dedent("""
        import numpy as np
        def make(n=60):
            rng = np.random.default_rng(0)
            train = (rng.normal(size=(n, 2, 6, 6)), np.arange(n) % 3)
            return {"train": train, "test": (rng.normal(size=(15, 2, 6, 6)), np.arange(15) % 3)}
        def broken():
            return 42
    """)
    )
    splits = data.load(
        config.FactoryData(source="factory", factory="my_data:make", kwargs={"n": 90}), base_dir=tmp_path
    )
    assert splits.input_shape == (2, 6, 6) and len(splits.test) == 15 and len(splits.train) + len(splits.val) == 90
    with pytest.raises(DataError, match="the factory must return"):
        data.load(config.FactoryData(source="factory", factory="my_data:broken"), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="module 'my_data' has no attribute 'nothing'"):
        data.load(config.FactoryData(source="factory", factory="my_data:nothing"), base_dir=tmp_path)


def test_normalised_splits_are_the_same_bits_whatever_the_thread_count() -> None:
    # A thread-count-dependent reduction order once changed the data (and so the dense cache key)
    # between a run with one thread and one with two.
    rng = np.random.default_rng(0)
    x = np.round(rng.random((20000, 1, 28, 28), dtype=np.float32) * 255) / 255  # float32 sums of this size drift
    y = np.arange(20000) % 10
    threads = torch.get_num_threads()
    made = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            made.append(
                data.make_splits(
                    x, y, val_fraction=0.1, test_fraction=0.1, seed=0, class_names=list("0123456789"), source="t"
                )
            )
    finally:
        torch.set_num_threads(threads)
    for other in made[1:]:
        assert other.mean == made[0].mean and other.std == made[0].std
        assert torch.equal(other.train.x, made[0].train.x) and torch.equal(other.test.x, made[0].test.x)


@pytest.mark.parametrize("channels", [1, 3])
def test_batches_and_training_rows_are_channels_last_on_request(channels: int) -> None:
    x = np.random.default_rng(0).random((40, channels, 6, 6), dtype=np.float32)
    splits = data.make_splits(
        x, np.arange(40) % 2, val_fraction=0.25, test_fraction=0.25, seed=0, class_names=["a", "b"], source="t"
    )
    conv = torch.nn.Conv2d(channels, 4, 3)
    plain, fast = splits.with_layout(False), splits.with_layout(True)
    assert not plain.channels_last and fast.channels_last and fast.with_layout(True) is fast
    for split in (fast.train, fast.val, fast.test, fast.train.subset(10, seed=0)):
        inputs, _ = next(split.batches(8))
        assert conv(inputs).is_contiguous(memory_format=torch.channels_last)  # what convolutions read
        assert conv(split.rows(torch.tensor([3, 0, 5]))).is_contiguous(memory_format=torch.channels_last)
    for split in (plain.train, plain.test):
        inputs, _ = next(split.batches(8))
        assert inputs.view(len(inputs), -1).shape == (
            len(inputs),
            channels * 36,
        )  # code written for the default layout works
        assert not conv(inputs).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fast.test.x, plain.test.x) and torch.equal(fast.train.rows(torch.arange(5)), plain.train.x[:5])


def test_one_channel_images_from_numpy_are_read_in_the_default_layout() -> None:
    # numpy gives x[:, None] a unit stride on the channel axis: convolutions then wrote channels-last
    # outputs, and a model's x.view(len(x), -1) failed (the digits and Fashion-MNIST sources do this)
    digits = data.load(config.DigitsData())
    out = torch.nn.Conv2d(1, 4, 3)(next(digits.val.batches(4))[0])
    assert out.view(len(out), -1).shape == (4, 4 * 6 * 6)


def test_images_with_the_channel_axis_last_are_read_with_data_channels_last(tmp_path) -> None:
    hwc = np.random.default_rng(0).random((60, 6, 5, 3), dtype=np.float32)  # (N, H, W, C), as numpy and PIL give them
    np.savez(tmp_path / "hwc.npz", x=hwc, y=np.arange(60) % 3)
    with pytest.raises(
        DataError, match=r"look like \(N, H, W, C\) images with 3 channels, .*set data.channels: last"
    ) as info:
        data.load(config.NpzData(source="npz", path=tmp_path / "hwc.npz"))
    assert info.value.key == "data.x_key"
    last = data.load(config.NpzData(source="npz", path=tmp_path / "hwc.npz", channels="last"), seed=0)
    kept = data.load(config.NpzData(source="npz", path=tmp_path / "hwc.npz", channels="first"), seed=0)
    assert (last.input_shape, kept.input_shape) == ((3, 6, 5), (6, 5, 3))
    raw = data.load(config.NpzData(source="npz", path=tmp_path / "hwc.npz", channels="last", normalize=False), seed=0)
    first = int(np.flatnonzero((hwc == raw.train.x[0].permute(1, 2, 0).numpy()).all(axis=(1, 2, 3)))[0])
    assert torch.equal(raw.train.x[0], torch.from_numpy(hwc[first]).permute(2, 0, 1))  # each image moved whole


def test_shifted_batches_keep_the_default_layout_a_viewing_model_needs(digits) -> None:
    from autoprune import engine

    class Viewed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 6 * 6, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.head(y.view(y.size(0), -1))

    import dataclasses

    shifted = dataclasses.replace(digits.with_layout(False), augment=data.Augment(shift=1))
    history = engine.finetune(
        Viewed(), shifted, engine.FinetuneConfig(epochs=1, lr=0.01)
    )  # a shift's copy was channels-last
    assert len(history.epochs) == 1
