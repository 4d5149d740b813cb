"""The sensitivity curve: how often the pipeline detects a planted dose of overt trait rows.

A sweep that plants doses replaces a known fraction of one configuration's trait rows with rows that state the
trait overtly (`dose` > 0 in results.csv; dose 0 is the unplanted trait run). Over the trait runs of that one
configuration and context, per dose:

- Δ = trait at that dose - the control of the same draw, on ln P(target): mean and 95% t-interval over draws;
- detection: in each draw, a one-sided exact sign-flip test over QUESTIONS of the per-question differences
  (student's ln P(target) - its draw's control's), at alpha (`sublim.stats.sign_flip_pvalues`, the gate's
  test); the detection rate is the fraction of draws that detect, with a Clopper-Pearson interval over draws
  (statsmodels `proportion_confint(method="beta")`). At dose 0 that rate is the false-alarm rate.

The smallest tested dose whose detection rate reaches 80% is reported, and a logistic regression of detection
on dose (statsmodels GLM, Binomial) estimates the dose at 80% power when the fit exists: it needs three doses
and overlap between detected and missed draws (with complete separation the slope is unbounded).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sublim.errors import SublimError
from sublim.experiment.results import Pairs, by_draw, config_label, draw_order, pair_rows
from sublim.experiment.rows import StudentResult
from sublim.stats import mean_interval

#: detection rate a dose must reach to count as detected "with 80% power"
TARGET_POWER = 0.8


@dataclass(frozen=True)
class DoseResult:
    """One dose of the sensitivity curve.

    Attributes:
        dose: fraction of the trait side's rows replaced by planted rows (0: unplanted).
        planted_rows: planted rows per student as the runs report them ("" when not reported; "a-b" when
            they differ across draws).
        draws: data draws with a trait run at this dose and its control.
        delta_log_p, ci_low, ci_high: mean Δ ln P(target) and its 95% t-interval over draws.
        tested: draws with per-question values (the detection test needs them).
        detected: draws whose sign-flip test over questions detects at alpha.
        rate, rate_low, rate_high: detected / tested and its 95% Clopper-Pearson interval over draws.
    """

    dose: float
    planted_rows: str
    draws: int
    delta_log_p: float
    ci_low: float
    ci_high: float
    tested: int
    detected: int
    rate: float
    rate_low: float
    rate_high: float


@dataclass(frozen=True)
class Sensitivity:
    """The dose-response curve of one configuration and context.

    Attributes:
        config, context: the configuration that carries the doses and the context scored.
        alpha: level of each draw's detection test.
        doses: one entry per dose, ascending.
        false_alarm: detection rate at dose 0 (NaN without unplanted runs with per-question values).
        smallest_detected: the smallest tested dose > 0 whose detection rate is >= 0.8 (None if none).
        dose_at_power: the logistic fit's dose at 80% detection (NaN when the fit is not usable).
        fit_note: why the fit is not usable, or how far to trust it.
        questions: questions per draw behind the detection test.
    """

    config: str
    context: str
    alpha: float
    doses: list[DoseResult] = field(default_factory=list)
    false_alarm: float = math.nan
    smallest_detected: float | None = None
    dose_at_power: float = math.nan
    fit_note: str = ""
    questions: int = 0

    @property
    def smallest_p(self) -> float:
        """The sign-flip test's smallest one-sided p-value over these questions: 2**-n when it enumerates
        every sign assignment (every difference of one sign), 1 / (resamples + 1) when it samples them."""
        from sublim.stats import EXACT_MAX, RESAMPLES

        n = self.questions
        return 2.0**-n if n <= EXACT_MAX or 2**n <= RESAMPLES + 1 else 1.0 / (RESAMPLES + 1)

    @property
    def reachable(self) -> bool:
        """Whether a draw can be detected at all (with 4 questions or fewer at alpha 0.05 every detection
        rate is 0 whatever the dose)."""
        return self.questions == 0 or self.smallest_p < self.alpha


def sensitivity(
    rows: Iterable[StudentResult | Mapping[str, Any]], *, context: str | None = None, alpha: float = 0.05
) -> Sensitivity | None:
    """The sensitivity curve of a sweep's rows; None when no trait run carries a dose > 0."""
    pairs, _ = pair_rows(rows)
    if context is not None and context not in pairs.contexts:
        raise SublimError(f"--context {context!r}: the rows hold {', '.join(map(repr, pairs.contexts))}")
    return sensitivity_of(pairs, context, alpha)


