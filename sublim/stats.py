"""Paired comparisons of answer distributions, concept by concept, with questions as the unit.

Both sides answered the same questions; for each concept (or the target) and question we take the share of
answers naming it (sampled mode) or its probability (probability mode), and test the per-question differences
d. Questions are the independent units, so answers to one question never count as independent evidence.

The gate (`shifts`) tests its margin with an exact sign-flip (permutation) test over questions: under
H0: mean(d) = margin each question's d - margin is as likely to lie above the margin as below it, so the sum
of d - margin is referred to its distribution over every assignment of signs (all 2^n when n <= 16, else
`RESAMPLES` random ones from a fixed seed; `scipy.stats.permutation_test` computes the same p-values and the
tests check against it). A concept *regresses* when the one-sided p for mean(d) > margin, Holm-corrected over
the concepts watched, is below alpha; it *passes* when the one-sided upper confidence bound of mean(d) (level
1 - alpha, Bonferroni over the concepts so the bounds hold together; the inverted sign-flip test, an order
statistic of the subset means of d) lies at or below the margin; anything else is *inconclusive*.

Why this test and not a t-test: the t-test is undefined when the differences do not vary, and discrete rates
(k/10 answers) make that common; a rise every question shows (0/10 -> 5/10 on each of 10 questions) is the
strongest evidence there is, and the sign-flip test gives it p = 2^-10. It needs no estimate of the spread, is
exact when each question's difference is symmetric about its mean (both sides sampled alike), and since the t
statistic is a monotone function of the mean under sign flips it is the studentized permutation test,
asymptotically valid for the mean otherwise. A model of within-question binomial noise was the alternative: it
needs each question's answer count, has no noise at 0/k or k/k (the unanimous case again), and does not apply
to probability mode, where questions are the only source of variation. The cost: with n questions no p-value
falls below 2^-n, so fewer than about log2(m / alpha) questions can neither pass nor fail m concepts.

Each shift also carries the minimum detectable shift: the true mean(d) at which a one-sided t-test with these
questions and this spread fails the gate with 80% power (statsmodels `TTestPower`; the sign-flip test is
asymptotically as powerful, and the tests check the gate reaches that power in simulation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: question id -> concept -> value (rate of answers naming it, or its probability)
Table = Mapping[str, Mapping[str, float]]
Verdict = Literal["pass", "regression", "inconclusive"]
POWER = 0.8
#: questions up to which the sign-flip test enumerates every sign assignment (2^16 = 65,536)
EXACT_MAX = 16
#: random sign assignments above that (more when many concepts need a smaller p), from a fixed seed
RESAMPLES = 9_999
SEED = 20261207


def _rounded(fields: dict[str, Any]) -> dict[str, Any]:
    """Floats to 6 decimals, NaN and infinite bounds to None (JSON has neither), for reports."""
    return {
        k: (
            None
            if isinstance(v, float) and not math.isfinite(v)
            else round(v, 6)
            if isinstance(v, float)
            else v
        )
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
        ci_low, ci_high: 95% sign-flip interval of `diff` over questions (two-sided, paired); infinite when
            too few questions bound it.
        upper: one-sided upper confidence bound of `diff` at level 1 - alpha (Bonferroni over the concepts),
            from the same test; infinite when too few questions bound it.
        p_increase: one-sided sign-flip p-value for diff > margin.
        p_adjusted: `p_increase` after Holm's correction over the concepts compared (equal when one).
        mde: minimum detectable shift: the true diff this test catches with 80% power (NaN without spread;
            infinite when too few questions let the sign-flip test reach alpha over the concepts at all).
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


def nanmean(values: Iterable[float]) -> float:
    """The mean of the values that are not NaN (a missing score), NaN when none is left: the one home for
    averaging results where some runs failed."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


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
    """A one-sided test of per-question differences d against a margin: the t-test (`paired_shift`) or the
    gate's sign-flip test (`sign_flip_shift`, see the module docstring).

    Attributes:
        diff: mean(d).
        ci_low, ci_high: two-sided `confidence` interval of mean(d) (sign-flip: infinite when
            n cannot bound it).
        upper: one-sided upper bound at level 1 - alpha.
        p: one-sided p-value for mean(d) > margin.
        sd: standard deviation of d (for the minimum detectable shift).
        n: questions.
    """

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


