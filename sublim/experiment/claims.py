"""The tests: one pre-registered primary test, then secondary claims gated on it.

The primary test asks whether the trait teacher's data raised ln P(target) over the control teacher's at one
configuration and eval context named before any data exists: Δ = trait (dose 0) - control per data draw,
one-sided (greater) paired t-test over draws (scipy), at level alpha.

The secondary claims are tested only when the primary test is significant (fixed-sequence gatekeeping), and
then Holm-adjusted among themselves at alpha. The procedure keeps the familywise error at alpha: when the
primary null holds, a false claim can only be made after a false primary rejection (probability <= alpha);
when it is false, only the secondaries can err, and Holm bounds that at alpha. When the gate stays closed
each secondary is still reported as an estimate with its interval, verdict "not tested: primary not
significant".

(a) interaction: per draw, Δ(primary LoRA config) - Δ(full fine-tuning), one-sided greater, paired t-test
    over draws: "transfer vanishes under full fine-tuning" stated as a difference that can be shown (an
    equivalence test of full fine-tuning alone would also "pass" for configs that transfer nothing).
(b) curvature: WLS (statsmodels) of each rank's mean Δ on x = log2(rank) and x², weights 1 / (variance of that
    rank's mean over draws). Weighted because the spread of Δ differed by about 55x across ranks in the first
    CPU replication (v1, SD 0.0013 at r1, 0.073 at r64): an unweighted fit lets the noisiest rank decide and
    its pooled residual variance misstates the curvature's standard error. The variances are known up to
    sampling, so the fit's scale is 1 (raised to the weighted residual mean square when more than 3 ranks show
    lack of fit beyond them, never lowered: with estimated weights a scale of 1 alone rejected 7% of null
    curves in simulation) and the one-sided test of a negative x² coefficient uses a t reference with
    Welch-Satterthwaite degrees of freedom from each rank's draws.
(c) context dependence: per draw, Δ(primary config, primary context) - Δ(same config, the other contexts'
    mean), two-sided paired t-test over draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sublim.experiment.results import by_draw, spread
from sublim.stats import holm, mean_interval, minimum_detectable_shift

#: the secondary claims, in the order they are reported
SECONDARY = ("interaction", "curvature", "context_dependence")
NOT_TESTED = "not tested: primary not significant"


@dataclass(frozen=True)
class Claim:
    """One test of the procedure (the primary or a secondary claim).

    Attributes:
        name: "primary", "interaction", "curvature" or "context_dependence".
        claim: what it asks, in plain words.
        estimate: the tested quantity (on ln P(target)).
        ci_low, ci_high: its two-sided `confidence` interval; `unit` says over what.
        p: p-value of the test itself (NaN when not computable, `note` says why, and when the gate kept a
            secondary untested: only tested claims carry a p).
        p_adjusted: the p that decides: the primary's own p; a secondary's Holm-adjusted p when the gate is
            open, NaN when it was not tested.
        verdict: "significant", "not significant (...)", "not tested: primary not significant", or
            "not testable: <why>".
        mde: the smallest true effect this test detects with `power` at its level (NaN when not computable).
        note: details (configurations compared, the vertex, rows left out).
        n: data draws the test used.
        confidence: level of the interval.
        unit: what the interval is over.
        tested: whether the verdict came from a test (the primary always is, when testable).
    """

    name: str
    claim: str
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    p_adjusted: float
    verdict: str
    mde: float = math.nan
    note: str = ""
    n: int = 0
    confidence: float = 0.95
    unit: str = "data draws"
    tested: bool = False


def untestable(name: str, claim: str, why: str, n: int = 0) -> Claim:
    nan = math.nan
    return Claim(name, claim, nan, nan, nan, nan, nan, f"not testable: {why}", note=why, n=n)


def _paired(
    name: str, claim: str, per_draw: Mapping[str, float], alternative: str, alpha: float, power: float
) -> Claim:
    """A t-test over draws of per-draw values (scipy), with its 95% interval and its MDE at alpha."""
    from scipy import stats

    values = by_draw(per_draw)
    ci = mean_interval(values)
    sd = spread(values)
    if math.isnan(sd) or sd == 0:
        why = f"{len(values)} data draw(s)" if len(values) < 2 else "no spread across data draws"
        return replace(untestable(name, claim, why, len(values)), estimate=ci.mean)
    p = float(stats.ttest_1samp(values, 0.0, alternative=alternative).pvalue)
    level = alpha if alternative != "two-sided" else alpha / 2
    mde = minimum_detectable_shift(sd, len(values), 0.0, level, power)
    return Claim(name, claim, ci.mean, ci.ci_low, ci.ci_high, p, p, "", mde, n=len(values), tested=True)


def primary_test(
    per_draw: Mapping[str, float], label: str, context: str, alpha: float, power: float
) -> Claim:
    """Δ = trait (dose 0) - control at the pre-registered configuration, one-sided greater over draws."""
    claim = f"the trait teacher's data raises ln P(target) over the control's at {label}, context {context!r}"
    if not per_draw:
        return untestable("primary", claim, f"no trait/control pairs at {label} in context {context!r}")
    c = _paired("primary", claim, per_draw, "greater", alpha, power)
    if not c.tested:
        return c
    mde = "n/a" if math.isnan(c.mde) else f"{c.mde:.3g}"
    verdict = "significant" if c.p < alpha else f"not significant (minimum detectable effect: {mde})"
    return replace(c, verdict=verdict)


def interaction_test(
    lora: Mapping[str, float], full: Mapping[str, float] | None, label: str, alpha: float, power: float
) -> Claim:
    """(a) per draw, Δ(primary LoRA config) - Δ(full fine-tuning); one-sided greater."""
    claim = f"transfer is larger under {label} than under full fine-tuning (claim b: it fades with full FT)"
    if full is None:
        return untestable("interaction", claim, "the primary configuration is not LoRA")
    if not full:
        return untestable("interaction", claim, "no full fine-tuning pairs in the primary context")
    diffs = {d: lora[d] - full[d] for d in lora.keys() & full.keys()}
    c = _paired("interaction", claim, diffs, "greater", alpha, power)
    return replace(c, note=f"per draw Δ({label}) - Δ(full), {len(diffs)} draw(s) with both")


def context_test(
    primary: Mapping[str, float], others: Mapping[str, Mapping[str, float]], context: str, alpha: float,
    power: float,
) -> Claim:  # fmt: skip
    """(c) per draw, Δ in the primary context minus its mean over the other contexts; two-sided."""
    claim = f"transfer at the primary configuration differs between context {context!r} and the others"
    others = {c: v for c, v in others.items() if v}
    if not others:
        return untestable("context_dependence", claim, "only one eval context")
    diffs: dict[str, float] = {}
    for draw, value in primary.items():
        rest = [o[draw] for o in others.values() if draw in o]
        if rest:
            diffs[draw] = value - sum(rest) / len(rest)
    c = _paired("context_dependence", claim, diffs, "two-sided", alpha, power)
    return replace(c, note=f"primary {context!r} minus {', '.join(repr(c) for c in others)}")


def curvature_test(per_rank: Mapping[int, Mapping[str, float]], alpha: float, power: float) -> Claim:
    """(b) WLS of each rank's mean Δ on log2 rank and its square, weights 1 / var(mean); one-sided x² < 0."""
    import numpy as np
    from scipy import stats
    from statsmodels.regression.linear_model import WLS

    claim = "Δ peaks at an intermediate LoRA rank (negative curvature in log2 rank, variance-weighted)"
    ranks = sorted(per_rank)
    if len(ranks) < 3:
        return untestable("curvature", claim, f"{len(ranks)} distinct rank(s); needs 3")
    means, variances, dfs = [], [], []
    for r in ranks:
        values = by_draw(per_rank[r])
        sd = spread(values)
        if math.isnan(sd) or sd == 0:
            return untestable("curvature", claim, f"rank {r} has fewer than 2 draws or no spread")
        means.append(sum(values) / len(values))
        variances.append(sd**2 / len(values))
        dfs.append(len(values) - 1)
    x = np.log2(np.asarray(ranks, dtype=float))
    design = np.column_stack([np.ones_like(x), x, x * x])
    var = np.asarray(variances)
    fit = WLS(np.asarray(means), design, weights=1.0 / var).fit()
    # the ranks' own variances set the scale; lack of fit beyond them (more than 3 ranks) can only widen it
    scale = max(1.0, float(fit.scale)) if fit.df_resid > 0 else 1.0
    b1, b2 = float(fit.params[1]), float(fit.params[2])
    se = math.sqrt(scale * float(fit.normalized_cov_params[2, 2]))
    # b2 is a linear combination sum a_i * mean_i; Welch-Satterthwaite df from the ranks' own draws
    a = np.linalg.solve(design.T @ (design / var[:, None]), (design / var[:, None]).T)[2]
    parts = a**2 * var
    df = float(parts.sum() ** 2 / np.sum(parts**2 / np.asarray(dfs)))
    p = float(stats.t.cdf(b2 / se, df))
    half = float(stats.t.ppf(0.975, df)) * se
    mde = (float(stats.t.ppf(1 - alpha, df)) + float(stats.t.ppf(power, df))) * se
    span = f"tested ranks {ranks[0]}-{ranks[-1]}"
    inside = False
    if b2 < 0:
        at = -b1 / (2 * b2)  # the vertex in log2 rank; a near-flat curvature puts it far away
        vertex = 2**at if abs(at) < 1000 else (math.inf if at > 0 else 0.0)
        inside = ranks[0] < vertex < ranks[-1]
        note = f"vertex at rank ≈ {vertex:.3g}, {'inside' if inside else 'outside'} the {span}"
    else:
        note = f"curvature is not negative (no peak); {span}"
    note += f"; WLS over {len(ranks)} rank means, Welch-Satterthwaite df {df:.3g}"
    return Claim(
        "curvature", claim, b2, b2 - half, b2 + half, p, p, "", mde, note, min(d + 1 for d in dfs),
        unit="rank means (variance-weighted)", tested=True,
    )  # fmt: skip


