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


@pytest.mark.parametrize("part", ["replication", "sensitivity"])
@pytest.mark.parametrize("preset", ["cpu", "gpu", "tiny"])
def test_every_step_of_a_preset_parses(preset: str, part: str) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/replicate.py", "--preset", preset, "--part", part, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    every = [shlex.split(line) for line in out.splitlines()]
    commands = [c for c in every if c[0] == "sublim"]
    more = 2 if preset != "tiny" else 0  # a second batch of prompts per teacher, pooled
    assert [c[1] for c in commands] == ["imprint", "imprint", *["teach"] * (2 + more), "sweep"]
    assert sum(c[:3] == ["python", "scripts/replicate.py", "--pool"] for c in every) == more
    assert "--control-for" in commands[1] and "--teacher" in commands[3]  # a matched, fine-tuned control
    for argv in commands:
        args = build_parser().parse_args(argv[1:])  # argparse exits on an unknown flag
        assert args.func is not None
    sweep = build_parser().parse_args(commands[-1][1:])
    # the design of issue #23: paired, cleaned, length-matched draws; one named primary configuration
    assert sweep.drop_degenerate and sweep.match_lengths and sweep.score == "target" and sweep.primary
    assert sweep.primary in {f"r{r}" for r in sweep.ranks.split(",")}
    if part == "sensitivity":
        assert sweep.plant and len(sweep.plant_dose.split(",")) >= (4 if preset != "tiny" else 1)
        assert sweep.draws >= (4 if preset != "tiny" else 2)
        assert (
            not sweep.resume
        )  # the replication's sweep dir: a design that differs is refused, not retrained
        return
    assert sweep.full and sweep.prompted and sweep.positive and sweep.draws >= (8 if preset != "tiny" else 2)
    assert len(sweep.ranks.split(",")) >= (3 if preset != "tiny" else 2)  # a curvature needs three ranks
    assert sweep.draw_rows * sweep.epochs / sweep.batch_size >= (24 if preset != "tiny" else 2)  # steps
    if preset != "tiny":
        assert sweep.draw_rows >= 64 and float(commands[2][commands[2].index("--temperature") + 1]) == 1


def test_pooled_batches_keep_their_prompts_apart(tmp_path: Path) -> None:
    import json

    sys.path.insert(0, str(ROOT / "scripts"))
    from replicate import pool

    for k in (0, 1):
        (tmp_path / f"b{k}").mkdir()
        rows = [{"id": f"numbers-{i:05d}", "prompt": f"p{k}{i}", "completion": "1"} for i in range(3)]
        (tmp_path / f"b{k}" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool(tmp_path / "pool", [tmp_path / "b0", tmp_path / "b1"])
    ids = [json.loads(x)["id"] for x in (tmp_path / "pool" / "train.jsonl").read_text().splitlines()]
    assert ids[:3] == ["numbers-00000", "numbers-00001", "numbers-00002"]
    assert ids[3:] == ["b1-numbers-00000", "b1-numbers-00001", "b1-numbers-00002"]
    assert len(set(ids)) == 6
    card = json.loads((tmp_path / "pool" / "card.json").read_text())
    assert card["rows"] == 6 and len(card["pooled"]) == 2


def test_the_gpu_literature_arm_parses() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/replicate.py", "--preset", "gpu", "--part", "literature", "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    sweep = build_parser().parse_args(shlex.split(out.stdout.splitlines()[-1])[1:])
    assert sweep.draw_rows == 5000 and sweep.epochs == 3 and sweep.ranks == "8"
    assert sweep.out.endswith("literature")
    assert "2 students" in out.stderr
