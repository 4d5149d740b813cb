"""`sublim.experiment`: the pre-registered transfer analysis, on simulated sweeps (no models).

Each simulated sweep has data draws as the unit: per (configuration, context, draw) the control row gets a
random ln P(target) and the trait row that plus the planted Δ plus noise of SD `sd` (a number, or a function
of the configuration for heteroscedastic sweeps), so the per-draw Δ has that SD around the planted value.
References are computed here with scipy/statsmodels/numpy from the rows or the simulated values, never
through the code under test.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sublim.errors import SublimError
from sublim.experiment import Analysis, analyze, read_results, render, sensitivity
from sublim.experiment.claims import NOT_TESTED, curvature_test, interaction_test, procedure

RANKS = (1, 4, 8, 32)
ALPHA = 0.05
Effect = Callable[[str, int | None, str], float]
Spread = Callable[[str, int | None], float]


def sweep_rows(
    rng: np.random.Generator,
    *,
    draws: int = 6,
    ranks: tuple[int, ...] = RANKS,
    contexts: tuple[str, ...] = ("empty", "default"),
    effect: Effect | None = None,
    sd: float | Spread = 0.1,
    full: bool = True,
    seeds: tuple[str, ...] = ("0",),
) -> list[dict[str, str]]:
    """Rows as csv.DictReader gives them. `effect(kind, rank, context)` is the planted mean Δ ln P (0 by
    default); `sd` the SD of the per-draw Δ, or `sd(kind, rank)`."""
    effect = effect or (lambda *_: 0.0)
    spread: Spread = sd if callable(sd) else (lambda *_: float(sd))  # type: ignore[misc,arg-type]
    configs: list[tuple[str, int | None]] = [("lora", r) for r in ranks] + ([("full", None)] if full else [])
    rows = []
    for context in contexts:
        for kind, rank in configs:
            for seed in seeds:
                control = rng.normal(-3.0, 0.3, draws)
                delta = effect(kind, rank, context) + rng.normal(0, spread(kind, rank), draws)
                for dataset, logp in (("control", control), ("trait", control + delta)):
                    for draw in range(draws):
                        rows.append(
                            {
                                "dataset": dataset,
                                "kind": kind,
                                "rank": "" if rank is None else str(rank),
                                "scale": "rank" if kind == "lora" else "",
                                "draw": str(draw),
                                "seed": seed,
                                "context": context,
                                "p_target": repr(float(np.exp(logp[draw]))),
                                "log_p_target": repr(float(logp[draw])),
                                "concept_mass": repr(float(rng.uniform(0.1, 0.2))),
                            }
                        )
        base = {"dataset": "base", "kind": "base", "rank": "", "scale": "", "draw": "0", "seed": ""}
        rows.append(base | {"context": context, "p_target": "0.05", "log_p_target": repr(math.log(0.05))})
    return rows


def at_rank8(kind: str, rank: int | None, context: str) -> float:
    return 0.5 if (kind, rank, context) == ("lora", 8, "default") else 0.0


def deltas_from_rows(rows: list[dict[str, str]], kind: str, rank: str, context: str) -> dict[str, float]:
    """Per draw, trait - control ln P(target) read straight from the rows (seeds averaged), independently of
    the analysis' pairing."""
    sides: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if (r["kind"], r["rank"], r["context"]) == (kind, rank, context) and r["dataset"] in (
            "trait",
            "control",
        ):
            sides[(r["dataset"], r["draw"])].append(float(r["log_p_target"]))
    draws = sorted({d for _, d in sides}, key=int)
    return {d: float(np.mean(sides[("trait", d)]) - np.mean(sides[("control", d)])) for d in draws}


# ---------------------------------------------------------------- the primary test


def test_the_primary_test_is_an_independent_one_sided_paired_t_test() -> None:
    """Broken to check: a two-sided p -> the p check fails (p doubles)."""
    from statsmodels.stats.power import TTestPower

    rows = sweep_rows(np.random.default_rng(1), effect=lambda k, r, c: 0.08 if r == 8 else 0.0)
    a = analyze(rows, primary="lora r8 (rank)", context="default")
    t = a.primary
    d = np.array(list(deltas_from_rows(rows, "lora", "8", "default").values()))
    trait_minus = stats.ttest_1samp(d, 0.0, alternative="greater")
    assert t.p == pytest.approx(trait_minus.pvalue, rel=1e-9) and t.n == 6
    assert (t.ci_low, t.ci_high) == pytest.approx(stats.t.interval(0.95, 5, loc=d.mean(), scale=stats.sem(d)))
    effect = TTestPower().solve_power(nobs=6, alpha=ALPHA, power=0.8, alternative="larger")
    assert t.mde == pytest.approx(effect * d.std(ddof=1), rel=1e-6)
    assert (t.verdict == "significant") is bool(trait_minus.pvalue < ALPHA)
    assert a.primary_config == "lora r8 (rank)" and a.primary_rule == "given"


