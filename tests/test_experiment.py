"""`sublim.experiment`: the pre-registered transfer analysis, on simulated sweeps (no models).

Each simulated sweep has data draws as the unit: per (configuration, context, draw) the control row gets a
random log P(target) and the trait row that plus the planted Δ plus noise of SD `sd`, so the per-draw Δ has
SD `sd` around the planted value.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sublim.errors import SublimError
from sublim.experiment import Analysis, analyze, read_results, render

RANKS = (1, 4, 8, 32)
Effect = Callable[[str, int | None, str], float]


def sweep_rows(
    rng: np.random.Generator,
    *,
    draws: int = 6,
    ranks: tuple[int, ...] = RANKS,
    contexts: tuple[str, ...] = ("empty", "default"),
    effect: Effect | None = None,
    sd: float = 0.1,
    full: bool = True,
    full_delta: np.ndarray | None = None,
    draw_shift: float = 0.0,
    seeds: tuple[str, ...] = ("0",),
) -> list[dict[str, str]]:
    """Rows as csv.DictReader gives them. `effect(kind, rank, context)` is the planted mean Δ log P (0 by
    default); `full_delta` replaces full fine-tuning's per-draw Δ in every context; `draw_shift` adds a
    per-draw offset shared by every configuration (what blocking on draws removes)."""
    effect = effect or (lambda *_: 0.0)
    shift = rng.normal(0, draw_shift, draws) if draw_shift else np.zeros(draws)
    configs: list[tuple[str, int | None]] = [("lora", r) for r in ranks] + ([("full", None)] if full else [])
    rows = []
    for context in contexts:
        for kind, rank in configs:
            for seed in seeds:
                control = rng.normal(-3.0, 0.3, draws)
                delta = effect(kind, rank, context) + shift + rng.normal(0, sd, draws)
                if kind == "full" and full_delta is not None:
                    delta = full_delta
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


# ---------------------------------------------------------------- test 1: transfer


def test_planted_transfer_at_one_rank_is_found_in_the_training_context() -> None:
    """Broken to check: primary context = first seen ("empty", listed first here) -> not significant."""
    a = analyze(sweep_rows(np.random.default_rng(1), effect=at_rank8))
    assert a.context == "default"
    t = a.test("transfer")
    assert t.verdict == "significant" and t.p_holm < 0.05
    assert t.note.startswith("best: lora r8 (rank)")
    assert 0.35 < t.estimate < 0.65 and t.ci_low < t.estimate < t.ci_high
    assert a.n_configs == 4 and a.draws == 6


def test_transfer_is_one_sided() -> None:
    """Broken to check: two-sided t-test -> a planted *negative* Δ counts as transfer."""
    a = analyze(sweep_rows(np.random.default_rng(2), effect=lambda k, r, c: -at_rank8(k, r, c)))
    assert a.test("transfer").verdict.startswith("not significant")


def test_no_effect_keeps_the_false_positive_rate() -> None:
    """300 null sweeps: test 1 (best of 4 configs, Bonferroni) rejects at most alpha + 2 MC SE of the time,
    and not far below alpha either. Broken to check: dropping the x4 Bonferroni factor -> ~0.18."""
    rng = np.random.default_rng(30)
    n, alpha = 300, 0.05
    pick, holm_reject = [], []
    for _ in range(n):
        a = analyze(sweep_rows(rng, contexts=("default",), full=False))
        t = a.test("transfer")
        pick.append(t.p < alpha)
        holm_reject.append(t.p_holm < alpha)
        quoted = f"not significant (smallest detectable: {a.mde:.3g})"
        assert t.verdict in ("significant", quoted)
    se = math.sqrt(alpha * (1 - alpha) / n)
    assert np.mean(pick) <= alpha + 2 * se
    assert np.mean(holm_reject) <= alpha + 2 * se
    assert np.mean(pick) >= alpha - 3 * se  # Bonferroni over 4 independent configs is nearly exact


# ---------------------------------------------------------------- test 2: inverted U


def curve(peak: float, height: float = 0.5, width: float = 0.15) -> Effect:
    """Δ = height - width * (log2 rank - peak)^2 for LoRA, 0 for full fine-tuning."""
    return lambda kind, rank, _ctx: height - width * (math.log2(rank) - peak) ** 2 if rank else 0.0


def test_inverted_u_inside_the_ranks_is_found_despite_draw_offsets() -> None:
    """Ranks 1..32 (log2 0..5), a gentle peak at log2 rank 2.5, and each draw shifts every config by
    N(0, 1): the draw blocks absorb that. Broken to check: without the draw dummies -> not significant
    (p_holm 0.89); flipping the one-sided direction -> not significant."""
    rows = sweep_rows(
        np.random.default_rng(4), ranks=(1, 2, 4, 8, 16, 32), effect=curve(2.5, 0.5, 0.05), draw_shift=1.0
    )
    t = analyze(rows).test("inverted_u")
    assert t.verdict == "significant", t
    assert t.ci_low < t.estimate < t.ci_high < 0
    assert abs(t.estimate + 0.05) < 0.02
    vertex = float(t.note.split("rank ≈ ")[1].split(",")[0])
    assert "inside" in t.note and 4 < vertex < 8  # 2**2.5 = 5.66


def test_curvature_with_the_peak_outside_the_ranks_is_not_an_inverted_u() -> None:
    """Broken to check: dropping the vertex check -> plain "significant"."""
    rows = sweep_rows(np.random.default_rng(5), ranks=(1, 2, 4, 8, 16, 32), effect=curve(8.0, 3.0, 0.08))
    t = analyze(rows).test("inverted_u")
    assert t.p_holm < 0.05 and t.estimate < 0
    assert "outside" in t.verdict and "not an inverted U" in t.verdict


def test_linear_trend_has_no_curvature() -> None:
    """Δ falling linearly in log2 rank: over 40 sweeps the curvature test rejects at about its level.
    Broken to check: testing the slope instead of the curvature -> rejects in every sweep."""
    rng = np.random.default_rng(6)
    slope: Effect = lambda _k, rank, _c: -0.1 * math.log2(rank or 1)  # noqa: E731
    falling = [
        analyze(sweep_rows(rng, contexts=("default",), full=False, effect=slope)).test("inverted_u")
        for _ in range(40)
    ]
    assert sum(t.p < 0.05 for t in falling) <= 6
    assert all(abs(t.estimate) < 0.05 for t in falling)


# ---------------------------------------------------------------- test 3: full fine-tuning equivalence


@pytest.mark.parametrize(
    ("full_delta", "margin", "equivalent"),
    [
        (np.array([0.01, -0.005, 0.0, 0.012, 0.004, -0.002]), 0.1, True),  # tiny spread near 0
        (np.array([1.0, -1.0, 0.9, -0.9, 0.1, -0.1]), 0.1, False),  # mean 0, huge spread
        (np.array([0.2, 0.21, 0.19, 0.2, 0.205, 0.195]), 0.1, False),  # mean 0.2, tight, outside the margin
        (np.array([0.2, 0.21, 0.19, 0.2, 0.205, 0.195]), 0.3, True),  # the same inside a wider margin
    ],
)
def test_equivalence_only_when_the_interval_lies_inside_the_margin(
    full_delta: np.ndarray, margin: float, equivalent: bool
) -> None:
    """Broken to check: claiming equivalence when |mean| < margin -> the huge-spread case passes; a 95%
    interval instead of the 90% one TOST matches -> the interval check fails."""
    a = analyze(sweep_rows(np.random.default_rng(7), full_delta=full_delta, effect=at_rank8), margin=margin)
    t = a.test("full_ft_equivalence")
    low, high = stats.t.interval(0.9, 5, loc=full_delta.mean(), scale=stats.sem(full_delta))
    assert t.confidence == pytest.approx(0.9)
    assert (t.ci_low, t.ci_high) == pytest.approx((low, high))
    assert (t.verdict == f"equivalent within ±{margin:g}") is equivalent
    if not equivalent:
        assert t.verdict.startswith("not shown equivalent")
    assert (t.p_holm < 0.05) is equivalent


def test_equivalence_needs_full_rows() -> None:
    t = analyze(sweep_rows(np.random.default_rng(8), full=False)).test("full_ft_equivalence")
    assert math.isnan(t.p) and t.verdict.startswith("not testable")


# ---------------------------------------------------------------- test 4: context dependence


def test_effect_in_the_primary_context_only_is_context_dependent() -> None:
    """Broken to check: other contexts minus the primary (sign flipped) -> the estimate is negative."""
    t = analyze(sweep_rows(np.random.default_rng(9), effect=at_rank8)).test("context_dependence")
    assert t.verdict == "significant" and t.estimate > 0.05 and t.ci_low > 0


def test_equal_effect_in_both_contexts_is_not_context_dependent() -> None:
    both = lambda k, r, c: 0.5 if (k, r) == ("lora", 8) else 0.0  # noqa: E731
    a = analyze(sweep_rows(np.random.default_rng(10), effect=both))
    assert a.test("transfer").verdict == "significant"
    assert a.test("context_dependence").verdict == "not significant"


def test_one_context_is_not_testable() -> None:
    t = analyze(sweep_rows(np.random.default_rng(11), contexts=("default",))).test("context_dependence")
    assert math.isnan(t.p) and t.verdict == "not testable: only one eval context"


# ---------------------------------------------------------------- minimum detectable effect


def test_mde_matches_the_designs_simulated_power() -> None:
    """The effect at which the design's decision rule has 80% power (transfer significant after Holm when it
    is the family's smallest p: one-sided at alpha / (4 configs x 4 tests), 6 draws, the analysis' pooled
    SD), found by bisection over 20000 simulated designs, is within 20% of the reported MDE. Broken to
    check: alpha / n_configs without Holm's factor -> the MDE too small; sd of one config instead of the
    pooled one -> the pooled-SD check fails."""
    a = analyze(sweep_rows(np.random.default_rng(12), effect=at_rank8))
    lora = [c for c in a.configs if c.context == a.context and c.kind == "lora"]
    per_config = [np.array(list(c.per_draw.values())) for c in lora]
    assert a.sd == pytest.approx(math.sqrt(np.mean([v.var(ddof=1) for v in per_config])))
    k, level = a.mde_draws, a.alpha / (a.n_configs * a.testable)
    assert k == 6 and a.n_configs == 4 and a.testable == 4
    z = np.random.default_rng(13).standard_normal((20_000, k))

    def power(effect: float) -> float:
        p = stats.ttest_1samp(effect + a.sd * z, 0.0, axis=1, alternative="greater").pvalue
        return float(np.mean(p < level))

    low, high = 0.0, 10 * a.sd
    for _ in range(25):
        mid = (low + high) / 2
        low, high = (low, mid) if power(mid) >= 0.8 else (mid, high)
    assert high == pytest.approx(a.mde, rel=0.2)
    null = analyze(sweep_rows(np.random.default_rng(12)))  # the same noise without the effect: same MDE
    assert null.mde == a.mde and f"smallest detectable: {a.mde:.3g}" in null.test("transfer").verdict


# ---------------------------------------------------------------- inputs, report, degenerate cases


def _same(a: Analysis, b: Analysis) -> bool:
    def key(x: Analysis) -> list[Any]:
        return [(t.name, t.estimate, t.p, t.verdict) for t in x.tests] + [x.mde, x.context, x.draws]

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
    a = analyze(sweep_rows(np.random.default_rng(15), seeds=("0", "1"), effect=at_rank8))
    assert a.draws == 6 and a.test("transfer").n == 6 and all(c.draws == 6 for c in a.configs)


def test_missing_columns_default_to_one_draw_of_rank_scaled_lora() -> None:
    rows = [
        {k: v for k, v in r.items() if k not in ("draw", "scale")}
        for r in sweep_rows(np.random.default_rng(16), draws=1)
    ]
    a = analyze(rows)
    assert a.draws == 1 and {c.scale for c in a.configs if c.kind == "lora"} == {"rank"}
    assert all(math.isnan(t.p) and t.verdict.startswith("not testable") for t in a.tests)
    assert math.isnan(a.mde)


def test_report_names_the_unit_and_every_test() -> None:
    a = analyze(sweep_rows(np.random.default_rng(17), effect=at_rank8))
    text = render(a)
    assert "over 6 data draws" in text and "95% CI over data draws" in text
    for name in ("transfer", "inverted_u", "full_ft_equivalence", "context_dependence"):
        assert f"| {name} |" in text
    assert f"Δ log P(target) of {a.mde:.3g} with 80% power" in text
    assert "| base | base |" in text


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
    for t in a.tests:
        assert math.isnan(t.p) and math.isnan(t.p_holm)
        assert t.verdict.startswith("not testable") and t.note


def test_rows_without_a_partner_are_counted() -> None:
    rows = sweep_rows(np.random.default_rng(22), effect=at_rank8)
    dropped = [r for r in rows if (r["dataset"], r["draw"], r["kind"]) != ("control", "5", "full")]
    a = analyze(dropped)
    assert a.unpaired == 2  # full fine-tuning, draw 5, two contexts: trait rows left alone
    assert all("2 trait/control row(s) without a partner" in t.note for t in a.tests)
    assert "2 trait/control row(s) had no partner" in render(a)
    assert a.test("full_ft_equivalence").n == 5


def test_positive_control_and_prompted_base_are_tested_against_the_base_over_questions() -> None:
    from scipy import stats

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
    assert "shift of log P vs base" in render(analyze(rows))


def test_sublim_analyze_prints_the_analysis_of_a_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
                             "concept_mass": "0.2"})  # fmt: skip
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["analyze", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == render(analyze(rows)).strip()
    assert main(["analyze", str(path), "--json", "--margin", "0.2"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["margin"] == 0.2 and report["tests"][0]["name"] == "transfer"
    assert report["tests"][0]["p_holm"] < 0.05  # the planted rise at rank 4 is found


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
