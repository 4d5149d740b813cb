"""Config dataclasses check their values when made (issue #24): the error names the field, and the CLI shows
the same problem with the flag the user typed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from sublim.errors import ConfigError
from sublim.training.imprint import ImprintConfig
from sublim.training.student import TrainConfig, check_launch
from sublim.training.sweep import SweepConfig


@pytest.mark.parametrize(
    ("make", "field", "message"),
    [
        (lambda: TrainConfig(data="d", rank=0), "rank", "rank=0: must be >= 1"),
        (lambda: TrainConfig(data="d", batch_size=0), "batch_size", "batch_size=0: must be >= 1"),
        (lambda: TrainConfig(data="d", targets=",,"), "targets", "targets=',,': use attn"),
        (lambda: SweepConfig(data="d", draws=0), "draws", "draws=0: must be >= 1"),
        (
            lambda: SweepConfig(data="d", ranks=[], full=False),
            "ranks",
            "nothing to train: give ranks and/or full",
        ),
        (lambda: SweepConfig(data="d", train={"epochs": 0.0}), "train.epochs", "train.epochs=0.0: must be"),
        (lambda: SweepConfig(data="d", primary="8 x"), "primary", "primary='8 x': not a configuration label"),
        (lambda: ImprintConfig(samples=0), "samples", "samples=0: must be >= 1"),
        (lambda: ImprintConfig(trait="owl", control_for="owl"), "control_for", "it needs trait none"),
        # a review of the first version: values that got past it and failed after models loaded
        (lambda: SweepConfig(data="d", seeds=[2**32 - 1], draws=2), "seeds", "must be integers from 0 to"),
        (lambda: SweepConfig(data="d", contexts=["", "default"]), "contexts", "a blank context"),
        (lambda: SweepConfig(data="d", train={"seed": 3}), "train", "'seed' is set by the sweep"),
        (
            lambda: SweepConfig(data="d", plant="p", control="c", plant_doses=[2.0], draw_rows=9),
            "plant_doses",
            "each dose is a fraction",
        ),
        (
            lambda: SweepConfig(data="d", plant="p", control="c", plant_doses=[float("nan")], draw_rows=9),
            "plant_doses",
            "each dose is a fraction",
        ),
        (
            lambda: SweepConfig(data="d", plant="p", control="c", plant_doses=[0.1]),
            "plant_doses",
            "needs draw_rows",
        ),
        (lambda: SweepConfig(data="d", contexts="default"), "contexts", "must be a list of strings"),  # type: ignore[arg-type]
        (lambda: SweepConfig(data="d", ranks=[8.5]), "ranks", "must be a list of integers"),  # type: ignore[list-item]
        (lambda: SweepConfig(data="d", draws=True), "draws", "must be an integer"),
        (lambda: TrainConfig(data="d", seed=-1), "seed", "seed=-1: must be from 0"),
        (lambda: TrainConfig(data="d", rank="8"), "rank", "must be an integer"),  # type: ignore[arg-type]
        (lambda: ImprintConfig(trait="owl", seed=2**33), "seed", "must be an integer from 0"),
        (lambda: ImprintConfig(trait=None), "trait", "must be a concept name"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_value_is_refused_when_the_config_is_made_naming_the_field(
    make: Any, field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        make()
    assert e.value.field == field and message in str(e.value)
    assert isinstance(e.value, ValueError) and "--" not in str(e.value)  # fields, not flags


def test_a_field_set_after_the_config_was_made_is_checked_before_the_run() -> None:
    cfg = TrainConfig(data="d")
    cfg.rank = 0
    with pytest.raises(ConfigError, match=r"^rank=0: must be >= 1$"):
        check_launch(cfg)


def test_flags_are_derived_from_dests_with_overrides_for_the_rest() -> None:
    from sublim.cli_options import field_flags, flag_namer

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("go")
    p.add_argument("--lora-rank", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--context", action="append")
    field_flags(p, contexts="--context")
    flag = flag_namer(parser, parser.parse_args(["go"]))
    assert flag("lora_rank") == "--lora-rank"  # dest lora_rank <-> --lora-rank
    assert flag("contexts") == "--context"  # the override where the field is not the dest
    assert flag("train.epochs") == "--epochs"  # a nested field: its last part
    assert flag("seed") is None  # no such flag: the field keeps its name


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["train", "--rank", "0"], "--rank 0: must be >= 1"),
        (
            ["train", "--batch-size", "0", "--grad-accum", "0"],
            "--batch-size 0: must be >= 1; --grad-accum 0:",
        ),
        (["sweep", "--draws", "0"], "--draws 0: must be >= 1"),
        (["sweep", "--draw-rows", "0"], "--draw-rows 0: must be >= 1"),
        (["sweep", "--epochs", "0"], "--epochs 0.0: must be a finite number > 0"),  # train.epochs
        (["sweep", "--context", "trait-prompt"], "--context 'trait-prompt': the prompted base's label"),
        (["sweep", "--plant-dose", "0.1"], "--plant and --plant-dose go together"),
        (["sweep", "--ranks", "", "--primary", "r3"], "nothing to train: give --ranks and/or --full"),
        (["imprint", "--max-tokens", "0"], "--max-tokens 0: must be >= 1"),
        (
            ["imprint", "--control-for", "owl"],
            "--control-for makes the control teacher: it needs --trait none",
        ),
    ],
)
def test_the_cli_shows_the_field_as_the_flag_the_user_typed(
    argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.cli import main

    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sublim: error: ") and line in err and "\n" not in err
    assert "=" not in err.partition(": error: ")[2].split(":")[0]  # no field=value left unmapped
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("probe", ["divergence", "entangle"])
def test_a_probe_refuses_a_trait_it_does_not_know_before_the_model_loads(
    probe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo would make a "You love zebraas" trait context and a report on it (review of round 3)."""
    from sublim.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text("")
    args = ["probe", probe, "--trait", "zebraa", "--out", str(tmp_path / "out")]
    code = main(args + (["--data", str(data)] if probe == "divergence" else ["smollm2"]))
    err = capsys.readouterr().err
    assert code == 2 and "zebraa" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