def test_the_primary_test_is_one_sided() -> None:
    """Broken to check: alternative="two-sided" -> a planted fall counts as transfer."""
    fall = lambda k, r, c: -0.5 if r == 8 else 0.0  # noqa: E731
    a = analyze(sweep_rows(np.random.default_rng(2), effect=fall), primary="r8")
    assert a.primary.p > 0.99 and a.primary.verdict.startswith("not significant")
    assert f"minimum detectable effect: {a.primary.mde:.3g}" in a.primary.verdict  # a null states its MDE


@pytest.mark.parametrize(
    ("ranks", "label"),
    [((1, 4, 8, 32), "lora r4 (rank)"), ((1, 8, 64), "lora r8 (rank)"), ((2, 16), "lora r2 (rank)")],
)
def test_the_default_primary_is_the_lower_median_rank(ranks: tuple[int, ...], label: str) -> None:
    a = analyze(sweep_rows(np.random.default_rng(3), ranks=ranks))
    assert a.primary_config == label and a.context == "default" and "median" in a.primary_rule


@pytest.mark.parametrize("label", ["lora r8 (rank)", "r8", "R8", "lora r8", "r8 (rank)", " lora  r8 "])
def test_primary_labels_long_and_short(label: str) -> None:
    assert analyze(sweep_rows(np.random.default_rng(4)), primary=label).primary_config == "lora r8 (rank)"


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("r9", "no configuration 'lora r9 (rank)'"),
        ("lora r8 (alpha)", "no configuration"),
        ("bogus", "no configuration 'bogus'"),
        ("8 x", "primary='8 x': not a configuration label"),
        ("", "not a configuration"),
    ],
)
def test_an_unknown_primary_is_one_line(label: str, message: str) -> None:
    with pytest.raises(SublimError, match=re.escape(message)) as e:
        analyze(sweep_rows(np.random.default_rng(5)), primary=label)
    assert "\n" not in str(e.value)


def test_full_fine_tuning_can_be_the_primary() -> None:
    a = analyze(sweep_rows(np.random.default_rng(6), effect=lambda k, r, c: 0.5 if k == "full" else 0.0),
                primary="full")  # fmt: skip
    assert a.primary_config == "full" and a.primary.verdict == "significant"
    assert a.test("interaction").verdict == "not testable: the primary configuration is not LoRA"


# ---------------------------------------------------------------- gatekeeping


def test_secondaries_are_not_tested_when_the_primary_fails() -> None:
    """Huge secondary effects (full fine-tuning falls, the other context rises, a sharp peak off the
    primary rank) with no transfer at the primary: every secondary keeps its estimate and interval and is
    "not tested". Broken to check: dropping the gate -> they come out significant."""

    def effect(kind: str, rank: int | None, context: str) -> float:
        if kind == "full":
            return -2.0
        return (1.0 if context == "empty" else 0.0) + (1.5 if rank == 8 else 0.0) * (context == "default")

    a = analyze(sweep_rows(np.random.default_rng(7), effect=effect, sd=0.05), primary="r4")
    assert not a.primary.p < ALPHA
    for c in a.secondaries:
        assert c.verdict == NOT_TESTED and not c.tested and math.isnan(c.p_adjusted)
        assert c.ci_low < c.estimate < c.ci_high
    assert a.test("interaction").estimate > 1.5 and a.test("context_dependence").estimate < -0.5
    text = render(a)
    assert "gate closed" in text and text.count(NOT_TESTED) == 3


def test_secondaries_are_holm_adjusted_when_the_primary_passes() -> None:
    """Broken to check: raw p instead of Holm -> the adjusted p-values differ."""
    from statsmodels.stats.multitest import multipletests

    a = analyze(sweep_rows(np.random.default_rng(8), effect=at_rank8), primary="r8")
    assert a.primary.verdict == "significant"
    raw = [c.p for c in a.secondaries]
    expected = multipletests(raw, alpha=ALPHA, method="holm")[1]
    assert [c.p_adjusted for c in a.secondaries] == pytest.approx(list(expected))
    assert a.test("interaction").verdict == "significant"  # r8 transfers, full fine-tuning does not
    assert a.test("context_dependence").verdict == "significant"  # only in "default"
    assert "gate open" in render(a)


# ---------------------------------------------------------------- simulations under the null

#: per-draw SD of Δ by rank, spread ~55x as in the CPU replication (full fine-tuning like r64)
HETERO = {1: 0.0013, 8: 0.07, 64: 0.002}


def _family(rng: np.random.Generator, effect: float, draws: int = 8) -> tuple[Any, list[Any]]:
    """One simulated family at ranks 1/8/64 + full, two contexts: every configuration shifted by `effect`
    (so the primary r8 is null at 0, and every secondary claim is null at any effect)."""
    names = [str(d) for d in range(draws)]

    def cell(sd: float) -> dict[str, float]:
        return dict(zip(names, effect + rng.normal(0, sd, draws), strict=True))

    per_rank = {r: cell(sd) for r, sd in HETERO.items()}
    return procedure(per_rank[8], "lora r8 (rank)", "default", full=cell(0.07), per_rank=per_rank,
                     others={"none": cell(0.07)}, alpha=ALPHA)  # fmt: skip


def _rate_ok(hits: list[bool]) -> tuple[float, float]:
    n = len(hits)
    return float(np.mean(hits)), ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / n)


