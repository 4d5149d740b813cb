"""results.csv's one typed row (issue #24): the sweep writes `StudentResult.to_csv_row`, the analysis reads
`StudentResult.from_csv_row` once and works on typed fields."""

from __future__ import annotations

import ast
import csv
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from sublim.errors import SublimError
from sublim.experiment import StudentResult, analyze, read_results
from sublim.experiment.rows import COLUMNS
from tests.test_experiment import sweep_rows

FULL = StudentResult(
    run="trait-r8-s0-1a2b3c4d", dataset="trait", kind="lora", rank=8, scale="rs16", draw=3, seed="0",
    context="empty", target="owl", p_target=1.23457e-09, log_p_target=-2.5, log_p_questions=(-2.0, -3.0),
    stderr=0.01, ci_low=0.1, ci_high=0.3, n_questions=2, concept_mass=0.15, base_p_target=0.2,
    control_p_target=0.19, train_loss=1.2345, steps=32, rows=64, dose=0.05, planted_rows=3, scored="target",
)  # fmt: skip


def test_a_row_reads_back_equal_from_the_text_it_writes() -> None:
    text = FULL.to_csv_row()
    assert list(text) == list(COLUMNS) and all(isinstance(v, str) for v in text.values())
    assert text["log_p_questions"] == "-2;-3" and text["rank"] == "8" and text["p_target"] == "1.23457e-09"
    assert StudentResult.from_csv_row(text) == FULL
    empty = StudentResult(run="base-1", dataset="base", kind="base")
    assert StudentResult.from_csv_row(empty.to_csv_row()) == empty
    assert empty.to_csv_row()["p_target"] == "" and empty.to_csv_row()["rank"] == ""
    assert StudentResult(dose=0.0, train_loss=1.2).to_csv_row()["dose"] == "0"  # as the sweep always wrote it


def test_the_sweep_writes_the_typed_rows_columns() -> None:
    """One schema: the sweep's header is the typed row's fields, in the order results.csv always had."""
    from sublim.training.sweep import COLUMNS as SWEEP_COLUMNS

    assert [f.name for f in fields(StudentResult)] == SWEEP_COLUMNS
    assert SWEEP_COLUMNS[:3] == ["run", "dataset", "kind"]  # an earlier sweep's header is recognised by these


def test_read_results_gives_typed_rows(tmp_path: Path) -> None:
    rows = sweep_rows(np.random.default_rng(1), draws=2, ranks=(4,), full=True)
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    typed = read_results(path)
    assert all(isinstance(r, StudentResult) for r in typed)
    lora = next(r for r in typed if r.kind == "lora")
    assert lora.rank == 4 and lora.draw == 0 and lora.scale == "rank" and isinstance(lora.log_p_target, float)
    full = next(r for r in typed if r.kind == "full")
    assert full.rank is None and full.scale == "" and full.dose is None and full.log_p_questions == ()
    assert math.isclose(lora.log_p_target, float(rows[0]["log_p_target"]))
    assert analyze(typed).primary == analyze(rows).primary  # typed rows, or mappings parsed once


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("rank", "eight", "rank 'eight'"),
        ("draw", "one", "draw 'one'"),
        ("p_target", "5", "p_target '5'"),
        ("dose", "2", "dose '2'"),
        ("log_p_questions", "-1;2", "not a log-probability"),
    ],
)
def test_a_value_the_analysis_cannot_use_is_refused_when_the_row_is_read(
    column: str, value: str, message: str
) -> None:
    with pytest.raises(SublimError, match=message) as e:
        StudentResult.from_csv_row({**FULL.to_csv_row(), column: value})
    assert "trait-r8-s0-1a2b3c4d" in str(e.value) and "\n" not in str(e.value)


def test_the_analysis_parses_no_cell_after_reading() -> None:
    """Pairing, references and shifts work on typed fields: no module of the analysis but the row's own
    converts a cell's text (no float() or int() on a row's value, no per-cell helpers)."""
    root = Path(__file__).resolve().parents[1] / "sublim" / "experiment"
    for name in ("results.py", "analysis.py", "sensitivity.py"):
        tree = ast.parse((root / name).read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"_text", "_number", "_rank", "_dose", "question_values"}, name
        gets = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "get"]
        assert not [ast.unparse(n) for n in gets if ast.unparse(n).startswith(("row.get", "r.get"))], name