def procedure(
    chosen: Mapping[str, float],
    label: str,
    context: str,
    *,
    full: Mapping[str, float] | None,
    per_rank: Mapping[int, Mapping[str, float]],
    others: Mapping[str, Mapping[str, float]],
    alpha: float = 0.05,
    power: float = 0.8,
) -> tuple[Claim, list[Claim]]:
    """The whole tested family: the primary test on `chosen` (draw -> Δ at the pre-registered
    configuration), then the secondaries gated on it. `full`: full fine-tuning's draw -> Δ (None when the
    primary is not LoRA); `per_rank`: rank -> draw -> Δ for the curvature; `others`: other context -> draw
    -> Δ of the primary configuration."""
    first = primary_test(chosen, label, context, alpha, power)
    secondaries = [
        interaction_test(chosen, full, label, alpha, power),
        curvature_test(per_rank, alpha, power),
        context_test(chosen, others, context, alpha, power),
    ]
    return first, gate(first, secondaries, alpha)


def gate(primary: Claim, secondaries: Sequence[Claim], alpha: float) -> list[Claim]:
    """Fixed-sequence gatekeeping: the secondaries are tested (Holm at alpha) only when the primary is
    significant; otherwise each keeps its estimate and interval and is "not tested"."""
    if not (primary.tested and primary.p < alpha):
        return [
            c if c.verdict.startswith("not testable") else replace(c, p=math.nan, p_adjusted=math.nan,
                                                                    verdict=NOT_TESTED, tested=False)
            for c in secondaries
        ]  # fmt: skip
    adjusted = holm([c.p if c.tested else math.nan for c in secondaries])
    out = []
    for c, pa in zip(secondaries, adjusted, strict=True):
        if not c.tested:
            out.append(c)
            continue
        verdict = "significant" if pa < alpha else f"not significant (minimum detectable effect: {c.mde:.3g})"
        if c.name == "curvature" and pa < alpha and ", inside the" not in c.note:
            verdict = "significant curvature, but the peak lies outside the tested ranks: not an inverted U"
        out.append(replace(c, p_adjusted=pa, verdict=verdict))
    return out