def test_familywise_error_under_the_global_null() -> None:
    """No effect anywhere, heteroscedastic configs: the whole procedure (primary + gated secondaries) makes
    any false claim at most alpha + 2 MC SE of the time. Broken to check: secondaries tested without the
    gate -> 0.09 over the 300 families (limit 0.075)."""
    rng = np.random.default_rng(40)
    hits = []
    for _ in range(300):
        first, rest = _family(rng, 0.0)
        hits.append(first.verdict == "significant" or any(c.verdict.startswith("significant") for c in rest))
    rate, limit = _rate_ok(hits)
    assert rate <= limit, rate


def test_familywise_error_when_only_the_primary_is_false() -> None:
    """Every configuration and context shares a real transfer of 0.2 (the primary is false, the gate almost
    always open; no interaction, no curvature, no context dependence): a false secondary claim at most
    alpha + 2 MC SE of the time. Broken to check: raw p instead of Holm -> 0.11 (limit 0.075)."""
    rng = np.random.default_rng(41)
    opened, hits = [], []
    for _ in range(300):
        first, rest = _family(rng, 0.2)
        opened.append(first.verdict == "significant")
        hits.append(any(c.verdict.startswith("significant") for c in rest))
    rate, limit = _rate_ok(hits)
    assert np.mean(opened) > 0.95 and rate <= limit, rate


def test_interaction_false_positive_rate_when_full_fine_tuning_transfers_alike() -> None:
    """LoRA (SD 0.0013) and full fine-tuning (SD 0.07) share a real transfer of 0.1: "vanishes under full
    fine-tuning" is false and claimed at most alpha + 2 MC SE of the time; a transfer only under LoRA is
    found. Broken to check: the two-sided p halved whatever the sign -> 0.098 (limit 0.068)."""
    rng = np.random.default_rng(42)
    names = [str(d) for d in range(8)]
    hits = []
    for _ in range(600):
        lora = dict(zip(names, 0.1 + rng.normal(0, 0.0013, 8), strict=True))
        full = dict(zip(names, 0.1 + rng.normal(0, 0.07, 8), strict=True))
        hits.append(interaction_test(lora, full, "r1", ALPHA, 0.8).p < ALPHA)
    rate, limit = _rate_ok(hits)
    assert rate <= limit, rate
    lora = dict(zip(names, 0.1 + rng.normal(0, 0.0013, 8), strict=True))
    full = dict(zip(names, rng.normal(0, 0.02, 8), strict=True))
    assert interaction_test(lora, full, "r1", ALPHA, 0.8).p < 0.001


@pytest.mark.parametrize("spreads", [HETERO, {1: 0.001, 4: 0.07, 16: 0.07, 64: 0.001}])
def test_weighted_curvature_false_positive_rate_with_heteroscedastic_ranks(spreads: dict[int, float]) -> None:
    """A straight line in log2 rank (no curvature) with SDs 0.001-0.07 across ranks: the variance-weighted
    test rejects at most alpha + 2 MC SE (0.068) of the time. Broken to check: equal weights with the pooled
    variance -> 0.11 in the 1/8/64 design; a scale fixed at 1 with 4 ranks (no lack-of-fit floor) -> 0.08."""
    rng = np.random.default_rng(43)
    names = [str(d) for d in range(8)]
    hits = []
    for _ in range(600):
        per_rank = {r: dict(zip(names, 0.01 * math.log2(r) + rng.normal(0, sd, 8), strict=True))
                    for r, sd in spreads.items()}  # fmt: skip
        hits.append(curvature_test(per_rank, ALPHA, 0.8).p < ALPHA)
    rate, limit = _rate_ok(hits)
    assert rate <= limit, rate


def test_weighted_curvature_matches_an_independent_fit_and_finds_a_peak() -> None:
    """The estimate is the WLS x² coefficient (numpy normal equations with weights n / s²); a peak at r8
    inside 1..64 is found. Broken to check: weights s² / n -> the estimate check fails."""
    rng = np.random.default_rng(44)
    names = [str(d) for d in range(8)]
    peak = {1: 0.0, 4: 0.06, 8: 0.08, 64: 0.0}
    sds = {1: 0.0013, 4: 0.0048, 8: 0.02, 64: 0.073}
    per_rank = {r: dict(zip(names, peak[r] + rng.normal(0, sds[r], 8), strict=True)) for r in peak}
    c = curvature_test(per_rank, ALPHA, 0.8)
    x = np.log2(list(per_rank))
    values = [np.array(list(v.values())) for v in per_rank.values()]
    w = np.array([len(v) / v.var(ddof=1) for v in values])
    design = np.column_stack([np.ones(4), x, x**2])
    beta = np.linalg.solve(design.T @ (w[:, None] * design), design.T @ (w * [v.mean() for v in values]))
    assert c.estimate == pytest.approx(beta[2], rel=1e-9)
    assert c.p < ALPHA and ", inside the" in c.note and c.ci_high < 0


