"""``autoprune validate``: what it checks and says, with the key and the fix, before anything is trained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..helpers import run_cli


def _factory_pipeline(folder: Path, module: str, source: str) -> None:
    """``p.yaml`` in ``folder``, its model ``build`` from ``module``.py written there from ``source`` (a
    name of its own per test: Python keeps the first module imported under a name)."""
    (folder / f"{module}.py").write_text(source)
    (folder / "p.yaml").write_text(f'name: x\nmodel: {{arch: factory, factory: "{module}:build"}}\n')


def test_validate_locates_a_glob_that_matches_no_group(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch:\n  space:\n    pruning:\n      overrides:\n        "
        "layer3.*: {high: 0.5}\n"
    )
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: p.yaml:7: search.space.pruning.overrides.layer3.*: 'layer3.*' matches no group;")


def test_validate_names_the_groups_a_models_code_cannot_prune_and_the_fix_works(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # tests.user_models:fixed_head_width reshapes its qkv into heads by the tokens' width
    (tmp_path / "p.yaml").write_text('name: x\nmodel: {arch: factory, factory: "tests.user_models:fixed_head_width"}\n')
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: p.yaml:2: model: the model fails once pruned (") and err.count("\n") == 0
    assert err.endswith(
        "pruned alone, groups 'patch', 'qkv' break it: the model's code probably fixes their widths "
        "(a reshape into heads, a hard-coded size); exclude them with search.space.pruning.exclude: [patch, qkv]"
    )
    assert run_cli("validate", "p.yaml", "--set", "search.space.pruning.exclude=[patch, qkv]") == 0
    assert "OK p.yaml is ready to run" in capsys.readouterr().out


def test_validate_blames_no_group_when_the_model_fails_before_any_pruning(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(  # returns (logits, aux) while training, as some models do
        tmp_path,
        "aux",
        "import torch.nn as nn\n"
        "class Aux(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.a = nn.Conv2d(1, 8, 3); self.b = nn.Conv2d(8, 8, 3); self.head = "
        "nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.head(self.b(self.a(x)).mean((2, 3)))\n"
        "        return (y, y) if self.training else y\n"
        "def build():\n"
        "    return Aux()\n",
    )
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "error: p.yaml:2: model: the model fails a training step (forward, backward) before any pruning: "
    )
    assert "break it" not in err


def test_validate_says_why_no_group_of_a_model_can_shrink(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(  # a depthwise conv with a channel multiplier into one channel per GroupNorm group
        tmp_path,
        "held",
        "import torch.nn as nn\n"
        "def build(num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(1, 16, 1), nn.Conv2d(16, 32, 3, groups=16), nn.GroupNorm(32, 32),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))\n",
    )
    assert run_cli("validate", "p.yaml") == 2
    assert capsys.readouterr().err.strip() == (
        "error: p.yaml:2: model: the model has no prunable dependency group (0: shrinking it alone would unbalance "
        "the blocks of 1; 1: shrinking it alone would unbalance the blocks of 2; 5: its outputs are the model's "
        "outputs)"
    )


def test_a_model_that_views_its_convolutions_is_evaluated_in_the_default_layout(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(  # x.view(len(x), -1) needs the default layout: on channels-last images it raises
        tmp_path,
        "viewed",
        "import torch.nn as nn\n"
        "class Viewed(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 8, 3); self.head = nn.Linear(8 * 6 * 6, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.conv(x)\n"
        "        return self.head(y.view(y.size(0), -1))\n"
        "def build():\n"
        "    return Viewed()\n",
    )
    assert run_cli("validate", "p.yaml") == 0  # it failed on the digits before: "view size is not compatible"
    out = " ".join(capsys.readouterr().out.split())
    assert "note: the model cannot take channels-last images (RuntimeError: view size is not compatible" in out
    assert ".view on a convolution's output is the usual cause" in out and "OK p.yaml is ready to run" in out
    (tmp_path / "p.yaml").write_text("name: x\nmodel: {arch: cnn, widths: [8, 16]}\n")
    assert run_cli("validate", "p.yaml") == 0
    assert "channels-last" not in capsys.readouterr().out  # the zoo's models take either


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            '{"logits": self.head(y)}',
            "the model returns a dict, not a tensor: autoprune needs its logits, shape (batch, 10)",
        ),
        ("self.head(y), y", "the model returns a tuple, not a tensor: autoprune needs its logits, shape (batch, 10)"),
        (
            "self.head(y).repeat(1, 2)[:, :12]",
            "the model gives outputs of shape [2, 12] for 2 inputs, not [2, 10]: one logit per class of the data "
            "(10) is needed",
        ),
    ],
)
def test_a_model_must_return_one_logit_per_class(tmp_path, capsys, monkeypatch, returned: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    module = f"outputs{abs(hash(returned))}"
    _factory_pipeline(
        tmp_path,
        module,
        "import torch.nn as nn\n"
        "class Out(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 8, 3); self.head = nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.conv(x).mean((2, 3))\n"
        f"        return {returned}\n"
        "def build():\n"
        "    return Out()\n",
    )
    assert (
        run_cli("validate", "p.yaml") == 2
    )  # a dict or tuple was an unexpected error (exit 1); 12 logits trained silently
    assert capsys.readouterr().err.strip().startswith(f"error: p.yaml:2: model: {message}")


def test_validate_names_a_batch_size_fixed_by_the_model_and_skips_onnx_when_it_is_off(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _factory_pipeline(
        tmp_path,
        "sized",
        "import torch.nn as nn\n"
        "class Sized(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 8, 3); self.head = nn.Linear(8 * 6 * 6, 10)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.conv(x).reshape(len(x), -1))\n"
        "def build():\n"
        "    return Sized()\n",
    )
    assert run_cli("validate", "p.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "error: p.yaml:2: model: the ONNX export fixed the batch size at 2: the model's code makes it a constant "
        "(len(x)"
    )
    assert err.endswith("; or set finalize.onnx: false to keep front models as plan and weights only")
    assert run_cli("validate", "p.yaml", "--set", "finalize.onnx=false") == 0
    assert "params) runs (ONNX not checked: finalize.onnx is off)" in " ".join(capsys.readouterr().out.split())


def test_validate_shows_what_fit_to_limit_makes_of_a_uniform_plan(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch: {fit_to_limit: true}\nconstraints: {max_params: 700}\n"
    )
    assert run_cli("validate", "p.yaml") == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    note = re.search(
        r"fit_to_limit scales every plan to fill max_params 700; a uniform plan fills it at ratio [\d.-]+ \(([\d,]+) "
        r"params\)",
        out,
    )
    assert note and 600 < int(note.group(1).replace(",", "")) <= 700


def test_validate_warns_when_fit_to_limit_holds_an_objective_still(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fitted = (
        "name: x\nmodel: {arch: cnn, widths: [8, 16]}\nsearch: {fit_to_limit: true}\nconstraints: {max_params: 700}\n"
    )
    (tmp_path / "p.yaml").write_text(fitted + "objectives: {accuracy: max, params: min}\n")
    assert run_cli("validate", "p.yaml") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "holds every trial's params just under constraints.max_params, so the objective 'params' barely varies" in err
    )
    (tmp_path / "p.yaml").write_text(fitted + "objectives: {accuracy: max, macs: min}\n")  # MACs still vary: no warning
    assert run_cli("validate", "p.yaml") == 0
    assert "barely varies" not in capsys.readouterr().err