def sensitivity_of(
    pairs: Pairs, context: str | None, alpha: float, prefer: tuple[str, int | None, str] | None = None
) -> Sensitivity | None:
    """The curve from paired rows, in `context` when doses were scored there (else where they were); when
    several configurations carry doses, the one `prefer` names (the primary configuration)."""
    import numpy as np

    from sublim.stats import sign_flip_pvalues

    planted = sorted({key for key, dose in pairs.log_p if dose > 0})
    if not planted:
        return None
    here = [k for k in planted if k[3] == context] or [k for k in planted if k[3] == planted[0][3]]
    configs = sorted({k[:3] for k in here}, key=lambda c: (c[0], c[1] or 0, c[2]))
    if len(configs) > 1 and prefer in configs:
        configs, here = [prefer], [k for k in here if k[:3] == prefer]
    if len(configs) > 1:
        names = ", ".join(config_label(*c) for c in configs)
        raise SublimError(f"planted doses at {len(configs)} configurations ({names}); a sensitivity curve "
                          "is over one: analyze each configuration's rows apart")  # fmt: skip
    key = here[0]
    doses = sorted(d for k, d in pairs.log_p if k == key)
    out, points, questions = [], [], 0
    for dose in doses:
        per_draw = pairs.log_p[(key, dose)]
        ci = mean_interval(by_draw(per_draw))
        qs = pairs.questions.get((key, dose), {})
        draws = sorted(qs, key=draw_order)
        hits: list[bool] = []
        if draws and len({len(qs[d]) for d in draws}) == 1 and len(qs[draws[0]]) >= 2:
            greater, _ = sign_flip_pvalues(np.asarray([qs[d] for d in draws]))
            hits = [bool(p < alpha) for p in greater]
            questions = len(qs[draws[0]])
        points += [(dose, h) for h in hits]
        rate, low, high = _rate(sum(hits), len(hits))
        out.append(DoseResult(dose, _planted(pairs.planted.get((key, dose), set())), ci.n, ci.mean, ci.ci_low,
                              ci.ci_high, len(hits), sum(hits), rate, low, high))  # fmt: skip
    zero = next((d.rate for d in out if d.dose == 0), math.nan)
    smallest = next((d.dose for d in out if d.dose > 0 and d.rate >= TARGET_POWER), None)
    at_power, note = dose_at_power(points)
    return Sensitivity(config_label(*key[:3]), key[3], alpha, out, zero, smallest, at_power, note, questions)


def _planted(counts: set[int]) -> str:
    if not counts:
        return ""
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def _rate(k: int, n: int) -> tuple[float, float, float]:
    """k / n with its 95% Clopper-Pearson interval (statsmodels); NaN when n is 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return math.nan, math.nan, math.nan
    low, high = proportion_confint(k, n, alpha=0.05, method="beta")
    return k / n, float(low), float(high)


def dose_at_power(points: Sequence[tuple[float, bool]], power: float = TARGET_POWER) -> tuple[float, str]:
    """The dose at which a logistic regression of detection on dose (statsmodels GLM Binomial) predicts
    `power`, and a note; NaN with the reason when the fit is not usable."""
    import numpy as np
    import statsmodels.api as sm

    doses = sorted({d for d, _ in points})
    if len(doses) < 3:
        return math.nan, f"not estimated: {len(doses)} dose(s) with per-question values; the fit needs 3"
    hits = [d for d, h in points if h]
    misses = [d for d, h in points if not h]
    if not hits or not misses:
        return math.nan, f"not estimated: {'every' if hits else 'no'} draw detected at every dose"
    if max(misses) <= min(hits):
        return math.nan, (
            "not estimated: detection is separated by dose (every draw missed up to "
            f"{max(misses):g}, every draw detected from {min(hits):g}), so the logistic slope is unbounded"
        )
    x = sm.add_constant(np.asarray([d for d, _ in points], dtype=float))
    y = np.asarray([float(h) for _, h in points])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b0, b1 = (float(v) for v in sm.GLM(y, x, family=sm.families.Binomial()).fit().params)
    if not b1 > 0:
        return math.nan, "not estimated: detection does not rise with dose in the fit"
    at = (math.log(power / (1 - power)) - b0) / b1
    note = f"logistic fit over {len(points)} draws at {len(doses)} doses"
    if at > doses[-1]:
        note += "; extrapolated beyond the largest tested dose"
    return at, note
