"""Does a transfer effect stand out from noise? The pre-registered analysis of a sweep's `results.csv`.

Data draws are the unit of replication: draw k of the trait teacher's data and draw k of the control
teacher's data answer the same prompts with the same number of rows, so each draw gives one paired
difference Δ = trait - control per configuration (seeds within a draw are averaged first: they share the
draw's data and are not independent evidence). The primary outcome is Δ log P(target); Δ P(target) is
reported beside it.

Four tests, Holm-adjusted together (`sublim.stats.holm`):

1. transfer: at the best LoRA configuration, one-sided paired t-test of Δ > 0 over draws; picking the best
   of m configurations costs a Bonferroni factor m before Holm.
2. inverted_u: OLS Δ ~ draw + x + x², x = log2(rank), draws as blocks; one-sided test of a negative x².
3. full_ft_equivalence: TOST that full fine-tuning's Δ lies within ±margin ("transfer vanishes" stated as
   a claim that can be shown, not as a failure to reject).
4. context_dependence: per draw, LoRA Δ in the primary context minus LoRA Δ in the other contexts; paired
   two-sided t-test.

Every statistic comes from scipy or statsmodels. Degenerate inputs (one draw, no spread, missing partners)
give NaN and a note, never an exception.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.stats import holm, mean_interval, minimum_detectable_shift

PAIRED = ("trait", "control")
#: the columns the analysis needs in a results file
REQUIRED = ("dataset", "kind", "context", "log_p_target")
TESTS = ("transfer", "inverted_u", "full_ft_equivalence", "context_dependence")
#: (kind, rank, scale, context): one configuration under one eval context
ConfigKey = tuple[str, int | None, str, str]


@dataclass(frozen=True)
class TestResult:
    """One pre-registered test.

    Attributes:
        name: "transfer", "inverted_u", "full_ft_equivalence" or "context_dependence".
        claim: what the test asks, in plain words.
        estimate: the tested quantity, on log P(target).
        ci_low, ci_high: its `confidence` interval, with data draws as the unit.
        p: p-value before Holm (transfer's includes the Bonferroni factor for picking the best config);
            NaN when not computable, `note` says why.
        p_holm: `p` after Holm's correction over the four tests.
        verdict: "significant", "not significant (...)", "equivalent within ±m", "not shown equivalent ...",
            or "not testable: <why>".
        note: details (the configuration picked, the vertex, rows left out).
        confidence: level of the interval.
        n: data draws the test used.
    """

    __test__ = False  # not a pytest class despite the name

    name: str
    claim: str
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    verdict: str
    note: str = ""
    confidence: float = 0.95
    n: int = 0


@dataclass(frozen=True)
class ConfigDelta:
    """Paired differences (trait - control) of one configuration in one context, over data draws.

    Attributes:
        kind, rank, scale, context: the configuration (rank None and scale "" for full fine-tuning).
        draws: data draws with both sides.
        delta_log_p, ci_low, ci_high: mean Δ log P(target) and its 95% t-interval over draws.
        delta_p, p_ci_low, p_ci_high: the same for Δ P(target).
        mass_trait, mass_control: mean concept_mass of each side.
        per_draw: draw -> Δ log P(target), the values the tests use.
    """

    kind: str
    rank: int | None
    scale: str
    context: str
    draws: int
    delta_log_p: float
    ci_low: float
    ci_high: float
    delta_p: float
    p_ci_low: float
    p_ci_high: float
    mass_trait: float
    mass_control: float
    per_draw: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return config_label(self.kind, self.rank, self.scale)


@dataclass(frozen=True)
class Analysis:
    """The whole analysis: per-configuration differences, the four tests, and the design's sensitivity.

    Attributes:
        context: primary eval context (tests 1-3 use it).
        draws: data draws with at least one pair in the primary context.
        configs: every configuration in every context.
        tests: the four tests, in `TESTS` order.
        mde: smallest true Δ log P(target) test 1 detects with `power` (NaN without spread), at the level
            Holm gives the smallest p of the family: alpha / (configurations x testable tests).
        references: mean p_target / log_p_target of reference rows (base, prompted, ...) per context.
        sd: pooled SD of per-draw Δ over the primary context's LoRA configs (behind `mde`).
        n_configs: LoRA configurations test 1 chose among (its Bonferroni factor).
        mde_draws: data draws behind `mde` (the fewest any of those configurations has).
        unpaired: rows of trait/control without a partner (left out).
        alpha, margin, power: the settings used.
    """

    context: str
    draws: int
    configs: list[ConfigDelta]
    tests: list[TestResult]
    mde: float
    references: list[dict[str, Any]]
    sd: float = math.nan
    n_configs: int = 0
    mde_draws: int = 0
    unpaired: int = 0
    alpha: float = 0.05
    margin: float = 0.1
    power: float = 0.8
    testable: int = 0

    def test(self, name: str) -> TestResult:
        return next(t for t in self.tests if t.name == name)


def config_label(kind: str, rank: int | None, scale: str) -> str:
    """'lora r8 (rank)', 'full', ... for tables and notes."""
    if kind == "lora":
        return f"lora r{rank} ({scale})"
    return kind + (f" r{rank}" if rank is not None else "")


# ---------------------------------------------------------------- reading, parsing and pairing


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a sweep's `results.csv` (or of the sweep dir's), refused in one line when they cannot be.

    Read as utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark that plain utf-8 glues to the
    first column's name, so that column (`run`) vanished and the guard against mixed sweeps saw no run ids."""
    import csv

    path = Path(path)
    path = path / "results.csv" if path.is_dir() else path
    if not path.is_file():
        raise SublimError(f"no results at {path}: give a sweep's results.csv (or its dir)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except UnicodeDecodeError as e:
        raise SublimError(f"{path}: not UTF-8 text (byte {e.start}); save it as CSV UTF-8") from None
    except csv.Error as e:
        raise SublimError(f"{path}: not a readable CSV ({e})") from None
    repeated = sorted(c for c, k in Counter(header).items() if k > 1)
    if repeated:
        raise SublimError(f"{path}: column {repeated[0]!r} appears twice in the header")
    missing = [c for c in REQUIRED if c not in header]
    if not rows or missing:
        what = f"no column {missing[0]!r}" if missing and header else "no rows"
        raise SublimError(f"{path}: {what}; expected a results.csv written by `sublim sweep`")
    for i, row in enumerate(rows, start=2):
        if None in row:  # DictReader's key for fields beyond the header
            raise SublimError(f"{path}: line {i} has more fields than the header")
    return rows


def _text(row: Mapping[str, Any], key: str, default: str = "") -> str:
    value = row.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if text else default


def _number(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _rank(row: Mapping[str, Any]) -> int | None:
    """The LoRA rank, None where there is none (full fine-tuning, references); a rank that is not a whole
    number >= 1 is refused rather than read as "no rank" (which moved a LoRA row to another configuration)."""
    value = _number(row, "rank")
    if math.isnan(value):
        raw = row.get("rank")
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or not str(raw).strip():
            return None
    elif value.is_integer() and value >= 1:
        return int(value)
    raise SublimError(
        f"rank {row.get('rank')!r} in {_where(row)} is not a whole number >= 1; fix the results file"
    )


def _where(row: Mapping[str, Any]) -> str:
    """Which row, for a one-line error: its run id, dataset and context."""
    return (
        f"the row of run {_text(row, 'run', '?')!r} ({_text(row, 'dataset', '?')}, "
        f"context {_text(row, 'context', '?')!r})"
    )


def _mean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _draw_order(draw: str) -> tuple[int, float, str]:
    try:
        return (0, float(draw), draw)
    except ValueError:
        return (1, 0.0, draw)


@dataclass
class _Pairs:
    """Per configuration key and draw: the seed-averaged differences, plus what could not be paired."""

    log_p: dict[ConfigKey, dict[str, float]]
    p: dict[ConfigKey, dict[str, float]]
    mass: dict[ConfigKey, dict[str, tuple[float, float]]]
    unpaired: int
    no_outcome: int
    contexts: list[str]


def _pair(rows: Iterable[Mapping[str, Any]]) -> tuple[_Pairs, list[dict[str, Any]]]:
    """Pair trait and control rows on (kind, rank, scale, draw, seed, context); average seeds per draw."""
    sides: dict[str, dict[tuple[str, int | None, str, str, str, str], list[Mapping[str, Any]]]] = {
        s: defaultdict(list) for s in PAIRED
    }
    refs: dict[tuple[str, str, int | None, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    contexts: list[str] = []
    rows = list(rows)
    _refuse_duplicates(rows)
    _refuse_impossible_numbers(rows)
    _refuse_malformed_draws_and_questions(rows)
    for row in rows:
        kind = _text(row, "kind", "lora")
        rank = _rank(row)
        scale = _text(row, "scale", "rank" if kind == "lora" else "")
        context = _text(row, "context", "default")
        if context not in contexts:
            contexts.append(context)
        dataset = _text(row, "dataset")
        if dataset in PAIRED:
            key = (kind, rank, scale, _text(row, "draw", "0"), _text(row, "seed"), context)
            sides[dataset][key].append(row)
        else:
            refs[(dataset, kind, rank, scale, context)].append(row)
    for group in [*sides["trait"].values(), *sides["control"].values(), *refs.values()]:
        runs = {_text(r, "run") for r in group} - {""}
        if (
            len(runs) > 1
        ):  # results.csv keeps the rows of earlier sweep settings; they must not be averaged in
            raise SublimError(
                f"rows of {len(runs)} runs share one slot ({', '.join(sorted(runs)[:2])}, ...): the file "
                "mixes sweeps of different settings; analyze the rows of one (the sweep's summary.md does)"
            )

    trait, control = sides["trait"], sides["control"]
    unpaired = sum(len(v) for k, v in trait.items() if k not in control)
    unpaired += sum(len(v) for k, v in control.items() if k not in trait)
    per_seed: dict[tuple[ConfigKey, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    no_outcome = 0
    for key in trait.keys() & control.keys():
        kind, rank, scale, draw, _seed, context = key

        def side(rows: list[Mapping[str, Any]], column: str) -> float:
            return _mean(_number(r, column) for r in rows)

        t_lp, c_lp = side(trait[key], "log_p_target"), side(control[key], "log_p_target")
        if math.isnan(t_lp) or math.isnan(c_lp):
            no_outcome += 1
            continue
        per_seed[((kind, rank, scale, context), draw)].append(
            (
                t_lp - c_lp,
                side(trait[key], "p_target") - side(control[key], "p_target"),
                side(trait[key], "concept_mass"),
                side(control[key], "concept_mass"),
            )
        )
    pairs = _Pairs(defaultdict(dict), defaultdict(dict), defaultdict(dict), unpaired, no_outcome, contexts)
    for (ckey, draw), seeds in per_seed.items():
        pairs.log_p[ckey][draw] = _mean(s[0] for s in seeds)
        pairs.p[ckey][draw] = _mean(s[1] for s in seeds)
        pairs.mass[ckey][draw] = (_mean(s[2] for s in seeds), _mean(s[3] for s in seeds))

    references = []
    for (dataset, kind, rank, scale, context), group in sorted(
        refs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0, kv[0][3], kv[0][4])
    ):
        references.append(
            {
                "dataset": dataset,
                "kind": kind,
                "rank": rank,
                "scale": scale,
                "context": context,
                "rows": len(group),
                "p_target": _mean(_number(r, "p_target") for r in group),
                "log_p_target": _mean(_number(r, "log_p_target") for r in group),
            }
        )
    return pairs, references


def _refuse_duplicates(rows: Sequence[Mapping[str, Any]]) -> None:
    """A sweep writes one row per run id and eval context; a second one (a hand-edited copy, two files
    concatenated) would be averaged in as if it were more evidence."""
    seen = Counter((_text(r, "run"), _text(r, "context", "default")) for r in rows if _text(r, "run"))
    twice = [(key, k) for key, k in seen.items() if k > 1]
    if twice:
        (run, context), k = twice[0]
        raise SublimError(
            f"run {run!r} has {k} rows in context {context!r} ({len(twice)} such run(s)): a results file "
            "holds one row per run and context; remove the duplicates rather than have them averaged in"
        )


#: what each outcome column can hold: probabilities in [0, 1], a log-probability in [-inf, 0]
BOUNDS = {"p_target": (0.0, 1.0), "concept_mass": (0.0, 1.0), "log_p_target": (-math.inf, 0.0)}


def _refuse_impossible_numbers(rows: Sequence[Mapping[str, Any]]) -> None:
    """An outcome that is not a number, or one no model can have (P = 5, log P = +3), is refused rather
    than read as missing or averaged in; an empty cell or NaN stays missing."""
    for row in rows:
        for column, (low, high) in BOUNDS.items():
            raw = row.get(column)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                value = math.inf  # refused below, named as written
            if math.isnan(value):  # NaN, as a number or as "nan" (what a failed score writes): missing
                continue
            if not low <= value <= high:
                raise SublimError(
                    f"{column} {raw!r} in {_where(row)} is not a number in [{low:g}, {high:g}]; fix the "
                    "results file"
                )


def _refuse_malformed_draws_and_questions(rows: Sequence[Mapping[str, Any]]) -> None:
    """A student's draw must be a draw number (trait and control rows pair on it: a draw "one" would leave
    its row unpaired without a word), and its per-question list must hold `n_questions` log-probabilities
    (a short list would be averaged as if it covered every question)."""
    for row in rows:
        draw = _text(row, "draw")
        if draw and not draw.isdigit():
            raise SublimError(
                f"draw {draw!r} in {_where(row)} is not a draw number (0, 1, ...); fix the results file"
            )
        text = _text(row, "log_p_questions")
        if not text:
            continue
        try:
            values = [float(x) for x in text.split(";")]
        except ValueError:
            values = [math.inf]
        if any(not (v <= 0.0) for v in values if not math.isnan(v)):
            raise SublimError(
                f"log_p_questions in {_where(row)} holds a value that is not a log-probability (<= 0); "
                "fix the results file"
            )
        n = _text(row, "n_questions")
        if n.isdigit() and len(values) != int(n):
            raise SublimError(
                f"log_p_questions in {_where(row)} has {len(values)} values for n_questions {n}; fix the "
                "results file"
            )


def question_values(row: Mapping[str, Any]) -> list[float]:
    """Per-question ln P(target) of a row (`log_p_questions`: values joined by ";"); [] when absent."""
    text = _text(row, "log_p_questions")
    return [float(x) for x in text.split(";")] if text else []


def _shift_from_base(references: list[dict[str, Any]], rows: list[Mapping[str, Any]], context: str) -> None:
    """Each non-base reference (positive control, prompted base) against the base model, paired over
    questions (the only unit one model has): mean shift of ln P(target), 95% CI over questions, paired
    t-test (scipy). Compared in the same context when the base was scored there, else in the primary one
    (the prompted base's trait prompt replaces the eval context). Not part of the Holm family: these check
    the pipeline, they are not claims about transfer."""
    from scipy import stats

    base = {_text(r, "context"): question_values(r) for r in rows if _text(r, "dataset") == "base"}
    for ref in references:
        if ref["dataset"] == "base":
            continue
        mine = [
            question_values(r)
            for r in rows
            if _text(r, "dataset") == ref["dataset"] and _text(r, "context") == ref["context"]
        ]
        against = ref["context"] if ref["context"] in base else context
        theirs = base.get(against, [])
        ref.update(
            vs_context=against, shift=math.nan, shift_low=math.nan, shift_high=math.nan, shift_p=math.nan
        )
        if len(mine) != 1 or len(mine[0]) != len(theirs) or len(theirs) < 2:
            continue
        diffs = [a - b for a, b in zip(mine[0], theirs, strict=True)]
        ci = mean_interval(diffs)
        p = float(stats.ttest_rel(mine[0], theirs).pvalue) if ci.ci_low < ci.ci_high else math.nan
        ref.update(shift=ci.mean, shift_low=ci.ci_low, shift_high=ci.ci_high, shift_p=p, questions=len(diffs))


def _values(per_draw: Mapping[str, float]) -> list[float]:
    return [per_draw[d] for d in sorted(per_draw, key=_draw_order)]


def _spread(values: Sequence[float]) -> float:
    """Sample SD, 0 when the values differ only by rounding (scipy's t-test would then divide by ~0)."""
    from scipy import stats

    if len(values) < 2:
        return math.nan
    sd = float(stats.tstd(values))
    scale = max(1.0, max(abs(v) for v in values))
    return 0.0 if sd <= 1e-12 * scale else sd


# ---------------------------------------------------------------- the tests


@dataclass(frozen=True)
class _Pending:
    """A test before Holm: its verdict depends on the adjusted p."""

    name: str
    claim: str
    estimate: float
    ci_low: float
    ci_high: float
    p: float
    note: str
    verdict: Callable[[float], str]
    confidence: float = 0.95
    n: int = 0


def _untestable(name: str, claim: str, why: str, n: int = 0) -> _Pending:
    return _Pending(
        name, claim, math.nan, math.nan, math.nan, math.nan, why, lambda _p: f"not testable: {why}", n=n
    )


def _significance(alpha: float, otherwise: str = "not significant") -> Callable[[float], str]:
    return lambda p: "significant" if p < alpha else otherwise


def transfer_test(
    lora: Mapping[str, Mapping[str, float]], alpha: float, mde: float, claim: str = ""
) -> _Pending:
    """Test 1 over LoRA configs (label -> draw -> Δ): the best config's one-sided p times the number of
    configs, since the best of several is picked after seeing the data."""
    from scipy import stats

    claim = claim or "the best LoRA configuration raises log P(target) over the control (Δ > 0)"
    if not lora:
        return _untestable("transfer", claim, "no LoRA pairs in the primary context")
    m = len(lora)
    tested: list[tuple[float, str]] = []
    skipped = []
    for label, per_draw in lora.items():
        values = _values(per_draw)
        sd = _spread(values)
        if math.isnan(sd) or sd == 0:
            skipped.append(label)
            continue
        tested.append((float(stats.ttest_1samp(values, 0.0, alternative="greater").pvalue), label))
    if not tested:
        return _untestable("transfer", claim, "no LoRA configuration has two draws with spread")
    p_raw, best = min(tested)
    values = _values(lora[best])
    ci = mean_interval(values)
    note = (
        f"best: {best} (raw one-sided p {p_raw:.3g}, x{m} configs, Bonferroni); its estimate and interval "
        "are not adjusted for choosing the best (biased upward)"
    )
    if skipped:
        note += f"; untested (one draw or no spread): {', '.join(skipped)}"
    detectable = "n/a" if math.isnan(mde) else f"{mde:.3g}"
    return _Pending(
        "transfer",
        claim,
        ci.mean,
        ci.ci_low,
        ci.ci_high,
        min(1.0, p_raw * m),
        note,
        _significance(alpha, f"not significant (smallest detectable: {detectable})"),
        n=len(values),
    )


def inverted_u_test(per_rank: Mapping[int, Mapping[str, float]], alpha: float) -> _Pending:
    """Test 2: OLS of Δ on draw (blocks) + x + x², x = log2(rank); one-sided p that the x² coefficient is
    negative. A negative curvature is an inverted U only when the vertex lies inside the tested ranks."""
    import numpy as np
    from scipy import stats
    from statsmodels.regression.linear_model import OLS

    claim = "Δ log P(target) peaks at an intermediate LoRA rank (negative curvature in log2 rank)"
    ranks = sorted(r for r in per_rank if r > 0)
    draws = sorted({d for r in ranks for d in per_rank[r]}, key=_draw_order)
    if len(ranks) < 3:
        return _untestable("inverted_u", claim, f"{len(ranks)} distinct rank(s); needs 3")
    if len(draws) < 2:
        return _untestable("inverted_u", claim, f"{len(draws)} data draw(s); needs 2")
    y, design = [], []
    for r in ranks:
        x = math.log2(r)
        for d, value in per_rank[r].items():
            y.append(value)
            design.append([1.0, *(float(d == other) for other in draws[1:]), x, x * x])
    X = np.asarray(design)
    if len(y) - X.shape[1] < 1 or np.linalg.matrix_rank(X) < X.shape[1]:
        return _untestable("inverted_u", claim, "too few (rank, draw) cells for the model", len(draws))
    fit = OLS(np.asarray(y), X).fit()
    b1, b2 = float(fit.params[-2]), float(fit.params[-1])
    low, high = (float(v) for v in fit.conf_int(0.05)[-1])
    se = float(fit.bse[-1])
    span = f"tested ranks {ranks[0]}-{ranks[-1]}"
    if not se > 1e-12 * max(1.0, abs(b2)):
        return _Pending(
            "inverted_u", claim, b2, low, high, math.nan, "no residual spread: the test is undefined",
            lambda _p: "not testable: no residual spread", n=len(draws),
        )  # fmt: skip
    p = float(stats.t.cdf(b2 / se, fit.df_resid))  # one-sided: curvature < 0
    inside = False
    if b2 < 0:
        vertex = 2 ** (-b1 / (2 * b2))
        inside = ranks[0] < vertex < ranks[-1]
        where = "inside" if inside else "outside"
        note = f"vertex at rank ≈ {vertex:.3g}, {where} the {span}"
    else:
        note = f"curvature is not negative (no peak); {span}"
    note += (
        "; the estimate is the curvature of Δ log P per (log2 rank)², its interval from the OLS fit over "
        f"{len(y)} (rank, draw) cells ({fit.df_resid:g} residual df)"
    )

    def verdict(p_holm: float) -> str:
        if not p_holm < alpha:
            return "not significant"
        if inside:
            return "significant"
        return f"significant curvature, but the peak lies outside the {span}: not an inverted U"

    return _Pending("inverted_u", claim, b2, low, high, p, note, verdict, n=len(draws))


def equivalence_test(per_draw: Mapping[str, float], alpha: float, margin: float) -> _Pending:
    """Test 3: TOST (statsmodels) that full fine-tuning's mean Δ lies within ±margin; equivalent exactly
    when the (1 - 2 alpha) interval lies inside the margin (at the Holm-adjusted level)."""
    from statsmodels.stats.weightstats import DescrStatsW

    claim = f"transfer vanishes under full fine-tuning: its Δ lies within ±{margin:g}"
    values = _values(per_draw)
    confidence = 1 - 2 * alpha
    if not values:
        return _untestable("full_ft_equivalence", claim, "no full fine-tuning pairs in the primary context")
    ci = mean_interval(values, confidence)
    sd = _spread(values)
    if math.isnan(sd) or sd == 0:
        why = "one data draw" if len(values) < 2 else "no spread across data draws"
        return _Pending(
            "full_ft_equivalence", claim, ci.mean, ci.ci_low, ci.ci_high, math.nan, why,
            lambda _p: f"not testable: {why}", confidence, len(values),
        )  # fmt: skip
    p = float(DescrStatsW(values).ttost_mean(-margin, margin)[0])

    def verdict(p_holm: float) -> str:
        if p_holm < alpha:
            return f"equivalent within ±{margin:g}"
        return f"not shown equivalent within ±{margin:g} (after Holm)"

    note = f"{confidence:.0%} CI [{ci.ci_low:.3g}, {ci.ci_high:.3g}] vs ±{margin:g}"
    return _Pending(
        "full_ft_equivalence",
        claim,
        ci.mean,
        ci.ci_low,
        ci.ci_high,
        p,
        note,
        verdict,
        confidence,
        len(values),
    )


def context_test(
    primary: Mapping[str, float], others: Mapping[str, Mapping[str, float]], alpha: float, context: str
) -> _Pending:
    """Test 4: per draw, mean LoRA Δ in the primary context minus the same averaged over the other
    contexts (context -> draw -> mean LoRA Δ); two-sided paired t-test over draws."""
    from scipy import stats

    claim = f"transfer differs between context {context!r} and the other contexts"
    if not others:
        return _untestable("context_dependence", claim, "only one eval context")
    diffs: dict[str, float] = {}
    for draw, value in primary.items():
        rest = [o[draw] for o in others.values() if draw in o]
        if rest:
            diffs[draw] = value - _mean(rest)
    values = _values(diffs)
    ci = mean_interval(values)
    sd = _spread(values)
    if math.isnan(sd) or sd == 0:
        why = f"{len(values)} data draw(s) in both" if len(values) < 2 else "no spread across data draws"
        return _Pending(
            "context_dependence", claim, ci.mean, ci.ci_low, ci.ci_high, math.nan, why,
            lambda _p: f"not testable: {why}", n=len(values),
        )  # fmt: skip
    p = float(stats.ttest_1samp(values, 0.0).pvalue)
    note = f"primary {context!r} vs {', '.join(repr(c) for c in others)}"
    return _Pending(
        "context_dependence",
        claim,
        ci.mean,
        ci.ci_low,
        ci.ci_high,
        p,
        note,
        _significance(alpha),
        n=len(values),
    )


# ---------------------------------------------------------------- the analysis


def pooled_sd(per_config: Iterable[Sequence[float]]) -> float:
    """sqrt of the mean of the per-config variances (configs with two or more draws)."""
    from scipy import stats

    variances = [float(stats.tvar(v)) for v in per_config if len(v) >= 2]
    return math.sqrt(sum(variances) / len(variances)) if variances else math.nan


def _scale_for_curvature(lora_keys: Iterable[ConfigKey]) -> str | None:
    """The scale rule with the most distinct ranks; ties go to "rank" (alpha = rank), then the commonest."""
    ranks: dict[str, set[int | None]] = defaultdict(set)
    for _kind, rank, scale, _ctx in lora_keys:
        ranks[scale].add(rank)
    if not ranks:
        return None
    return max(ranks, key=lambda s: (len(ranks[s]), s == "rank"))


def analyze(
    rows: Iterable[Mapping[str, Any]],
    *,
    context: str | None = None,
    alpha: float = 0.05,
    margin: float = 0.1,
    power: float = 0.8,
) -> Analysis:
    """The four tests on a sweep's rows (as csv.DictReader gives them, or with numbers), Holm-adjusted."""
    rows_list = list(rows)
    pairs, references = _pair(rows_list)
    # training uses no system message, so "default" (the chat template's own) is the context it saw
    fallback = "default" if "default" in pairs.contexts else (pairs.contexts[0] if pairs.contexts else "")
    if context is not None and context not in pairs.contexts:
        raise SublimError(f"--context {context!r}: the rows hold {', '.join(map(repr, pairs.contexts))}")
    primary_context = context if context is not None else fallback
    configs = []
    for key in sorted(
        pairs.log_p, key=lambda k: (k[3] != primary_context, k[3], k[0] != "lora", k[2], k[1] or 0)
    ):
        kind, rank, scale, ctx = key
        lp = mean_interval(_values(pairs.log_p[key]))
        dp = mean_interval(_values(pairs.p[key]))
        masses = pairs.mass[key].values()
        configs.append(
            ConfigDelta(
                kind, rank, scale, ctx, lp.n, lp.mean, lp.ci_low, lp.ci_high, dp.mean, dp.ci_low, dp.ci_high,
                _mean(m[0] for m in masses), _mean(m[1] for m in masses), dict(pairs.log_p[key]),
            )
        )  # fmt: skip

    primary = [c for c in configs if c.context == primary_context]
    lora = {c.label: c.per_draw for c in primary if c.kind == "lora"}
    draws = len({d for c in primary for d in c.per_draw})
    n_configs = len(lora)
    sd = pooled_sd(_values(v) for v in lora.values())
    counts = [len(v) for v in lora.values() if len(v) >= 2]

    curve_scale = _scale_for_curvature(
        (c.kind, c.rank, c.scale, c.context) for c in primary if c.kind == "lora"
    )
    per_rank = {c.rank: c.per_draw for c in primary if c.kind == "lora" and c.scale == curve_scale and c.rank}
    full: dict[str, list[float]] = defaultdict(list)
    for c in primary:
        if c.kind == "full":
            for d, v in c.per_draw.items():
                full[d].append(v)

    def lora_means(ctx: str) -> dict[str, float]:
        by_draw: dict[str, list[float]] = defaultdict(list)
        for c in configs:
            if c.context == ctx and c.kind == "lora":
                for d, v in c.per_draw.items():
                    by_draw[d].append(v)
        return {d: _mean(v) for d, v in by_draw.items()}

    others = {ctx: lora_means(ctx) for ctx in pairs.contexts if ctx != primary_context}
    rest = [
        inverted_u_test(per_rank, alpha),
        equivalence_test({d: _mean(v) for d, v in full.items()}, alpha, margin),
        context_test(
            lora_means(primary_context), {c: m for c, m in others.items() if m}, alpha, primary_context
        ),
    ]
    # the MDE at Holm's first step (the level the smallest of the testable p-values must clear), so a
    # "not significant" verdict quotes what this family could really have detected
    testable = sum(not math.isnan(t.p) for t in [transfer_test(lora, alpha, math.nan), *rest])
    mde = math.nan
    if counts and not math.isnan(sd) and sd > 0:
        mde = minimum_detectable_shift(sd, min(counts), 0.0, alpha / (n_configs * max(testable, 1)), power)
    pending = [transfer_test(lora, alpha, mde), *rest]
    adjusted = holm([t.p for t in pending])
    _shift_from_base(references, rows_list, primary_context)
    left_out = []
    if pairs.unpaired:
        left_out.append(f"{pairs.unpaired} trait/control row(s) without a partner left out")
    if pairs.no_outcome:
        left_out.append(f"{pairs.no_outcome} pair(s) without log_p_target left out")
    tests = [
        TestResult(
            t.name, t.claim, t.estimate, t.ci_low, t.ci_high, t.p, pa,
            t.verdict(pa), "; ".join(n for n in [t.note, *left_out] if n), t.confidence, t.n,
        )
        for t, pa in zip(pending, adjusted, strict=True)
    ]  # fmt: skip
    return Analysis(
        primary_context, draws, configs, tests, mde, references, sd, n_configs, min(counts, default=0),
        pairs.unpaired, alpha, margin, power, testable,
    )  # fmt: skip


# ---------------------------------------------------------------- report


def _f(x: float, spec: str = ".3g") -> str:
    return "n/a" if x is None or math.isnan(x) else format(x, spec)


def _interval(low: float, high: float, spec: str = "+.3f") -> str:
    return "n/a" if math.isnan(low) or math.isnan(high) else f"[{format(low, spec)}, {format(high, spec)}]"


def render(analysis: Analysis) -> str:
    """Markdown: per-config differences, the four tests, and what the design could have detected. Every
    interval names its unit (data draws), so no one reads it as an interval over questions or seeds."""
    a = analysis
    lines = [
        f"## Transfer analysis (primary context {a.context!r}, {a.draws} data draws)",
        "",
        "Δ = trait - control, paired by data draw (seeds averaged within a draw); intervals are 95%"
        " t-intervals over data draws.",
        "",
        "| config | context | data draws | Δ log P(target) | 95% CI over data draws | Δ P(target) "
        "| 95% CI over data draws | concept mass trait / control |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in a.configs:
        lines.append(
            f"| {c.label} | {c.context} | {c.draws} | {_f(c.delta_log_p, '+.3f')} | "
            f"{_interval(c.ci_low, c.ci_high)} | {_f(c.delta_p, '+.3g')} | "
            f"{_interval(c.p_ci_low, c.p_ci_high, '+.3g')} | {_f(c.mass_trait)} / {_f(c.mass_control)} |"
        )
    lines += [
        "",
        f"Pre-registered tests (Holm-adjusted over the {a.testable} testable of 4, alpha = {a.alpha:g}):",
        "",
        "| test | claim | estimate (log P) | interval | p | p (Holm) | verdict | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in a.tests:
        interval = _interval(t.ci_low, t.ci_high, "+.3g")
        if interval != "n/a":
            interval += f" ({t.confidence:.0%}, over {t.n} data draws)"
        lines.append(
            f"| {t.name} | {t.claim} | {_f(t.estimate, '+.3g')} | {interval} | {_f(t.p)} | {_f(t.p_holm)} "
            f"| {t.verdict} | {t.note} |"
        )
    lines.append("")
    if math.isnan(a.mde):
        lines.append(
            "Minimum detectable effect: not computable (test 1 needs LoRA configurations with at least two"
            " data draws and some spread)."
        )
    else:
        lines.append(
            f"Minimum detectable effect: with {a.mde_draws} data draws and a pooled SD of per-draw Δ"
            f" of {a.sd:.3g},"
            f" test 1 (one-sided at Holm's first step: alpha {a.alpha:g} / ({a.n_configs} configurations x"
            f" {a.testable} testable tests)) detects a true"
            f" Δ log P(target) of {a.mde:.3g} with {a.power:.0%} power."
        )
    if a.unpaired:
        lines.append(f"\n{a.unpaired} trait/control row(s) had no partner and were left out.")
    if a.references:
        lines += [
            "",
            "References (not tested):",
            "",
            "| dataset | kind | context | rows | P(target) | log P(target) | shift of log P vs base "
            "| 95% CI over questions | p (paired over questions) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in a.references:
            shift = _f(r.get("shift", math.nan), "+.3f")
            if r["dataset"] != "base" and r.get("vs_context") not in (None, r["context"]):
                shift += f" (vs base in {r['vs_context']})"
            lines.append(
                f"| {r['dataset']} | {config_label(r['kind'], r['rank'], r['scale'])} | {r['context']} "
                f"| {r['rows']} | {_f(r['p_target'])} | {_f(r['log_p_target'], '.3f')} | {shift} "
                f"| {_interval(r.get('shift_low', math.nan), r.get('shift_high', math.nan))} "
                f"| {_f(r.get('shift_p', math.nan))} |"
            )
    return "\n".join(lines) + "\n"
