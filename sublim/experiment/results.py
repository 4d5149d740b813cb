"""Reading a sweep's `results.csv`, refusing what cannot be analysed, and pairing trait with control rows.

Data draws are the unit of replication: draw k of the trait teacher's data and draw k of the control
teacher's data answer the same prompts with the same number of rows, so each draw gives one paired
difference Δ = trait - control per configuration (seeds within a draw are averaged first: they share the
draw's data and are not independent evidence).

Each row is read once into a typed `StudentResult` (`sublim.experiment.rows`, where every column is
documented); the analysis uses `dataset` (trait / control / a reference: base, prompted, positive, ...),
`kind`, `rank`, `scale`, `draw`, `seed`, `context`, `run`, `log_p_target`, `p_target`, `concept_mass`,
`log_p_questions` (per-question ln P(target), same questions in the same order for every run), `dose` (a
trait run's planted fraction: 0 or None for the unplanted run) and `planted_rows`. Trait runs at different
doses share their slot; `dose` tells them apart.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.experiment.rows import StudentResult, as_result
from sublim.stats import mean_interval, nanmean

#: the columns the analysis needs in a results file
REQUIRED = ("dataset", "kind", "context", "log_p_target")
#: (kind, rank, scale, context): one configuration under one eval context
ConfigKey = tuple[str, int | None, str, str]
#: a configuration and the planted dose of its trait runs
DoseKey = tuple[ConfigKey, float]


def config_label(kind: str, rank: int | None, scale: str) -> str:
    """'lora r8 (rank)', 'full', ... for tables and notes."""
    if kind == "lora":
        return f"lora r{rank} ({scale})"
    return kind + (f" r{rank}" if rank is not None else "")


# ---------------------------------------------------------------- reading, parsing and pairing


def read_results(path: str | Path) -> list[StudentResult]:
    """The rows of a sweep's `results.csv` (or of the sweep dir's), typed, refused in one line when they
    cannot be (an old file without a needed column, a value the analysis cannot use).

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
    return [StudentResult.from_csv_row(row) for row in rows]


def draw_order(draw: str) -> tuple[int, float, str]:
    try:
        return (0, float(draw), draw)
    except ValueError:
        return (1, 0.0, draw)


