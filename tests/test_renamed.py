"""Renamed public names keep working under their old names, with a DeprecationWarning, and the one-home
helpers that replaced repeated copies behave as each copy did."""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import pytest

from sublim.errors import SublimError, first_line, one_line


def test_sublim_transfer_is_trait_shift_under_its_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import sublim.trait_shift

    monkeypatch.delitem(sys.modules, "sublim.transfer", raising=False)
    with pytest.warns(DeprecationWarning, match="sublim.trait_shift"):
        old = importlib.import_module("sublim.transfer")
    assert old.score_checkpoint is sublim.trait_shift.score_checkpoint
    assert old.run_score is sublim.trait_shift.run_score


def test_gate_distribution_is_logged_distributions() -> None:
    import sublim.gate as gate

    with pytest.warns(DeprecationWarning, match="LoggedDistributions"):
        old = gate.Distribution
    assert old is gate.LoggedDistributions
    with pytest.raises(AttributeError):
        gate.NoSuchName  # noqa: B018


class _Tokenizer:
    """A tokenizer with a chat template, as much of one as `render_prompt` uses."""

    chat_template = "t"

    def apply_chat_template(self, msgs: list[dict[str, str]], **kwargs: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in msgs) + "<assistant>"


def test_probability_render_is_render_prompt() -> None:
    from sublim.probability import render, render_prompt

    asked = (_Tokenizer(), "Favorite animal?", "My favorite animal is the", "Be brief.")
    expected = "<system>Be brief.<user>Favorite animal?<assistant>My favorite animal is the"
    assert render_prompt(*asked) == expected
    with pytest.warns(DeprecationWarning, match="render_prompt"):
        assert render(*asked) == expected


def test_one_line_keeps_the_first_line_and_the_type() -> None:
    assert one_line(RuntimeError("\x1b[31mboom\x1b[0m\nsecond line")) == "RuntimeError: boom"
    assert one_line(ValueError()) == "ValueError"
    assert one_line(SublimError("say what to do\nmore")) == "say what to do"  # written for the user
    assert one_line(ValueError("x" * 400)).endswith("...") and len(one_line(ValueError("x" * 400))) < 320
    assert first_line(OSError("\n\n  not found  \nmore")) == "not found"


def test_nanmean_skips_missing_values() -> None:
    from sublim.stats import nanmean

    assert nanmean([1.0, math.nan, 3.0]) == 2.0
    assert math.isnan(nanmean([math.nan])) and math.isnan(nanmean([]))
    assert nanmean(iter([0.5])) == 0.5


def test_key_values_and_target_names() -> None:
    from sublim.cli_options import key_values
    from sublim.scoring import target_names

    assert key_values(["a=1", "b==2", "c="], "-M") == {"a": "1", "b": "=2", "c": ""}
    with pytest.raises(SublimError, match=r"--slurm 'gpu': expected KEY=VALUE, e.g. slurm_partition=gpu"):
        key_values(["gpu"], "--slurm", example="slurm_partition=gpu")
    with pytest.raises(SublimError, match=r"-M '=x': expected key=value$"):
        key_values(["=x"], "-M", form="key=value")
    assert target_names(" owl, ,cat ") == ["owl", "cat"]
    assert target_names(["owl", ""]) == ["owl"]


def test_compute_dtype_is_float32_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import sublim.models as models

    assert models.compute_dtype("cpu") == "float32"
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(models, "pick_device", lambda device: device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert models.compute_dtype("cuda") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert models.compute_dtype("cuda:1") == "float32"


def test_cli_defaults_come_from_the_library() -> None:
    """The parser reads its defaults from the dataclasses: change one there and the CLI follows."""
    from sublim.cli import build_parser
    from sublim.cli_options import defaults_of
    from sublim.training.imprint import ImprintConfig
    from sublim.training.student import TrainConfig

    train = vars(build_parser().parse_args(["train"]))
    imprint = vars(build_parser().parse_args(["imprint"]))
    for key, value in defaults_of(TrainConfig).items():
        if key in train and key not in ("rank", "dropout", "targets"):  # None: "not given", for --full
            assert train[key] == value, key
    for key, value in defaults_of(ImprintConfig).items():
        if key in imprint and key != "out":  # out: runs/teacher-<trait>
            assert imprint[key] == value, key