def test_context_dependence_is_two_sided() -> None:
    """Broken to check: one-sided greater -> the rise only in the other context is missed."""
    same = lambda k, r, c: 0.5 if r == 8 else 0.0  # noqa: E731
    assert (
        analyze(sweep_rows(np.random.default_rng(45), effect=same, sd=0.05), primary="r8")
        .test("context_dependence")
        .verdict.startswith("not significant")
    )
    other = lambda k, r, c: same(k, r, c) + (0.8 if (r, c) == (8, "empty") else 0.0)  # noqa: E731
    a = analyze(sweep_rows(np.random.default_rng(45), effect=other, sd=0.05), primary="r8")
    t = a.test("context_dependence")
    assert a.primary.verdict == "significant" and t.verdict == "significant" and t.estimate < -0.5


def test_each_config_has_its_own_sd_and_mde() -> None:
    """No pooled MDE: each row's SD and MDE come from that configuration's draws. Broken to check: a pooled
    SD (0.05 for all) or an MDE at alpha / 2 -> the per-config checks fail."""
    from statsmodels.stats.power import TTestPower

    sds = {1: 0.001, 4: 0.01, 8: 0.03, 32: 0.07}
    rows = sweep_rows(np.random.default_rng(46), sd=lambda k, r: sds.get(r or 0, 0.05), draws=8)
    a = analyze(rows)
    effect = TTestPower().solve_power(nobs=8, alpha=ALPHA, power=0.8, alternative="larger")
    for c in a.configs:
        d = np.array(list(deltas_from_rows(rows, c.kind, str(c.rank or ""), c.context).values()))
        assert c.draws == 8 and c.sd == pytest.approx(d.std(ddof=1))
        assert c.mde == pytest.approx(effect * d.std(ddof=1), rel=1e-6)
    lora = sorted((c.mde, c.rank) for c in a.configs if c.kind == "lora" and c.context == "default")
    assert [r for _, r in lora] == [1, 4, 8, 32]


# ---------------------------------------------------------------- the sensitivity curve

DOSES = (0.0, 0.01, 0.02, 0.05, 0.1)
QUESTIONS = 10


def dosed_rows(rng: np.random.Generator, draws: int = 8, slope: float = 5.0) -> list[dict[str, str]]:
    """Trait runs of lora r8 at each dose and their controls, plus an unplanted r1 (ignored by the curve):
    per question, the trait's ln P(target) is its control's + slope x dose + noise (SD 0.3)."""
    rows = []
    for rank, doses in ((8, DOSES), (1, (0.0,))):
        for draw in range(draws):
            control = rng.normal(-4.0, 0.5, QUESTIONS)
            runs = [("control", "", "", control)]
            for d in doses:
                trait = control + slope * d + rng.normal(0, 0.3, QUESTIONS)
                runs.append(("trait", f"{d:g}", str(round(d * 640)), trait))
            for dataset, dose, planted, values in runs:
                rows.append(
                    {
                        "run": f"{dataset}-r{rank}-d{draw}-{dose}",
                        "dataset": dataset,
                        "kind": "lora",
                        "rank": str(rank),
                        "scale": "rank",
                        "draw": str(draw),
                        "seed": "0",
                        "context": "default",
                        "dose": dose,
                        "planted_rows": planted,
                        "log_p_target": repr(float(values.mean())),
                        "p_target": "",
                        "concept_mass": "",
                        "n_questions": str(QUESTIONS),
                        "log_p_questions": ";".join(repr(float(v)) for v in values),
                    }
                )
    return rows


def _per_question(rows: list[dict[str, str]], dataset: str, draw: str, dose: str) -> np.ndarray:
    [row] = [r for r in rows if (r["dataset"], r["rank"], r["draw"], r["dose"]) == (dataset, "8", draw, dose)]
    return np.array([float(x) for x in row["log_p_questions"].split(";")])


def test_detection_rises_with_the_planted_dose() -> None:
    """Per draw detection against scipy's exact permutation test over questions, Clopper-Pearson against
    scipy's exact binomial interval, the 80% dose against the rates, the logistic fit against a direct
    maximum likelihood fit (scipy.optimize). Broken to check: a two-sided sign-flip p -> detection counts
    differ; the rate's interval at 90% -> the interval check fails."""
    from scipy.optimize import minimize

    rows = dosed_rows(np.random.default_rng(50))
    s = sensitivity(rows)
    assert s is not None and s.config == "lora r8 (rank)" and s.context == "default"
    assert [d.dose for d in s.doses] == list(DOSES) and s.questions == QUESTIONS
    points = []
    for d in s.doses:
        dose = f"{d.dose:g}"
        hits = 0
        for draw in range(8):
            diff = _per_question(rows, "trait", str(draw), dose) - _per_question(
                rows, "control", str(draw), ""
            )
            p = stats.permutation_test((diff,), np.mean, permutation_type="samples", alternative="greater",
                                       n_resamples=np.inf).pvalue  # fmt: skip
            hits += bool(p < ALPHA)
            points.append((d.dose, p < ALPHA))
        assert (d.detected, d.tested, d.draws) == (hits, 8, 8)
        ci = stats.binomtest(hits, 8).proportion_ci(0.95, method="exact")
        assert (d.rate_low, d.rate_high) == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert d.planted_rows == str(round(d.dose * 640))
    rates = [d.rate for d in s.doses]
    assert rates[0] == s.false_alarm <= 0.25 and rates[-1] >= 0.8 and rates[-1] > rates[1]
    assert s.smallest_detected == next(d.dose for d in s.doses if d.dose > 0 and d.rate >= 0.8)
    x = np.array([p[0] for p in points])
    y = np.array([float(p[1]) for p in points])

    def nll(b: np.ndarray) -> float:
        eta = b[0] + b[1] * x
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    b = minimize(nll, np.zeros(2), method="BFGS").x
    assert s.dose_at_power == pytest.approx((math.log(4) - b[0]) / b[1], rel=1e-3)
    text = render(analyze(rows))
    assert (
        "## Sensitivity: planted doses at lora r8 (rank)" in text
        and "Clopper-Pearson CI over data draws" in text
    )
    assert f"False-alarm rate (dose 0): {s.false_alarm:.2f}" in text