@dataclass
class Pairs:
    """Per (configuration, dose) and data draw: the seed-averaged differences trait - control, plus what
    could not be paired. A control row pairs with the trait rows of its slot at every dose."""

    log_p: dict[DoseKey, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    p: dict[DoseKey, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    mass: dict[DoseKey, dict[str, tuple[float, float]]] = field(default_factory=lambda: defaultdict(dict))
    #: per-question differences of ln P(target), seed-averaged; a draw is absent where rows lack them
    questions: dict[DoseKey, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(dict))
    #: planted row counts the trait runs of a (configuration, dose) report
    planted: dict[DoseKey, set[int]] = field(default_factory=lambda: defaultdict(set))
    unpaired: int = 0
    no_outcome: int = 0
    contexts: list[str] = field(default_factory=list)

    def at_dose(self, dose: float = 0.0) -> dict[ConfigKey, dict[str, float]]:
        """Configuration -> draw -> Δ ln P(target) of the trait runs at `dose` (0: the unplanted runs)."""
        return {key: v for (key, d), v in self.log_p.items() if d == dose}


#: (kind, rank, scale, draw, seed, context): the slot a trait run and its control run share
Slot = tuple[str, int | None, str, str, str, str]


def _group(
    rows: Sequence[StudentResult],
) -> tuple[dict[tuple[Slot, float], list[StudentResult]], dict[Slot, list[StudentResult]], Any, list[str]]:
    """Trait rows by (slot, dose), control rows by slot, references by what they are; contexts in order."""
    trait: dict[tuple[Slot, float], list[StudentResult]] = defaultdict(list)
    control: dict[Slot, list[StudentResult]] = defaultdict(list)
    refs: dict[tuple[str, str, int | None, str, str], list[StudentResult]] = defaultdict(list)
    contexts: list[str] = []
    for row in rows:
        if row.context not in contexts:
            contexts.append(row.context)
        draw = str(row.draw) if row.draw is not None else "0"
        slot = (row.kind, row.rank, row.scale, draw, row.seed, row.context)
        if row.dataset == "trait":
            trait[(slot, row.dose or 0.0)].append(row)
        elif row.dataset == "control":
            control[slot].append(row)
        else:
            refs[(row.dataset, row.kind, row.rank, row.scale, row.context)].append(row)
    for group in [*trait.values(), *control.values(), *refs.values()]:
        runs = {r.run for r in group} - {""}
        if (
            len(runs) > 1
        ):  # results.csv keeps the rows of earlier sweep settings; they must not be averaged in
            raise SublimError(
                f"rows of {len(runs)} runs share one slot ({', '.join(sorted(runs)[:2])}, ...): the file "
                "mixes sweeps of different settings; analyze the rows of one (the sweep's summary.md does)"
            )
    return trait, control, refs, contexts


def _side_questions(rows: Sequence[StudentResult]) -> list[float] | None:
    """Per-question ln P(target) averaged over a side's rows (seeds), None unless every row has them alike."""
    lists = [r.log_p_questions for r in rows]
    if not lists or not lists[0] or any(len(x) != len(lists[0]) for x in lists):
        return None
    return [sum(col) / len(col) for col in zip(*lists, strict=True)]


def pair_rows(rows: Iterable[StudentResult | Mapping[str, Any]]) -> tuple[Pairs, list[dict[str, Any]]]:
    """Pair trait and control rows on (kind, rank, scale, draw, seed, context); average seeds per draw.
    Refuses (one line each) duplicate rows, and, reading a mapping, impossible numbers, malformed draws,
    doses and question lists (`StudentResult.from_csv_row`)."""
    typed = [as_result(r) for r in rows]
    _refuse_duplicates(typed)
    trait, control, refs, contexts = _group(typed)
    pairs = Pairs(contexts=contexts)
    pairs.unpaired = sum(len(v) for (slot, _dose), v in trait.items() if slot not in control)
    partnered = {slot for slot, _dose in trait}
    pairs.unpaired += sum(len(v) for slot, v in control.items() if slot not in partnered)
    per_seed: dict[tuple[DoseKey, str], list[tuple[float, float, float, float, list[float] | None]]]
    per_seed = defaultdict(list)
    for (slot, dose), t_rows in trait.items():
        if slot not in control:
            continue
        c_rows = control[slot]
        kind, rank, scale, draw, _seed, context = slot

        def side(rows: list[StudentResult], column: str) -> float:
            return nanmean(_value(getattr(r, column)) for r in rows)

        t_lp, c_lp = side(t_rows, "log_p_target"), side(c_rows, "log_p_target")
        if math.isnan(t_lp) or math.isnan(c_lp):
            pairs.no_outcome += 1
            continue
        key: DoseKey = ((kind, rank, scale, context), dose)
        pairs.planted[key].update(r.planted_rows for r in t_rows if r.planted_rows is not None)
        tq, cq = _side_questions(t_rows), _side_questions(c_rows)
        dq = [a - b for a, b in zip(tq, cq, strict=True)] if tq and cq and len(tq) == len(cq) else None
        mass = (side(t_rows, "concept_mass"), side(c_rows, "concept_mass"))
        per_seed[(key, draw)].append(
            (t_lp - c_lp, side(t_rows, "p_target") - side(c_rows, "p_target"), *mass, dq)
        )
    for (key, draw), seeds in per_seed.items():
        pairs.log_p[key][draw] = nanmean(s[0] for s in seeds)
        pairs.p[key][draw] = nanmean(s[1] for s in seeds)
        pairs.mass[key][draw] = (nanmean(s[2] for s in seeds), nanmean(s[3] for s in seeds))
        qs = [s[4] for s in seeds]
        if all(q is not None and len(q) == len(qs[0] or []) for q in qs):
            pairs.questions[key][draw] = [sum(col) / len(col) for col in zip(*qs, strict=True)]
    return pairs, _references(refs)


def _value(number: float | None) -> float:
    """A typed row's number for averaging: missing is NaN (`nanmean` skips it)."""
    return math.nan if number is None else number


def _references(
    refs: Mapping[tuple[str, str, int | None, str, str], list[StudentResult]],
) -> list[dict[str, Any]]:
    """Mean P(target) and ln P(target) of each reference (base, prompted, positive, ...) per context."""
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
                "p_target": nanmean(_value(r.p_target) for r in group),
                "log_p_target": nanmean(_value(r.log_p_target) for r in group),
            }
        )
    return references


def _refuse_duplicates(rows: Sequence[StudentResult]) -> None:
    """A sweep writes one row per run id and eval context; a second one (a hand-edited copy, two files
    concatenated) would be averaged in as if it were more evidence."""
    seen = Counter((r.run, r.context) for r in rows if r.run)
    twice = [(key, k) for key, k in seen.items() if k > 1]
    if twice:
        (run, context), k = twice[0]
        raise SublimError(
            f"run {run!r} has {k} rows in context {context!r} ({len(twice)} such run(s)): a results file "
            "holds one row per run and context; remove the duplicates rather than have them averaged in"
        )


def shift_from_base(references: list[dict[str, Any]], rows: Sequence[StudentResult], context: str) -> None:
    """Each non-base reference (positive control, prompted base) against the base model, paired over
    questions (the only unit one model has): mean shift of ln P(target), 95% CI over questions, paired
    t-test (scipy). Compared in the same context when the base was scored there, else in the primary one
    (the prompted base's trait prompt replaces the eval context). Not part of the tested family: these check
    the pipeline, they are not claims about transfer."""
    from scipy import stats

    base = {r.context: list(r.log_p_questions) for r in rows if r.dataset == "base"}
    for ref in references:
        if ref["dataset"] == "base":
            continue
        mine = [
            list(r.log_p_questions)
            for r in rows
            if r.dataset == ref["dataset"] and r.context == ref["context"]
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


def by_draw(per_draw: Mapping[str, float]) -> list[float]:
    return [per_draw[d] for d in sorted(per_draw, key=draw_order)]


def spread(values: Sequence[float]) -> float:
    """Sample SD, 0 when the values differ only by rounding (scipy's t-test would then divide by ~0)."""
    import statistics

    if len(values) < 2:
        return math.nan
    sd = statistics.stdev(values)
    scale = max(1.0, max(abs(v) for v in values))
    return 0.0 if sd <= 1e-12 * scale else sd
