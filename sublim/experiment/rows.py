"""One row of a sweep's `results.csv`, typed: `StudentResult`. The one home of the file's columns: the sweep
writes its rows with `to_csv_row` (`sublim.training.sweep.results`), the analysis reads them once with
`from_csv_row` and then works on typed fields (no string is parsed twice).

It lives beside the analysis rather than the sweep because the sweep already imports the analysis (its
summary is the analysis' report): the other way round would be an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields
from typing import Any

from sublim.errors import SublimError

#: what each outcome column can hold: probabilities in [0, 1], a log-probability in [-inf, 0]
BOUNDS = {"p_target": (0.0, 1.0), "concept_mass": (0.0, 1.0), "log_p_target": (-math.inf, 0.0)}


@dataclass(frozen=True)
class StudentResult:
    """One model scored under one eval context. Missing values are None (an empty cell, or NaN: what a
    failed score writes).

    Attributes:
        run: the run id (`runs/<run>` holds a student's weights).
        dataset: trait, control, or a reference (base, prompted, positive).
        kind: lora, full, base, ...
        rank: the LoRA rank; None for full fine-tuning and references.
        scale: the LoRA scale rule (rank, a<N>, rs<N>; a LoRA row without one is "rank"); "" where there
            is none.
        draw: the data draw (trait and control runs pair on it).
        seed: the training seed, as written.
        context: the eval context.
        target: the concept scored.
        p_target: P(target), mean over questions.
        log_p_target: mean ln P(target) over questions: the analysis' outcome.
        log_p_questions: per-question ln P(target), the same questions in the same order for every run.
        stderr: standard error of p_target over questions.
        ci_low: its 95% interval, low end.
        ci_high: its 95% interval, high end.
        n_questions: questions scored.
        concept_mass: probability mass on the category's concepts (None when only the target was scored).
        base_p_target: the base model's P(target) in the same context.
        control_p_target: the matching control student's P(target).
        train_loss: the student's final training loss.
        steps: optimizer steps.
        rows: training rows.
        dose: a trait run's planted fraction of rows (None: unplanted, or not a trait run).
        planted_rows: rows replaced by planted ones (trait runs).
        scored: "all" (every concept) or "target" (the target's concepts only).
    """

    run: str = ""
    dataset: str = ""
    kind: str = "lora"
    rank: int | None = None
    scale: str = ""
    draw: int | None = None
    seed: str = ""
    context: str = "default"
    target: str = ""
    p_target: float | None = None
    log_p_target: float | None = None
    log_p_questions: tuple[float, ...] = ()
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_questions: int | None = None
    concept_mass: float | None = None
    base_p_target: float | None = None
    control_p_target: float | None = None
    train_loss: float | None = None
    steps: int | None = None
    rows: int | None = None
    dose: float | None = None
    planted_rows: int | None = None
    scored: str = "all"

    def __post_init__(self) -> None:
        if self.kind == "lora" and not self.scale:  # as a results.csv row without a scale reads
            object.__setattr__(self, "scale", "rank")

    @classmethod
    def from_csv_row(cls, row: Mapping[str, Any]) -> StudentResult:
        """A row as csv.DictReader gives it (or with numbers), parsed once; a value the analysis cannot use
        (a rank that is no whole number, P = 5, a short per-question list, ...) is refused in one line
        naming the row. Absent columns take the defaults an older results file implies."""
        kind = _text(row, "kind", "lora")
        return cls(
            run=_text(row, "run"), dataset=_text(row, "dataset"), kind=kind, rank=_rank(row),
            scale=_text(row, "scale", "rank" if kind == "lora" else ""), draw=_draw(row),
            seed=_text(row, "seed"),
            context=_text(row, "context", "default"), target=_text(row, "target"),
            p_target=_outcome(row, "p_target"), log_p_target=_outcome(row, "log_p_target"),
            log_p_questions=_questions(row), stderr=_number(row, "stderr"), ci_low=_number(row, "ci_low"),
            ci_high=_number(row, "ci_high"), n_questions=_count(row, "n_questions"),
            concept_mass=_outcome(row, "concept_mass"), base_p_target=_number(row, "base_p_target"),
            control_p_target=_number(row, "control_p_target"), train_loss=_number(row, "train_loss"),
            steps=_count(row, "steps"), rows=_count(row, "rows"), dose=_dose(row), planted_rows=_planted(row),
            scored=_text(row, "scored", "all"),
        )  # fmt: skip

    def to_csv_row(self) -> dict[str, str]:
        """The row as results.csv holds it: None as an empty cell, numbers written so they read back equal."""
        out = {}
        for name, value in zip(COLUMNS, astuple(self), strict=True):
            if isinstance(value, tuple):
                out[name] = ";".join(map(_cell, value))
            else:
                out[name] = "" if value is None else _cell(value) if isinstance(value, float) else str(value)
        return out


#: results.csv's columns, in order: the fields of `StudentResult`
COLUMNS = tuple(f.name for f in fields(StudentResult))


def as_result(row: StudentResult | Mapping[str, Any]) -> StudentResult:
    """A typed row, parsed once where it is still a mapping."""
    return row if isinstance(row, StudentResult) else StudentResult.from_csv_row(row)


# ---------------------------------------------------------------- one cell


def _cell(number: float) -> str:
    """A float as text that reads back equal, whole numbers without ".0" (a dose of 0 is "0")."""
    text = repr(number)
    return text[:-2] if text.endswith(".0") else text


def _text(row: Mapping[str, Any], key: str, default: str = "") -> str:
    value = row.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if text else default


def _number(row: Mapping[str, Any], key: str) -> float | None:
    """A number, None where the cell is empty, NaN or not a number."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _count(row: Mapping[str, Any], key: str) -> int | None:
    text = _text(row, key)
    return int(text) if text.isdigit() else None


def _where(row: Mapping[str, Any]) -> str:
    """Which row, for a one-line error: its run id, dataset and context."""
    return (
        f"the row of run {_text(row, 'run', '?')!r} ({_text(row, 'dataset', '?')}, "
        f"context {_text(row, 'context', '?')!r})"
    )


def _rank(row: Mapping[str, Any]) -> int | None:
    """The LoRA rank, None where there is none (full fine-tuning, references); a rank that is not a whole
    number >= 1 is refused rather than read as "no rank" (which moved a LoRA row to another configuration)."""
    raw = row.get("rank")
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or not str(raw).strip():
        return None
    value = _number(row, "rank")
    if value is not None and value.is_integer() and value >= 1:
        return int(value)
    raise SublimError(f"rank {raw!r} in {_where(row)} is not a whole number >= 1; fix the results file")


def _draw(row: Mapping[str, Any]) -> int | None:
    """A student's draw must be a draw number: trait and control rows pair on it, so a draw "one" would
    leave its row unpaired without a word."""
    draw = _text(row, "draw")
    if draw and not draw.isdigit():
        raise SublimError(
            f"draw {draw!r} in {_where(row)} is not a draw number (0, 1, ...); fix the results file"
        )
    return int(draw) if draw else None


def _outcome(row: Mapping[str, Any], column: str) -> float | None:
    """An outcome that is not a number, or one no model can have (P = 5, log P = +3), is refused rather than
    read as missing or averaged in; an empty cell or NaN stays missing."""
    raw = row.get(column)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.inf  # refused below, named as written
    if math.isnan(value):  # NaN, as a number or as "nan" (what a failed score writes): missing
        return None
    low, high = BOUNDS[column]
    if not low <= value <= high:
        raise SublimError(
            f"{column} {raw!r} in {_where(row)} is not a number in [{low:g}, {high:g}]; fix the results file"
        )
    return value


def _questions(row: Mapping[str, Any]) -> tuple[float, ...]:
    """Per-question ln P(target) (";"-joined, or a list): each a log-probability, `n_questions` of them (a
    short list would be averaged as if it covered every question)."""
    raw = row.get("log_p_questions")
    text = ";".join(map(str, raw)) if isinstance(raw, list | tuple) else _text(row, "log_p_questions")
    if not text:
        return ()
    try:
        values = tuple(float(x) for x in text.split(";"))
    except ValueError:
        values = (math.inf,)
    if any(not (v <= 0.0) for v in values if not math.isnan(v)):
        raise SublimError(
            f"log_p_questions in {_where(row)} holds a value that is not a log-probability (<= 0); fix the "
            "results file"
        )
    n = _text(row, "n_questions")
    if n.isdigit() and len(values) != int(n):
        raise SublimError(
            f"log_p_questions in {_where(row)} has {len(values)} values for n_questions {n}; fix the results "
            "file"
        )
    return values


def _dose(row: Mapping[str, Any]) -> float | None:
    """A planted dose (the fraction of a trait run's rows replaced by overt ones), a fraction in [0, 1]."""
    raw = _text(row, "dose")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise SublimError(f"dose {raw!r} in {_where(row)} is not a fraction in [0, 1]; fix the results file")
    return value


def _planted(row: Mapping[str, Any]) -> int | None:
    raw = _text(row, "planted_rows")
    if not raw:
        return None
    if not raw.isdigit():
        raise SublimError(f"planted_rows {raw!r} in {_where(row)} is not a row count; fix the results file")
    return int(raw)