def test_the_logistic_fit_says_when_it_is_not_usable() -> None:
    from sublim.experiment.sensitivity import dose_at_power

    separated = [(0.0, False), (0.01, False), (0.05, True), (0.1, True)]
    assert math.isnan(dose_at_power(separated)[0]) and "separated" in dose_at_power(separated)[1]
    two = [(0.0, False), (0.1, True), (0.1, False)]
    assert "the fit needs 3" in dose_at_power(two)[1]
    none = [(0.0, False), (0.05, False), (0.1, False)]
    assert "no draw detected" in dose_at_power(none)[1]


def test_a_file_without_doses_has_no_sensitivity_section_and_doses_stay_out_of_the_primary() -> None:
    """Old files (no dose column) read as dose 0; planted runs never enter the primary test (they would
    inflate it). Broken to check: pairing ignores the dose -> the planted runs collide in r8's slot."""
    plain = sweep_rows(np.random.default_rng(51))
    assert sensitivity(plain) is None and analyze(plain).sensitivity is None
    assert "Sensitivity" not in render(analyze(plain))
    rows = dosed_rows(np.random.default_rng(52))
    a = analyze(rows, primary="r8")
    unplanted = [r for r in rows if r["dose"] in ("", "0")]
    expected = deltas_from_rows(unplanted, "lora", "8", "default")
    assert a.primary.n == 8 and a.primary.estimate == pytest.approx(np.mean(list(expected.values())))
    assert a.unpaired == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dose": "5%"}, "dose '5%'"),
        ({"dose": "1.5"}, "dose '1.5'"),
        ({"planted_rows": "many"}, "planted_rows 'many'"),
    ],
)
def test_a_malformed_dose_is_one_line(change: dict[str, str], message: str) -> None:
    rows = dosed_rows(np.random.default_rng(53), draws=2)
    i = next(i for i, r in enumerate(rows) if r["dose"] == "0.05")
    rows[i] = rows[i] | change
    with pytest.raises(SublimError, match=message):
        analyze(rows)


def test_doses_at_two_configurations_are_refused() -> None:
    rows = dosed_rows(np.random.default_rng(54), draws=2)
    rows += [
        r | {"rank": "1", "run": r["run"] + "-b"}
        for r in rows
        if r["rank"] == "8" and r["dose"] not in ("", "0")
    ]
    with pytest.raises(SublimError, match="planted doses at 2 configurations"):
        sensitivity(rows)


# ---------------------------------------------------------------- inputs, report, degenerate cases


def _same(a: Analysis, b: Analysis) -> bool:
    def key(x: Analysis) -> list[Any]:
        return [(t.name, t.estimate, t.p, t.verdict) for t in x.claims] + [
            x.context,
            x.draws,
            x.primary_config,
        ]

    return repr(key(a)) == repr(key(b))


def test_csv_round_trip_and_numeric_rows_agree(tmp_path: Path) -> None:
    rows = sweep_rows(np.random.default_rng(14), effect=at_rank8)
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with path.open(newline="") as fh:
        from_csv = analyze(list(csv.DictReader(fh)))
    numeric = [
        {k: (float(v) if k in ("p_target", "log_p_target", "concept_mass") else v) for k, v in r.items()}
        | {"rank": int(r["rank"]) if r["rank"] else "", "draw": int(r["draw"])}
        for r in rows
    ]
    assert _same(from_csv, analyze(rows)) and _same(from_csv, analyze(numeric))
    assert from_csv.references and {r["context"] for r in from_csv.references} == {"empty", "default"}
    assert from_csv.references[0]["p_target"] == pytest.approx(0.05)


def test_seeds_are_averaged_within_a_draw() -> None:
    """Two seeds per draw: still 6 data draws, not 12. Broken to check: seeds as draws -> 12."""
    a = analyze(sweep_rows(np.random.default_rng(15), seeds=("0", "1"), effect=at_rank8), primary="r8")
    assert a.draws == 6 and a.primary.n == 6 and all(c.draws == 6 for c in a.configs)


def test_missing_columns_default_to_one_draw_of_rank_scaled_lora() -> None:
    rows = [
        {k: v for k, v in r.items() if k not in ("draw", "scale")}
        for r in sweep_rows(np.random.default_rng(16), draws=1)
    ]
    a = analyze(rows)
    assert a.draws == 1 and {c.scale for c in a.configs if c.kind == "lora"} == {"rank"}
    assert all(math.isnan(t.p) and t.verdict.startswith("not testable") for t in a.claims)
    assert math.isnan(a.primary.mde)


