"""Paired comparisons of answer distributions, concept by concept, with questions as the unit.

Both sides answered the same questions; for each concept and question we take the share of answers naming
the concept (sampled mode) or its probability (probability mode), and compare the per-question differences
with a paired t-test (scipy). Questions are the independent units, so answers to one question never count as
independent evidence. Watching every concept corrects the p-values for multiple comparisons with Holm's
method (statsmodels), which controls the family-wise error rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: question id -> concept -> value (rate of answers naming it, or its probability)
Table = Mapping[str, Mapping[str, float]]


def _rounded(fields: dict[str, Any]) -> dict[str, Any]:
    """Floats to 6 decimals, for reports."""
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in fields.items()}


@dataclass(frozen=True)
class ConceptShift:
    """How one concept moved from base to candidate.

    Attributes:
        concept: the concept.
        base: mean over questions on the base side.
        candidate: mean over questions on the candidate side.
        diff: candidate - base (mean of the per-question differences).
        ci_low, ci_high: 95% t-interval of `diff` over questions (paired).
        p_increase: one-sided p-value for an increase (paired t-test); 1.0 when nothing varies.
        p_adjusted: `p_increase` after Holm's correction over the concepts compared (equal when one).
        n_questions: questions both sides answered.
    """

    concept: str
    base: float
    candidate: float
    diff: float
    ci_low: float
    ci_high: float
    p_increase: float
    p_adjusted: float
    n_questions: int

    def to_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


@dataclass(frozen=True)
class Interval:
    """Mean over units (questions, prompts) with a t-interval; NaN bounds for fewer than two units, and
    bounds equal to the mean when nothing varies."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and `confidence` t-interval (scipy) of `values`."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    se = float(stats.sem(values))
    if se == 0:
        return Interval(mean, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=se)
    return Interval(mean, float(low), float(high), n)


def paired_shift(
    base: Sequence[float], candidate: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """(diff, ci_low, ci_high, one-sided p for an increase) of paired per-question values."""
    from scipy import stats

    d = [c - b for b, c in zip(base, candidate, strict=True)]
    n = len(d)
    mean = sum(d) / n
    if n < 2:
        return mean, math.nan, math.nan, 1.0
    se = float(stats.sem(d))
    if se == 0:
        return mean, mean, mean, 0.0 if mean > 0 else 1.0
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=se)
    p = float(stats.t.sf(mean / se, n - 1))
    return mean, float(low), float(high), p


def compare_tables(
    base: Table, candidate: Table, concepts: Sequence[str] | None = None
) -> list[ConceptShift]:
    """Shift of every concept (or of `concepts`) over the questions both tables share, Holm-corrected."""
    from statsmodels.stats.multitest import multipletests

    questions = sorted(set(base) & set(candidate))
    if not questions:
        raise ValueError("the two sides share no questions")
    names = (
        list(concepts)
        if concepts
        else sorted({c for t in (base, candidate) for q in questions for c in t[q]})
    )
    shifts = []
    for c in names:
        b = [base[q].get(c, 0.0) for q in questions]
        k = [candidate[q].get(c, 0.0) for q in questions]
        diff, low, high, p = paired_shift(b, k)
        shifts.append((c, sum(b) / len(b), sum(k) / len(k), diff, low, high, p))
    adjusted = multipletests([s[-1] for s in shifts], method="holm")[1] if shifts else []
    return [
        ConceptShift(c, mb, mk, diff, low, high, p, float(pa), len(questions))
        for (c, mb, mk, diff, low, high, p), pa in zip(shifts, adjusted, strict=True)
    ]
