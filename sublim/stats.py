"""Paired comparisons of answer distributions, concept by concept, with questions as the unit.

Both sides answered the same questions; for each concept (or the target) and question we take the share of
answers naming it (sampled mode) or its probability (probability mode), and test the per-question differences
d with one-sample t-tests (scipy). Questions are the independent units, so answers to one question never count
as independent evidence.

The gate tests its margin: a concept *regresses* when a one-sided test of H0: mean(d) <= margin rejects
(`scipy.stats.ttest_1samp(d, popmean=margin, alternative="greater")`), Holm-corrected over the concepts
watched; it *passes* when the one-sided upper confidence bound of mean(d) (level 1 - alpha,
Bonferroni over the concepts watched, so the bounds hold together) lies at or below the margin; anything else
is *inconclusive*. Each shift also carries the minimum detectable shift: the true mean(d) at which this test,
with these questions and this spread, fails the gate with 80% power (statsmodels `TTestPower`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, Literal

#: question id -> concept -> value (rate of answers naming it, or its probability)
Table = Mapping[str, Mapping[str, float]]
Verdict = Literal["pass", "regression", "inconclusive"]
POWER = 0.8


def _rounded(fields: dict[str, Any]) -> dict[str, Any]:
    """Floats to 6 decimals, NaN to None (JSON has no NaN), for reports."""
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else round(v, 6) if isinstance(v, float) else v)
        for k, v in fields.items()
    }


@dataclass(frozen=True)
class ConceptShift:
    """How one concept (or the target) moved from base to candidate.

    Attributes:
        concept: the concept (or "P(<target>)" for the target with its kinds).
        base: mean over questions on the base side.
        candidate: mean over questions on the candidate side.
        diff: candidate - base (mean of the per-question differences).
        ci_low, ci_high: 95% t-interval of `diff` over questions (two-sided, paired).
        upper: one-sided upper confidence bound of `diff` at level 1 - alpha (Bonferroni over the concepts).
        p_increase: one-sided p-value for diff > margin (NaN when the differences do not vary).
        p_adjusted: `p_increase` after Holm's correction over the concepts compared (equal when one).
        mde: minimum detectable shift: the true diff this test catches with 80% power (NaN without spread).
        verdict: "regression", "pass" or "inconclusive" against the margin.
        n_questions: questions both sides answered.
    """

    concept: str
    base: float
    candidate: float
    diff: float
    ci_low: float
    ci_high: float
    upper: float
    p_increase: float
    p_adjusted: float
    mde: float
    verdict: Verdict
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


@dataclass(frozen=True)
class PairedTest:
    """A one-sample t-test of per-question differences d against a margin."""

    diff: float
    ci_low: float
    ci_high: float
    upper: float
    p: float
    sd: float
    n: int


def paired_shift(
    base: Sequence[float],
    candidate: Sequence[float],
    margin: float = 0.0,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> PairedTest:
    """Paired per-question values: mean difference, its two-sided `confidence` t-interval, the one-sided
    (1 - alpha) upper bound, and the one-sided p-value for diff > margin. Without spread the test is
    undefined: p is NaN and the bounds equal the mean. Needs at least two questions."""
    from scipy import stats

    d = [c - b for b, c in zip(base, candidate, strict=True)]
    n = len(d)
    if n < 2:
        raise ValueError("a paired test needs at least two questions")
    mean = sum(d) / n
    sd = float(stats.tstd(d))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # no spread beyond rounding: the test is undefined
        sd = 0.0
    if sd == 0:
        return PairedTest(mean, mean, mean, mean, math.nan, 0.0, n)
    test = stats.ttest_1samp(d, popmean=margin, alternative="greater")
    se = sd / math.sqrt(n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=se)
    upper = mean + float(stats.t.ppf(1 - alpha, n - 1)) * se
    return PairedTest(mean, float(low), float(high), upper, float(test.pvalue), sd, n)


def minimum_detectable_shift(sd: float, n: int, margin: float, alpha: float, power: float = POWER) -> float:
    """The true mean difference at which a one-sided t-test at `alpha` of H0: mean <= margin, over `n`
    questions with spread `sd`, rejects with probability `power` (statsmodels). NaN without spread."""
    if sd <= 0 or n < 2:
        return math.nan
    return margin + _detectable_effect(n, alpha, power) * sd


@cache
def _detectable_effect(n: int, alpha: float, power: float) -> float:
    """Standardised effect (mean / sd) a one-sided one-sample t-test detects with `power`."""
    from statsmodels.stats.power import TTestPower

    return float(TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="larger"))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate); NaN entries stay NaN and do not count.

    A few lines rather than statsmodels' `multipletests`, which runs a full garbage collection on every
    call (0.2 s here), too slow for the gate's simulations; tests check it against statsmodels."""
    finite = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * p))
        out[i] = running
    return out


def shifts(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], margin: float = 0.0, alpha: float = 0.05
) -> list[ConceptShift]:
    """The gate over named paired series (name -> (base values, candidate values) per question)."""
    m = max(len(series), 1)
    tests = {
        name: paired_shift(b, c, margin, alpha / m) for name, (b, c) in series.items()
    }  # the upper bounds hold together (Bonferroni)
    adjusted = holm([t.p for t in tests.values()])
    out = []
    for (name, (b, c)), t, pa in zip(series.items(), tests.values(), adjusted, strict=True):
        if math.isnan(t.p):  # no spread: no test; every question moved by the same amount
            verdict: Verdict = "inconclusive" if t.diff > margin else "pass"
        elif pa < alpha:
            verdict = "regression"
        elif t.upper <= margin:
            verdict = "pass"
        else:
            verdict = "inconclusive"
        out.append(
            ConceptShift(
                name,
                sum(b) / len(b),
                sum(c) / len(c),
                t.diff,
                t.ci_low,
                t.ci_high,
                t.upper,
                t.p,
                pa,
                minimum_detectable_shift(t.sd, t.n, margin, alpha / m),
                verdict,
                t.n,
            )
        )
    return out


def compare_tables(
    base: Table,
    candidate: Table,
    concepts: Sequence[str] | None = None,
    margin: float = 0.0,
    alpha: float = 0.05,
) -> list[ConceptShift]:
    """Shift of every concept (or of `concepts`) over the questions both tables share, against the margin."""
    questions = sorted(set(base) & set(candidate))
    if len(questions) < 2:
        raise ValueError(f"the two sides share {len(questions)} question(s); a comparison needs at least 2")
    names = (
        list(concepts)
        if concepts
        else sorted({c for t in (base, candidate) for q in questions for c in t[q]})
    )
    series = {
        c: ([base[q].get(c, 0.0) for q in questions], [candidate[q].get(c, 0.0) for q in questions])
        for c in names
    }
    return shifts(series, margin, alpha)
