"""`scripts/replicate.py`: every preset's commands are ones `sublim` accepts (flags drift silently otherwise:
the CPU run takes most of an hour and the GPU preset runs only where a GPU is lent)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sublim.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("preset", ["cpu", "gpu", "tiny"])
def test_every_step_of_a_preset_parses(preset: str) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/replicate.py", "--preset", preset, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    commands = [shlex.split(line) for line in out.splitlines()]
    assert [c[1] for c in commands] == ["imprint", "imprint", "teach", "teach", "sweep"]
    assert "--control-for" in commands[1] and "--teacher" in commands[3]  # a matched, fine-tuned control
    for argv in commands:
        args = build_parser().parse_args(argv[1:])  # argparse exits on an unknown flag
        assert args.func is not None
    sweep = build_parser().parse_args(commands[-1][1:])
    assert sweep.full and sweep.prompted and sweep.positive and sweep.draws >= 2
    assert len(sweep.ranks.split(",")) >= (4 if preset != "tiny" else 2)
