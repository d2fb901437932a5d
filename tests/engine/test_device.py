"""Devices and precision: resolving ``device``, where models, batches and optimiser state end, mixed
precision on the CPU (what runs everywhere); `gpu`-marked tests repeat the placement on CUDA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autoprune import config, data, engine, models
from autoprune.errors import ConfigError

CUDA = torch.cuda.is_available()
gpu = pytest.mark.gpu


def _mlp(digits: data.Splits) -> nn.Module:
    torch.manual_seed(0)
    return models.build(config.MLPModel(arch="mlp", hidden=[32]), digits.input_shape, digits.num_classes)


def test_auto_is_the_gpu_when_there_is_one_else_the_cpu() -> None:
    assert engine.resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    assert engine.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["tpu", "cuda:", "CUDA", "gpu", "cuda:x", ""])
def test_a_device_name_outside_the_vocabulary_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"must be one of auto, cpu, cuda, cuda:N or mps") as info:
        engine.resolve_device(spec)
    assert info.value.key == "device"


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'cuda' was asked for, but this machine has no usable CUDA device") as info:
        engine.resolve_device("cuda")
    assert info.value.key == "device"
    with pytest.raises(ConfigError, match=r"use device: auto or cpu"):
        engine.resolve_device("cuda:1", key="x")


def test_a_cuda_index_beyond_the_machines_devices_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'cuda:64' was asked for"):
        engine.resolve_device("cuda:64")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_there_is_none_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"Apple's MPS is not available here"):
        engine.resolve_device("mps")


def test_device_of_is_where_parameters_or_buffers_are() -> None:
    assert engine.device_of(nn.Linear(2, 2)) == torch.device("cpu")
    assert engine.device_of(nn.BatchNorm1d(2, affine=False)) == torch.device("cpu")  # buffers only
    assert engine.device_of(nn.ReLU()) == torch.device("cpu")
    model = nn.Linear(2, 2)
    assert engine.cpu_copy(model) is model  # on the CPU already: no copy


def test_splits_on_a_device_give_their_batches_there_and_keep_it(digits: data.Splits) -> None:
    cpu = torch.device("cpu")
    assert digits.on(cpu) is not None and digits.on(cpu).train is digits.train  # already there
    split = digits.train.on(cpu)
    inputs, labels, flipped = split.training_batch(torch.arange(8), data.Augment(hflip=True))
    assert inputs.shape == (8, *digits.input_shape) and labels.shape == (8,) and flipped is not None
    assert inputs.device == labels.device == flipped.device == cpu
    assert split.subset(100, seed=0).device == cpu and split.with_layout(True).device == cpu
    assert split.head(3).shape[0] == 3 and split.labels(torch.arange(3)).tolist() == split.y[:3].tolist()


def test_a_seed_gives_the_same_training_batches_whatever_the_device(digits: data.Splits) -> None:
    """Augmentation draws on the host: the batches follow the seed, not the device."""
    augment = data.Augment(hflip=True, shift=1)
    first = digits.train.training_batch(torch.arange(16), augment, torch.Generator().manual_seed(3))
    second = digits.train.on(torch.device("cpu")).training_batch(
        torch.arange(16), augment, torch.Generator().manual_seed(3)
    )
    assert torch.equal(first[0], second[0]) and torch.equal(first[2], second[2])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_learns_and_evaluation_stays_float32(digits: data.Splits, precision: str) -> None:
    model = _mlp(digits)
    recipe = engine.FinetuneConfig(epochs=3, lr=0.05, precision=precision)
    history = engine.finetune(model, digits, recipe)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32 (autocast casts)
    assert history.epochs[-1].val_accuracy > 0.85  # 10 classes: chance is 0.1
    assert engine.evaluate(model, digits.val).accuracy == pytest.approx(history.epochs[-1].val_accuracy)


def test_fp16_scales_gradients_and_bf16_does_not() -> None:
    cpu = torch.device("cpu")
    assert engine.grad_scaler(cpu, "fp16").is_enabled()
    assert not engine.grad_scaler(cpu, "bf16").is_enabled() and not engine.grad_scaler(cpu, "fp32").is_enabled()
    with engine.autocast(cpu, "bf16"):
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    with engine.autocast(cpu, "fp32"):
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32


def test_fp32_training_is_unchanged_by_the_precision_plumbing(digits: data.Splits) -> None:
    """The default precision gives the same weights as before there was a choice (same seed, twice)."""
    first, second = _mlp(digits), _mlp(digits)
    engine.finetune(first, digits, engine.FinetuneConfig(epochs=1, lr=0.05))
    engine.finetune(second, digits, engine.FinetuneConfig(epochs=1, lr=0.05, precision="fp32"))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_interleave_times_calls_with_the_timer_it_is_given() -> None:
    calls = {"a": lambda: None, "b": lambda: None}
    samples = engine.interleave(calls, 1, 3, timer=lambda call: 0.25)
    assert samples == {"a": [0.25] * 3, "b": [0.25] * 3}
    assert engine.device_timer(torch.device("cpu")) is not None


@gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_on_cuda_models_batches_and_optimiser_state_stay_on_the_gpu(digits: data.Splits) -> None:
    cuda = torch.device("cuda")
    splits = digits.on(cuda)
    model = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), digits.input_shape, 10).to(cuda)
    assert next(iter(splits.train.batches(8)))[0].device.type == "cuda"
    engine.finetune(model, splits, engine.FinetuneConfig(epochs=1, lr=0.05, precision="bf16"))
    assert engine.device_of(model).type == "cuda"
    plan = engine.PrunePlan.uniform(engine.discover(model, digits.input_shape), 0.5)
    result = engine.evaluate_candidate(
        model, engine.Candidate(plan, engine.FinetuneConfig(epochs=1, lr=0.01, distill_alpha=0.5)), splits
    )
    assert result.model is not None and engine.device_of(result.model).type == "cuda"
    assert result.latency_ms > 0 and result.params < result.dense_params
    assert engine.device_of(engine.cpu_copy(result.model)).type == "cpu"
    assert engine.device_of(result.model).type == "cuda"  # the copy left the model where it was


@gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_on_cuda_latency_is_timed_there_and_the_table_measures_layers_there(digits: data.Splits) -> None:
    cuda = torch.device("cuda")
    model = models.build(config.CNNModel(arch="cnn", widths=[16, 32]), digits.input_shape, 10).to(cuda).eval()
    latency = engine.LatencyConfig(warmup=3, repeats=10)
    assert engine.measure_latency({"dense": model}, digits.input_shape, latency)["dense"] > 0
    table = engine.LatencyTable(latency, None, cuda)
    assert table.layer_sum(model, digits.input_shape) > 0 and table.measured > 0
    assert engine.machine_key(latency, cuda) != engine.machine_key(latency)


@pytest.mark.slow
def test_a_compiled_finetune_trains_the_model_itself(digits: data.Splits) -> None:
    """``compile`` runs the training steps through torch.compile; the weights trained are the model's."""
    model = _mlp(digits)
    before = [p.detach().clone() for p in model.parameters()]
    history = engine.finetune(model, digits, engine.FinetuneConfig(epochs=2, lr=0.05, compile=True))
    assert history.epochs[-1].val_accuracy > 0.85
    assert not any(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert engine.evaluate(model, digits.val).accuracy == pytest.approx(history.epochs[-1].val_accuracy)