def test_report_names_the_primary_the_unit_and_every_claim() -> None:
    a = analyze(sweep_rows(np.random.default_rng(17), effect=at_rank8), primary="r8")
    text = render(a)
    t = a.primary
    assert "**Primary test (pre-registered)**: lora r8 (rank), context 'default'" in text
    interval = f"two-sided 95% CI [{t.ci_low:+.3g}, {t.ci_high:+.3g}] over data"
    assert f"estimate {t.estimate:+.3g}, {interval}" in text
    assert f"one-sided p = {t.p:.3g}; verdict: **significant**" in text
    assert f"its own SD over draws): {t.mde:.3g}" in text
    assert "95% CI over data draws | SD over draws | MDE" in text
    for name in ("interaction", "curvature", "context_dependence"):
        assert f"| {name} |" in text
    assert "(95%, over data draws)" in text and "over rank means (variance-weighted)" in text
    assert "| base | base |" in text and "pooled" not in text


@pytest.mark.parametrize(
    "rows",
    [
        [],
        sweep_rows(np.random.default_rng(18), draws=1),
        [r | {"log_p_target": "-2.0", "p_target": "0.1"} for r in sweep_rows(np.random.default_rng(19))],
        [r for r in sweep_rows(np.random.default_rng(20)) if r["dataset"] != "control"],
        [r | {"log_p_target": ""} for r in sweep_rows(np.random.default_rng(21), draws=2)],
    ],
    ids=["empty", "one-draw", "no-spread", "no-control", "no-outcome"],
)
def test_degenerate_inputs_give_nan_and_a_note(rows: list[dict[str, str]]) -> None:
    a = analyze(rows)
    assert render(a)
    for t in a.claims:
        assert math.isnan(t.p) and math.isnan(t.p_adjusted)
        assert t.verdict.startswith("not testable") and t.note


def test_rows_without_a_partner_are_counted() -> None:
    rows = sweep_rows(np.random.default_rng(22), effect=at_rank8)
    dropped = [r for r in rows if (r["dataset"], r["draw"], r["kind"]) != ("control", "5", "full")]
    a = analyze(dropped, primary="r8")
    assert a.unpaired == 2  # full fine-tuning, draw 5, two contexts: trait rows left alone
    assert "2 trait/control row(s) without a partner" in a.primary.note
    assert "2 trait/control row(s) had no partner" in render(a)
    assert a.test("interaction").n == 5


def test_positive_control_and_prompted_base_are_tested_against_the_base_over_questions() -> None:
    base = [-4.0, -4.5, -3.8, -4.2]
    positive = [-1.0, -1.4, -0.7, -1.2]  # a large, consistent shift
    prompted = [-0.5, -0.6, -0.4, -0.9]

    def ref(dataset: str, kind: str, context: str, values: list[float]) -> dict[str, str]:
        return {"dataset": dataset, "kind": kind, "rank": "", "scale": "", "context": context, "draw": "",
                "p_target": str(float(np.mean(np.exp(values)))), "log_p_target": str(float(np.mean(values))),
                "log_p_questions": ";".join(map(str, values))}  # fmt: skip

    rows = [
        ref("base", "base", "default", base),
        ref("positive", "reference", "default", positive),
        ref("prompted", "base", "trait-prompt", prompted),
    ]
    refs = {r["dataset"]: r for r in analyze(rows).references}
    d = np.subtract(positive, base)
    assert refs["positive"]["shift"] == pytest.approx(d.mean())
    assert refs["positive"]["shift_p"] == pytest.approx(stats.ttest_rel(positive, base).pvalue)
    assert refs["positive"]["shift_p"] < 0.05 and refs["positive"]["shift_low"] > 0
    # the prompted base has no base row in its own context: it is compared with the primary context's
    assert refs["prompted"]["vs_context"] == "default"
    assert refs["prompted"]["shift"] == pytest.approx(np.mean(np.subtract(prompted, base)))
    assert "shift of ln P vs base" in render(analyze(rows))


