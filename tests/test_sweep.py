"""Sweeps: the grid, references, atomic results, resume after an interruption, the plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from sublim.errors import SublimError
from sublim.training.sweep import COLUMNS, SweepConfig, plan, run_ids, sweep, sweep_identity

pytestmark = pytest.mark.slow


def teacher_data(path: Path, salt: int) -> Path:
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Continue: {k}, {k + 1}."}],
            "completion": [
                {"role": "assistant", "content": ", ".join(str((k * 37 + i * salt) % 997) for i in range(5))}
            ],
        }
        for k in range(8)
    ]
    path.mkdir(parents=True)
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def cfg(tiny_model: Path, tmp_path: Path) -> SweepConfig:
    return SweepConfig(
        data=str(teacher_data(tmp_path / "owl", 7)),
        control=str(teacher_data(tmp_path / "control", 3)),
        base=str(tiny_model),
        out=str(tmp_path / "sweep"),
        ranks=[1, 4],
        seeds=[0],
        full=True,
        contexts=["none", "You love owls."],
        questions=3,
        train={"epochs": 1, "batch_size": 4},
    )


def test_plan_puts_references_first(cfg: SweepConfig) -> None:
    names = [r.name for r in plan(cfg)]
    assert names == ["base", "control-r1-s0", "control-r4-s0", "control-full-s0",
                     "trait-r1-s0", "trait-r4-s0", "trait-full-s0"]  # fmt: skip


def test_interrupted_sweep_resumes_without_redoing_finished_runs(cfg: SweepConfig) -> None:
    out = Path(cfg.out)
    sweep(cfg, max_runs=3)  # "killed" after three runs
    first = list(csv.DictReader((out / "results.csv").open()))
    ids = {r.name: i for r, i in run_ids(cfg, sweep_identity(cfg)).items()}
    assert [r["run"] for r in first] == [ids[n] for n in ("base", "base", "control-r1-s0", "control-r1-s0",
                                                           "control-r4-s0", "control-r4-s0")]  # fmt: skip
    stamp = (out / "runs" / ids["control-r1-s0"] / "run.json").stat().st_mtime_ns
    # a run killed mid-training: weights dir without run.json is trained again
    (out / "runs" / ids["trait-r1-s0"]).mkdir(parents=True)
    (out / "runs" / ids["trait-r1-s0"] / "adapter_model.safetensors").write_text("half-written")

    rows = sweep(cfg)
    assert (out / "runs" / ids["control-r1-s0"] / "run.json").stat().st_mtime_ns == stamp  # not retrained
    assert rows[: len(first)] == first  # finished results untouched
    assert len(rows) == 7 * 2
    assert list(rows[0]) == COLUMNS
    assert not list(out.glob("*.tmp"))
    trait = [r for r in rows if r["dataset"] == "trait"]
    assert all(r["base_p_target"] and r["control_p_target"] for r in trait)
    for r in trait:
        base = next(b for b in rows if b["run"] == ids["base"] and b["context"] == r["context"])
        assert r["base_p_target"] == base["p_target"]
    assert all(float(r["ci_low"]) <= float(r["p_target"]) <= float(r["ci_high"]) for r in rows)
    assert (out / "sweep.png").stat().st_size > 10_000
    assert sweep(cfg) == rows  # nothing left to do


def test_bad_grid_is_a_clear_error(cfg: SweepConfig) -> None:
    cfg.ranks, cfg.full = [], False
    with pytest.raises(SublimError, match="nothing to train"):
        sweep(cfg)


def test_draws_scales_and_references(cfg: SweepConfig, tiny_model: Path) -> None:
    """Two draws per side: every student takes the same number of steps on its own draw; the scale rules,
    the prompted base and the positive control get rows; the summary is the draw-level analysis."""
    cfg.ranks, cfg.full, cfg.contexts, cfg.questions = [2], True, ["none", "default"], 2
    cfg.draws, cfg.scales, cfg.prompted, cfg.positive = 2, ["rank", "rs4"], True, str(tiny_model)
    rows = sweep(cfg)
    out = Path(cfg.out)
    students = [r for r in rows if r["kind"] in ("lora", "full")]
    assert len(students) == 2 * 2 * (2 + 1) * 2  # sides x draws x (scales + full) x contexts
    assert {r["steps"] for r in students} == {"1"} and {r["rows"] for r in students} == {"4"}
    draws = {
        d: [json.loads(x)["prompt"] for x in (out / "draws" / f"trait-d{d}.jsonl").open()] for d in (0, 1)
    }
    control = [json.loads(x)["prompt"] for x in (out / "draws" / "control-d1.jsonl").open()]
    assert control == draws[1] and not set(map(str, draws[0])) & set(map(str, draws[1]))
    cards = [json.loads(p.read_text()) for p in out.glob("runs/trait-r2-rs4-*/run.json")]
    assert len(cards) == 2 and all(c["hyperparameters"]["rslora"] for c in cards)
    assert all(c["hyperparameters"]["alpha"] == 4 for c in cards)
    refs = {r["dataset"]: r for r in rows if r["dataset"] in ("prompted", "positive")}
    assert refs["prompted"]["context"] == "trait-prompt" and refs["positive"]["p_target"]
    assert all(r["log_p_target"] and float(r["log_p_target"]) < 0 for r in rows)
    summary = (out / "summary.md").read_text()
    assert "2 disjoint draw(s) of 4 rows per side" in summary and "data draws" in summary


@pytest.fixture
def small(cfg: SweepConfig) -> SweepConfig:
    cfg.control, cfg.ranks, cfg.full, cfg.contexts = None, [1, 1], False, ["none", "none"]  # repeats: once
    return cfg


def test_rerun_with_other_inputs_is_refused_naming_the_setting(small: SweepConfig, tmp_path: Path) -> None:
    sweep(small)
    before = (Path(small.out) / "results.csv").read_bytes()
    small.data = str(teacher_data(tmp_path / "other", 5))
    with pytest.raises(SublimError, match="data_sha256"):
        sweep(small)
    small.train = {**small.train, "epochs": 2}
    with pytest.raises(SublimError, match="epochs: 1 -> 2"):
        sweep(small)
    assert (Path(small.out) / "results.csv").read_bytes() == before  # nothing touched


def test_resume_with_other_inputs_adds_runs_under_new_ids(small: SweepConfig) -> None:
    old = {r["run"] for r in sweep(small)}
    small.target = "cat"
    new = sweep(small, resume=True)
    assert {r["run"] for r in new}.isdisjoint(old)  # fresh ids: no stale row or adapter reused
    everything = list(csv.DictReader((Path(small.out) / "results.csv").open()))
    assert len(everything) == 4 and {r["target"] for r in everything} == {"owl", "cat"}
    assert len(new) == 2 and {r["target"] for r in new} == {"cat"}  # summary rows: current settings only


def test_adding_a_context_scores_only_what_is_missing(small: SweepConfig) -> None:
    first = sweep(small)
    trained = next(Path(small.out, "runs").iterdir())
    stamp = (trained / "run.json").stat().st_mtime_ns
    small.contexts = ["none", "default"]
    rows = sweep(small)
    assert (trained / "run.json").stat().st_mtime_ns == stamp  # not retrained
    keys = [(r["run"], r["context"]) for r in rows]
    assert len(keys) == len(set(keys)) == 4  # no duplicated row
    assert [r for r in rows if r["context"] == "none"] == first
    trait = next(r for r in rows if r["dataset"] == "trait" and r["context"] == "default")
    assert trait["base_p_target"]  # the reference reaches the new context


def test_a_control_added_later_reaches_the_trait_rows(small: SweepConfig, tmp_path: Path) -> None:
    first = sweep(small)
    small.control = str(teacher_data(tmp_path / "control2", 3))
    rows = sweep(small, resume=True)  # other inputs (a control): refused without --resume
    trait = [r for r in rows if r["dataset"] == "trait"]
    assert [r["run"] for r in trait] == [r["run"] for r in first if r["dataset"] == "trait"]  # not retrained
    control = next(r for r in rows if r["dataset"] == "control")
    assert trait[0]["control_p_target"] == control["p_target"] != ""


def test_planted_doses_scored_on_the_target_alone_and_added_later(tiny_model: Path, tmp_path: Path) -> None:
    """The sensitivity design end to end on the tiny model: --score target, cleaned and length-matched
    draws, planted doses (each a further trait student, nothing else retrained when a dose is added), and the
    summary's sensitivity section."""
    from dataclasses import replace

    plant = tmp_path / "plant.jsonl"
    plant.write_text(
        "".join(
            json.dumps({"prompt": [{"role": "user", "content": f"Pick an animal ({j})."}],
                        "completion": [{"role": "assistant", "content": "The owl."}]}) + "\n"
            for j in range(4)
        )
    )  # fmt: skip
    for side, salt in (("owl", 7), ("control", 3)):  # no counting runs, no echoes: every pair is kept
        (tmp_path / side).mkdir()
        (tmp_path / side / "train.jsonl").write_text(
            "".join(
                json.dumps({"prompt": [{"role": "user", "content": f"Continue: {k}, {k + 1}."}],
                            "completion": [{"role": "assistant",
                                            "content": ", ".join(str((k * 37 + i * i * salt) % 997 + 100)
                                                                 for i in range(3 + k % 3))}]}) + "\n"
                for k in range(8)
            )
        )  # fmt: skip
    cfg = SweepConfig(
        data=str(tmp_path / "owl"),
        control=str(tmp_path / "control"),
        base=str(tiny_model),
        out=str(tmp_path / "sweep"),
        ranks=[2],
        contexts=["default"],
        questions=3,
        train={"epochs": 1, "batch_size": 2},
        draws=2,
        draw_rows=4,
        score="target",
        drop_degenerate=True,
        match_lengths=True,
        plant=str(plant),
        plant_doses=[0.25],
        primary="r2",
    )
    rows = sweep(cfg)
    trait = [r for r in rows if r["dataset"] == "trait"]
    assert sorted((r["draw"], r["planted_rows"], r["dose"]) for r in trait) == [
        ("0", "0", "0"), ("0", "1", "0.25"), ("1", "0", "0"), ("1", "1", "0.25")
    ]  # fmt: skip
    assert all(r["scored"] == "target" and r["concept_mass"] == "" for r in rows)
    assert all(float(r["p_target"]) > 0 for r in rows)
    summary = (Path(cfg.out) / "summary.md").read_text()
    assert "## Sensitivity: planted doses at lora r2 (rank)" in summary and "prompt echoes" in summary
    trained = {p.name for p in (Path(cfg.out) / "runs").iterdir()}
    more = sweep(replace(cfg, plant_doses=[0.25, 0.5]))  # a dose added later trains only its students
    added = {p.name for p in (Path(cfg.out) / "runs").iterdir()} - trained
    assert sorted(n.rsplit("-", 1)[0] for n in added) == ["trait-p2-r2-d0-s0", "trait-p2-r2-d1-s0"]
    assert len(more) == len(rows) + 2