@lru_cache(maxsize=4)  # a few designs at a time: each is up to n x R floats
def _signs(n: int, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Which questions each sign assignment flips (columns, 1.0 = flipped) and how many: all 2^n
    assignments when n <= EXACT_MAX or 2^n <= resamples + 1, else `resamples` random ones (fixed seed) plus
    the observed one."""
    import numpy as np

    if n <= EXACT_MAX or 2**n <= resamples + 1:
        flips = ((np.arange(2**n)[None, :] >> np.arange(n)[:, None]) & 1).astype(float)
    else:
        drawn = np.random.default_rng(SEED).integers(0, 2, (n, resamples)).astype(float)
        flips = np.hstack([np.zeros((n, 1)), drawn])
    sizes = flips.sum(axis=0)
    flips.setflags(write=False)
    sizes.setflags(write=False)
    return flips, sizes


def resamples_for(m: int, alpha: float) -> int:
    """Random sign assignments enough that the smallest p-value (1 / (R + 1)) clears Holm's first step
    (alpha / m) four times over; p-values of random assignments stay valid at any R, fewer cost only power."""
    return max(RESAMPLES, math.ceil(4 * max(m, 1) / alpha))


def _pvalues(sums: np.ndarray, sizes: np.ndarray, margin: float, tol: np.ndarray) -> tuple[Any, Any]:
    """From each assignment's sum of d over the flipped set A: flipping A moves the sum of d - margin by
    -2 * sum_A (d - margin), so an assignment is as extreme as the observed one when sum_A (d - margin) <= 0
    (for mean(d) > margin; >= 0 for mean(d) < margin). Ties count as extreme (conservative)."""
    centred = sums - margin * sizes
    return (centred <= tol).mean(axis=-1), (centred >= -tol).mean(axis=-1)


def sign_flip_pvalues(
    diffs: npt.ArrayLike, margin: float = 0.0, resamples: int = RESAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided sign-flip p-values of mean(d) > margin and of mean(d) < margin, per row of `diffs`
    (rows: comparisons; columns: questions): what `shifts` decides on, vectorised for simulations."""
    import numpy as np

    d = np.atleast_2d(np.asarray(diffs, dtype=float))
    flips, sizes = _signs(d.shape[1], resamples)
    tol = 1e-9 * (1.0 + np.abs(d).sum(axis=1, keepdims=True))
    greater, less = np.empty(len(d)), np.empty(len(d))
    for start in range(0, len(d), 64):  # bounded memory
        rows = slice(start, start + 64)
        greater[rows], less[rows] = _pvalues(d[rows] @ flips, sizes, margin, tol[rows])
    return greater, less


def sign_flip_shift(
    base: Sequence[float],
    candidate: Sequence[float],
    margin: float = 0.0,
    alpha: float = 0.05,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> PairedTest:
    """Paired per-question values: the sign-flip test of candidate - base against `margin`, and its bounds."""
    d = [c - b for b, c in zip(base, candidate, strict=True)]
    [test] = sign_flip_tests([d], margin, alpha, confidence, resamples)
    return test


def sign_flip_tests(
    diffs: Sequence[Sequence[float]],
    margin: float = 0.0,
    alpha: float = 0.05,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> list[PairedTest]:
    """`sign_flip_shift` for many series of per-question differences at once (rows; same questions).

    A bound inverts the test: mu lies at or below the upper bound while the test of mean(d) < mu does not
    reject at its level, i.e. while at least level * N of the N assignments have a flipped-set mean of
    d >= mu; so the bound is an order statistic of the subset means (the empty set counts as +-infinity)."""
    import numpy as np

    d = np.asarray(diffs, dtype=float).reshape(len(diffs), -1)
    n = d.shape[1]
    if n < 2:
        raise ValueError("a paired test needs at least two questions")
    flips, sizes = _signs(n, resamples)
    total = len(sizes)
    tail = (1 - confidence) / 2
    need = {lvl: max(math.ceil(lvl * total - 1e-9), 1) for lvl in (tail, alpha)}  # assignments at the bound
    kth_high = sorted({total - need[tail], total - need[alpha]})
    empty = sizes == 0
    out = []
    chunk = max(1, 4_000_000 // total)  # bounded memory: rows x assignments
    for start in range(0, len(d), chunk):
        rows = d[start : start + chunk]
        sums = rows @ flips
        tol = 1e-9 * (1.0 + np.abs(rows).sum(axis=1, keepdims=True))
        greater, _ = _pvalues(sums, sizes, margin, tol)
        means = sums / np.maximum(sizes, 1)
        means[:, empty] = np.inf
        high = np.partition(means, kth_high, axis=1)
        means[:, empty] = -np.inf
        low = np.partition(means, need[tail] - 1, axis=1)[:, need[tail] - 1]
        for k, row in enumerate(rows):
            mean = float(row.mean())
            spread = float(np.std(row, ddof=1))
            if spread <= 1e-12 * max(1.0, abs(mean)):  # no spread beyond rounding
                spread = 0.0
            ci_high, upper = (float(high[k, total - need[lvl]]) for lvl in (tail, alpha))
            out.append(PairedTest(mean, float(low[k]), ci_high, upper, float(greater[k]), spread, n))
    return out


def shifts(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], margin: float = 0.0, alpha: float = 0.05
) -> list[ConceptShift]:
    """The gate over named paired series (name -> (base values, candidate values) per question)."""
    m = max(len(series), 1)
    diffs = [[y - x for x, y in zip(b, c, strict=True)] for b, c in series.values()]
    # the upper bounds hold together (Bonferroni)
    tests = sign_flip_tests(diffs, margin, alpha / m, resamples=resamples_for(m, alpha)) if diffs else []
    adjusted = holm([t.p for t in tests])
    out = []
    for (name, (b, c)), t, pa in zip(series.items(), tests, adjusted, strict=True):
        verdict: Verdict
        if pa < alpha:
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
                # no p-value of the sign-flip test falls below 2^-n: with too few questions no rise is
                # detectable at alpha / m, however large (infinite; None in JSON)
                minimum_detectable_shift(t.sd, t.n, margin, alpha / m)
                if 2.0**-t.n <= alpha / m
                else math.inf,
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
