"""Malformed pipelines: each gives exactly one line ``file:line: key.path: message``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from autoprune.config import load_pipeline
from autoprune.errors import ConfigError

# file name -> (content, the exact error)
CASES = {
    "syntax": (
        "name: x\nmodel: {arch: cnn\nsearch: {trials: 3}\n",
        "syntax.yaml:3: YAML syntax error: expected ',' or '}', but got ':'",
    ),
    "tab_indent": (
        "name: x\nmodel:\n\tarch: cnn\n",
        "tab_indent.yaml:3: YAML syntax error: found character '\\t' that cannot start any token",
    ),
    "empty": ("", "empty.yaml:1: the pipeline file is empty"),
    "list_top": ("- name: x\n", "list_top.yaml:1: a pipeline file must be a mapping of keys to values"),
    "unknown_top": (
        "name: x\nmodle: {arch: cnn}\n",
        "unknown_top.yaml:2: modle: unknown key 'modle' (did you mean 'model'?)",
    ),
    "unknown_nested": (
        "name: x\nsearch:\n  trails: 3\n",
        "unknown_nested.yaml:3: search.trails: unknown key 'trails' (did you mean 'trials'?)",
    ),
    "wrong_type": (
        "name: x\nsearch:\n  trials: many\n",
        "wrong_type.yaml:3: search.trials: must be an integer, but got 'many'",
    ),
    "negative": (
        "name: x\nsearch:\n  trials: -2\n",
        "negative.yaml:3: search.trials: must be greater than or equal to 1, but got -2",
    ),
    "bad_sampler": (
        "name: x\nsearch:\n  sampler: nsga3\n",
        "bad_sampler.yaml:3: search.sampler: must be 'tpe', 'nsga2', 'random' or 'qmc', but got 'nsga3' (did you "
        "mean 'nsga2'?)",
    ),
    "bad_source": (
        "name: x\ndata:\n  source: mnist\n",
        "bad_source.yaml:3: data.source: must be one of digits, fashion_mnist, npz, image_folder, factory, but got "
        "'mnist'",
    ),
    "bad_arch": (
        "name: x\nmodel:\n  arch: resnet50\n",
        "bad_arch.yaml:3: model.arch: must be one of mlp, lenet5, cnn, resnet, mobilenet_v2, vgg, factory, but got "
        "'resnet50' (did you mean 'resnet'?)",
    ),
    "arch_option": (
        "name: x\nmodel:\n  arch: cnn\n  widths: [32, -4]\n",
        "arch_option.yaml:4: model.widths.1: must be greater than or equal to 1, but got -4",
    ),
    "option_of_other_arch": (
        "name: x\nmodel:\n  arch: lenet5\n  depth: 20\n",
        "option_of_other_arch.yaml:4: model.depth: unknown key 'depth'; allowed keys: arch, checkpoint, train",
    ),
    "bad_objective": (
        "name: x\nobjectives: {accuracy: max, flops: min}\n",
        "bad_objective.yaml:2: objectives: unknown objective 'flops'; choose from accuracy, params, macs, "
        "size_bytes, latency_ms",
    ),
    "wrong_direction": (
        "name: x\nobjectives: {accuracy: min}\n",
        "wrong_direction.yaml:2: objectives: accuracy can only be maximised (accuracy: max), but got 'min'",
    ),
    "too_many_objectives": (
        "name: x\nobjectives: {accuracy: max, macs: min, params: min, latency_ms: min}\n",
        "too_many_objectives.yaml:2: objectives: give at most 3 objectives, but got 4: accuracy, macs, params, "
        "latency_ms",
    ),
    "fourth_misspelt_objective": (
        "name: x\nobjectives: {accuracy: max, macs: min, latency_ms: min, latncy: min}\n",
        "fourth_misspelt_objective.yaml:2: objectives: unknown objective 'latncy' (did you mean 'latency_ms'?); "
        "choose from accuracy, params, macs, size_bytes, latency_ms",
    ),
    "empty_objectives": (
        "name: x\nobjectives: {}\n",
        "empty_objectives.yaml:2: objectives: give 1 to 3 objectives from accuracy, params, macs, size_bytes, "
        "latency_ms, but got {}",
    ),
    "duplicate_objective": (
        "name: x\nobjectives: [accuracy, macs, accuracy]\n",
        "duplicate_objective.yaml:2: objectives: each objective may appear once, but got ['accuracy', 'macs', "
        "'accuracy']",
    ),
    "duplicate_key": (
        "name: x\nseed: 1\nseed: 2\n",
        "duplicate_key.yaml:3: seed: duplicate key 'seed' (first written on line 2)",
    ),
    "fractions": (
        "name: x\ndata:\n  source: digits\n  val_fraction: 0.6\n  test_fraction: 0.5\n",
        "fractions.yaml:2: data: val_fraction + test_fraction must be < 1 to leave training data, but got 0.6 + 0.5",
    ),
    "resnet_depth": (
        "name: x\nmodel:\n  arch: resnet\n  depth: 21\n",
        "resnet_depth.yaml:4: model.depth: must be 6n+2 with n >= 1 (20, 32, 56, ...), but got 21",
    ),
    "missing_name": ("seed: 3\n", "missing_name.yaml:1: name: this key is required but missing"),
    "bad_name": (
        "name: 'my pipeline!'\n",
        "bad_name.yaml:1: name: must start with a letter or digit and hold only letters, digits, '_', '.' and '-' "
        "(at most 100): it names the experiment, the study and the registered model; got 'my pipeline!'",
    ),
    "python_tag": (
        "name: !!python/object/apply:os.system ['echo hi']\n",
        "python_tag.yaml:1: name: the tag '!!python/object/apply:os.system' is not allowed: only plain YAML values "
        "are accepted",
    ),
    "ratio_high": (
        "name: x\nsearch:\n  space:\n    pruning:\n      ratio: {low: 0.0, high: 1.5}\n",
        "ratio_high.yaml:5: search.space.pruning.ratio.high: must be less than 1, but got 1.5",
    ),
    "ratio_order": (
        "name: x\nsearch:\n  space:\n    pruning:\n      ratio: {low: 0.6, high: 0.2}\n",
        "ratio_order.yaml:5: search.space.pruning.ratio: low <= high must hold, but got low=0.6, high=0.2",
    ),
    "importance": (
        "name: x\nsearch:\n  space:\n    pruning:\n      importance: [l1, l3]\n",
        "importance.yaml:5: search.space.pruning.importance.1: must be 'l1', 'l2', 'bn_scale', 'taylor' or 'random', "
        "but got 'l3'",
    ),
    "lr_log_zero": (
        "name: x\nsearch:\n  space:\n    finetune:\n      lr: {low: 0, high: 0.1, log: true}\n",
        "lr_log_zero.yaml:5: search.space.finetune.lr: a log range needs low > 0, but got low=0.0",
    ),
    "optimizer": (
        "name: x\nsearch:\n  space:\n    finetune:\n      optimizer: [sgd, adam]\n",
        "optimizer.yaml:5: search.space.finetune.optimizer: must be sgd or adamw (or a list of them), but got "
        "['sgd', 'adam']",
    ),
    "distill_range": (
        "name: x\nsearch:\n  space:\n    finetune:\n      distill_alpha: {low: 0.5, high: 1.5}\n",
        "distill_range.yaml:5: search.space.finetune.distill_alpha: values must be less than or equal to 1, but got "
        "{low: 0.5, high: 1.5}",
    ),
    "storage": (
        "name: x\nsearch:\n  storage: redis://localhost\n",
        "storage.yaml:3: search.storage: must be an RDB URL such as sqlite:///path/optuna.db or "
        "postgresql://user@host/db, but got 'redis://localhost'",
    ),
    "tracking": (
        "name: x\ntracking:\n  uri: sqlite://mlflow.db\n",
        "tracking.yaml:3: tracking.uri: a sqlite URI needs three slashes (sqlite:///relative.db), but got 'sqlite://mlflow.db'",
    ),
    "space_missing": (
        "name: x\nsearch:\n  space: ../nope.yaml\n",
        "space_missing.yaml:3: search.space: search space file '../nope.yaml' does not exist (paths are relative to "
        "the pipeline file)",
    ),
    "latency_runtime": (
        "name: x\nlatency: {runtime: tensorrt}\n",
        "latency_runtime.yaml:2: latency.runtime: must be 'torch' or 'onnxruntime', but got 'tensorrt'",
    ),
    "champion": (
        "name: x\nchampion: {prefer: flops}\n",
        "champion.yaml:2: champion.prefer: must be 'accuracy', 'params', 'macs', 'size_bytes' or 'latency_ms', but "
        "got 'flops'",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_pipeline_gives_one_exact_line(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    content, expected = CASES[name]
    (tmp_path / f"{name}.yaml").write_text(content)
    with pytest.raises(ConfigError) as info:
        load_pipeline(f"{name}.yaml")
    assert str(info.value) == expected
    assert "\n" not in str(info.value)


def test_error_inside_an_included_space_names_the_space_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "s.yaml").write_text(
        "pruning:\n  ratio: {low: 0.0, high: 0.8}\nfinetune:\n  epochs: {low: 1, high: 2.5}\n"
    )
    (tmp_path / "p.yaml").write_text("name: x\nsearch:\n  space: spaces/s.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline("p.yaml")
    assert (
        str(info.value)
        == "spaces/s.yaml:4: search.space.finetune.epochs: must be whole numbers (a range with a whole step, not "
        "log), but got {low: 1, high: 2.5}"
    )


def test_set_overrides_take_precedence_and_are_located(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("name: x\nsearch:\n  trials: 4\n")
    loaded = load_pipeline(
        "p.yaml", ["search.trials=9", "search.space.finetune.lr=[0.01, 0.1]", "data.val_fraction=0.2"]
    )
    assert loaded.config.search.trials == 9
    assert loaded.config.search.space.finetune.lr.choices == [0.01, 0.1]
    assert loaded.config.data.source == "digits" and loaded.config.data.val_fraction == 0.2
    with pytest.raises(ConfigError) as info:
        load_pipeline("p.yaml", ["search.trials=0"])
    assert str(info.value) == "--set search.trials=0: search.trials: must be greater than or equal to 1, but got 0"
    with pytest.raises(ConfigError, match=re.escape("--set expects key.path=value, but got 'search.trials'")):
        load_pipeline("p.yaml", ["search.trials"])


def test_scientific_notation_is_a_float(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: x\nsearch:\n  space:\n    finetune:\n      lr: {low: 1e-4, high: 1e-1, log: true}\n"
    )
    assert load_pipeline("p.yaml").config.search.space.finetune.lr.low == 1e-4


def test_alias_bomb_and_deep_nesting_are_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("name: x\n" + "\n".join(levels) + "\n")
    with pytest.raises(
        ConfigError, match=r"^bomb.yaml:\d+: a\d: the document expands to more than 20000 nodes \(an alias bomb\?\)$"
    ):
        load_pipeline("bomb.yaml")
    (tmp_path / "deep.yaml").write_text("name: x\nseed: " + "[" * 40 + "]" * 40 + "\n")
    with pytest.raises(ConfigError, match=r"^deep.yaml:2: seed: nesting is deeper than 32 levels$"):
        load_pipeline("deep.yaml")


def test_set_can_swap_the_included_space(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("pruning: {importance: [l1]}\n")
    (tmp_path / "b.yaml").write_text("pruning: {importance: [taylor]}\n")
    (tmp_path / "p.yaml").write_text("name: x\nsearch:\n  space: a.yaml\n")
    loaded = load_pipeline("p.yaml", ["search.space.pruning.round_to=8", "search.space=b.yaml"])
    assert loaded.config.search.space.pruning.importance == ["taylor"]
    assert loaded.config.search.space.pruning.round_to == 8
    assert loaded.space_path.name == "b.yaml"


def test_an_error_still_names_the_file_when_the_working_directory_was_deleted(tmp_path, monkeypatch) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\nseed: many\n")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(ConfigError, match=r"p\.yaml:2: seed: must be an integer"):
        load_pipeline(pipeline)


def test_what_is_not_a_pipeline_file_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    """A pipe would block the read and a device never end: both are refused from their file type."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe.yaml")
    with pytest.raises(
        ConfigError, match=r"^pipe.yaml: the pipeline path is not a regular file \(a pipe or a device\?\)$"
    ):
        load_pipeline("pipe.yaml")
    with pytest.raises(ConfigError, match=r"^/dev/zero: the pipeline path is not a regular file"):
        load_pipeline("/dev/zero")
    Path("loop.yaml").symlink_to("loop.yaml")
    with pytest.raises(
        ConfigError, match=r"^loop.yaml: cannot read the pipeline file: Too many levels of symbolic links$"
    ):
        load_pipeline("loop.yaml")
    Path("folder.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"^folder.yaml: the pipeline path is a folder, not a file$"):
        load_pipeline("folder.yaml")
    Path("big.yaml").write_text("name: x\n" + "#" * (1 << 20) + "\n")  # over 1 MiB
    with pytest.raises(
        ConfigError, match=r"^big.yaml: the pipeline file is 1,048,585 bytes; a pipeline file is at most"
    ):
        load_pipeline("big.yaml")


def test_yaml_1_1_booleans_are_text_and_true_is_no_number(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.yaml").write_text(
        "name: x\nfinalize: {onnx: no}\nmodel: {arch: factory, factory: 'm:f', kwargs: {a: on, b: true}}\n"
    )
    loaded = load_pipeline("p.yaml")
    assert loaded.config.finalize.onnx is False  # pydantic reads the text "no" as false where a boolean belongs
    assert loaded.config.model.kwargs == {"a": "on", "b": True}  # YAML 1.2: only true and false are booleans
    with pytest.raises(ConfigError, match=r"^--set search.trials=true: search.trials: must be a number, but got true$"):
        load_pipeline("p.yaml", ["search.trials=true"])


def test_a_malformed_set_value_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline("p.yaml", ["search.trials=[1"])
    assert str(info.value) == (
        "--set search.trials=[1: search.trials: cannot parse the value '[1': expected ',' or ']', "
        "but got '<stream end>'"
    )