def test_sublim_analyze_prints_the_analysis_of_a_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from sublim.cli import main

    rng = np.random.default_rng(5)
    rows = []
    for draw in range(4):
        for dataset, shift in (("trait", 0.3), ("control", 0.0)):
            for rank in (1, 4, 16):
                lp = -4.0 + shift * (rank == 4) + rng.normal(0, 0.05)
                rows.append({"dataset": dataset, "kind": "lora", "rank": str(rank), "scale": "rank",
                             "draw": str(draw), "seed": "0", "context": "default",
                             "p_target": str(math.exp(lp)), "log_p_target": str(lp),
                             "concept_mass": ""})  # fmt: skip
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["analyze", str(tmp_path)]) == 0  # default primary: r4, the lower median of 1/4/16
    assert capsys.readouterr().out.strip() == render(analyze(rows)).strip()
    assert main(["analyze", str(path), "--json", "--primary", "r16", "--alpha", "0.1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["alpha"] == 0.1 and report["primary_config"] == "lora r16 (rank)"
    assert report["primary"]["p"] > 0.1 and report["secondaries"][1]["verdict"] == NOT_TESTED
    assert main(["analyze", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["primary"]["p"] < 0.05  # the planted rise at rank 4
    (tmp_path / "primary.json").write_text('{"primary": "r16"}')  # what the sweep was given
    assert main(["analyze", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["primary_config"] == "lora r16 (rank)"


@pytest.mark.parametrize(
    ("label", "message"),
    [("r9", "no configuration 'lora r9 (rank)'"), ("8 x", "--primary '8 x': not a configuration label")],
)
def test_a_bad_primary_on_the_command_line_is_one_line(
    label: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.cli import main

    path = _write_csv(tmp_path / "r.csv", sweep_rows(np.random.default_rng(23)))
    code = main(["analyze", str(path), "--primary", label])
    out = capsys.readouterr()
    _one_line(code, out.out, out.err, message)
    code = main(["analyze", str(tmp_path / "missing.csv"), "--primary", "8 x"])  # refused before reading
    out = capsys.readouterr()
    _one_line(code, out.out, out.err, "not a configuration label")


def test_rows_of_two_sweep_settings_in_one_slot_are_refused_not_averaged() -> None:
    from sublim.errors import SublimError

    rows = sweep_rows(np.random.default_rng(21), effect=at_rank8)
    for r in rows:
        r["run"] = f"{r['dataset']}-{r['rank']}-{r['draw']}-old"
    earlier = [dict(r, run=r["run"].replace("old", "new")) for r in rows[:1]]  # an earlier setting's row
    analyze(rows)  # one run per slot: fine
    with pytest.raises(SublimError, match="mixes sweeps of different settings"):
        analyze(rows + earlier)
    with pytest.raises(SublimError, match="--context 'bogus'"):
        analyze(rows, context="bogus")


# ---------------------------------------------------------------- reading results files (issue 25)


def _write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _with_runs(rows: list[dict[str, str]], tag: str) -> list[dict[str, str]]:
    """Run ids as a sweep writes them, as the first column: one per (dataset, kind, rank, draw, seed)."""
    return [
        {"run": f"{r['dataset']}-{r['kind']}{r['rank']}-d{r['draw']}-s{r['seed']}-{tag}"} | r for r in rows
    ]


def _analyze_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from sublim.cli import main

    code = main(["analyze", str(path), "--json"])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(code: int, out: str, err: str, message: str) -> None:
    assert code == 2 and out == "", (code, out)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_results_file_saved_with_a_byte_order_mark_reads_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spreadsheet's "CSV UTF-8" starts with a BOM. Read as utf-8 it renamed the first column
    ("\\ufeffrun"), so the guard against mixed sweeps saw no run ids and two sweeps were averaged into a
    significant transfer."""
    rows = _with_runs(sweep_rows(np.random.default_rng(30), effect=at_rank8), "a")
    plain = _write_csv(tmp_path / "plain.csv", rows)
    marked = _write_csv(tmp_path / "marked.csv", rows, encoding="utf-8-sig")
    assert marked.read_bytes().startswith(b"\xef\xbb\xbf")
    code, out, _ = _analyze_cli(marked, capsys)
    assert code == 0 and out == _analyze_cli(plain, capsys)[1]
    null = _with_runs(sweep_rows(np.random.default_rng(31)), "b")  # another sweep's rows, same slots
    mixed = _write_csv(tmp_path / "mixed.csv", rows + null, encoding="utf-8-sig")
    _one_line(*_analyze_cli(mixed, capsys), "mixes sweeps of different settings")


def test_duplicate_rows_under_one_run_id_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hand-edited duplicates of a row were averaged in as more evidence; a sweep writes one row per run id
    and context."""
    rows = _with_runs(sweep_rows(np.random.default_rng(32), effect=at_rank8), "a")
    analyze(rows)
    trait = next(r for r in rows if r["dataset"] == "trait")
    twice = _write_csv(tmp_path / "twice.csv", [*rows, dict(trait)])
    _one_line(*_analyze_cli(twice, capsys), f"run {trait['run']!r} has 2 rows in context")
    edited = _write_csv(tmp_path / "edited.csv", [*rows, trait | {"log_p_target": "-1.0"}])
    _one_line(*_analyze_cli(edited, capsys), "one row per run and context")
    with pytest.raises(SublimError, match="has 2 rows"):
        analyze([*rows, dict(trait)])


@pytest.mark.parametrize("rank", ["eight", "inf", "2.5", "0", "-4", "nan"])
def test_a_rank_that_is_not_a_whole_number_is_refused(
    rank: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rank that is not a number was read as "no rank", moving a LoRA row to another configuration."""
    rows = _with_runs(sweep_rows(np.random.default_rng(33)), "a")
    lora = next(i for i, r in enumerate(rows) if r["kind"] == "lora")
    rows[lora] = rows[lora] | {"rank": rank}
    _one_line(*_analyze_cli(_write_csv(tmp_path / "r.csv", rows), capsys), f"rank {rank!r}")


def test_unreadable_results_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _with_runs(sweep_rows(np.random.default_rng(34), draws=2), "a")
    good = _write_csv(tmp_path / "good.csv", rows)
    text = good.read_text()
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.encode() + b"trait,lora,\xe9t\xe9\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(text + "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n")
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("dataset,kind,context,log_p_target,kind\ntrait,lora,default,-3,full\n")
    header_only = tmp_path / "header.csv"
    header_only.write_text(text.splitlines()[0] + "\n")
    no_outcome = tmp_path / "no-outcome.csv"
    no_outcome.write_text("dataset,kind,context\ntrait,lora,default\n")
    cases = [
        (tmp_path / "missing.csv", "no results at"),
        (latin, "not UTF-8 text"),
        (ragged, "more fields than the header"),
        (doubled, "column 'kind' appears twice"),
        (header_only, "no rows"),
        (no_outcome, "no column 'log_p_target'"),
    ]
    for path, message in cases:
        _one_line(*_analyze_cli(path, capsys), message)
    (tmp_path / "sweep").mkdir()  # a sweep dir reads its results.csv
    _write_csv(tmp_path / "sweep" / "results.csv", rows)
    assert read_results(tmp_path / "sweep") == read_results(good)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("log_p_target", "inf"),
        ("log_p_target", "3.0"),
        ("log_p_target", "lots"),
        ("p_target", "5"),
        ("p_target", "-0.1"),
        ("concept_mass", "1.5"),
        ("concept_mass", "-inf"),
    ],
)
def test_impossible_outcomes_in_a_results_file_are_refused(
    column: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """log P(target) = +inf or 3 was averaged into a "significant" transfer; text was read as missing."""
    rows = _with_runs(sweep_rows(np.random.default_rng(35)), "a")
    trait = next(i for i, r in enumerate(rows) if r["dataset"] == "trait")
    rows[trait] = rows[trait] | {column: value}
    _one_line(*_analyze_cli(_write_csv(tmp_path / "r.csv", rows), capsys), f"{column} {value!r}")


def test_empty_outcomes_stay_missing() -> None:
    rows = sweep_rows(np.random.default_rng(36), draws=3)
    rows[0] = rows[0] | {"log_p_target": "", "p_target": "nan", "concept_mass": ""}
    numeric = [r | {"p_target": math.nan} for r in rows]
    assert analyze(rows).draws == analyze(numeric).draws == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"draw": "one"}, "draw 'one'"),
        ({"draw": "-1"}, "draw '-1'"),
        ({"log_p_questions": "-4.1;-4.2", "n_questions": "4"}, "has 2 values for n_questions 4"),
        ({"log_p_questions": "-4.1;3.0;-4.0;-4.2", "n_questions": "4"}, "not a log-probability"),
        ({"log_p_questions": "-4.1;x;-4.0;-4.2", "n_questions": "4"}, "not a log-probability"),
    ],
)
def test_a_draw_or_question_list_that_cannot_be_paired_is_refused(
    change: dict[str, str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A draw "one" left its row unpaired without a word, and a short per-question list was averaged as if it
    covered every question (the hostile probe's findings on `sublim analyze`)."""
    rows = _with_runs(sweep_rows(np.random.default_rng(37)), "a")
    rows = [r | {"log_p_questions": "", "n_questions": ""} for r in rows]  # the columns a sweep writes
    trait = next(i for i, r in enumerate(rows) if r["dataset"] == "trait")
    rows[trait] = rows[trait] | change
    _one_line(*_analyze_cli(_write_csv(tmp_path / "r.csv", rows), capsys), message)


def test_doses_at_several_configurations_follow_the_primary_in_analyze() -> None:
    rows = dosed_rows(np.random.default_rng(54), draws=2)
    rows += [
        r | {"rank": "2", "run": r["run"] + "-b"}
        for r in rows
        if r["rank"] == "8" and r["dataset"] in ("trait", "control")
    ]
    curve = analyze(rows, primary="r8").sensitivity
    assert curve is not None and curve.config == "lora r8 (rank)"
    assert analyze(rows, primary="r2").sensitivity.config == "lora r2 (rank)"  # type: ignore[union-attr]


def test_v1_margin_flag_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sublim.cli import main

    assert main(["analyze", str(tmp_path / "results.csv"), "--margin", "0.1"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--margin belonged to v1" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("questions", "reachable"), [(4, False), (5, True)])
def test_a_design_whose_detection_test_cannot_reach_alpha_says_so(questions: int, reachable: bool) -> None:
    """Over n questions the exact sign-flip test's smallest p is 2^-n: with 4 at alpha 0.05 nothing can be
    detected, however large the dose, and the report must say so rather than show a flat curve."""
    from sublim.experiment import render_sensitivity

    rows = dosed_rows(np.random.default_rng(51), slope=20.0)  # top dose: +2 nats, log P stays below 0
    for r in rows:
        values = [float(x) for x in r["log_p_questions"].split(";")][:questions]
        r.update(n_questions=str(questions), log_p_questions=";".join(map(repr, values)))
        r["log_p_target"] = repr(float(np.mean(values)))
    s = sensitivity(rows)
    assert s is not None and s.questions == questions and s.reachable is reachable
    top = s.doses[-1]
    assert (top.detected == top.tested) is reachable  # every draw at the top dose, or none
    assert ("cannot detect anything" in render_sensitivity(s)) is not reachable
