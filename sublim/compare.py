"""`sublim compare BASE_LOG CANDIDATE_LOG`: a CI gate on answer distributions.

Reads two Inspect logs of the same sublim preference task (sampled or probability mode), or two
`sublim score --json` results (each checkpoint's per-question distributions), compares every
concept (or `--target`) question by question (`sublim.stats`), and fails when a concept rose by more than
`--max-increase` with a Holm-corrected one-sided p below `--alpha`.

Exit codes: 0 pass, 1 regression (the concept, by how much, p), 2 bad input (missing file, not a sublim
log, mismatched tasks or questions), always with a one-line message and no traceback.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.stats import ConceptShift, Table, compare_tables

TASKS = ("sublim/animal_pref", "sublim/tree_pref", "sublim/preference")
PASS, REGRESSION, BAD_INPUT = 0, 1, 2


class CompareInputError(SublimError):
    """Inputs that cannot be compared (exit 2)."""


@dataclass(frozen=True)
class Distribution:
    """Per-question concept values read from one log."""

    task: str
    category: str
    mode: str  # "sample" | "probability"
    table: Table
    source: str


def read_log(path: str | Path, context: str | None = None) -> Distribution:
    """Per-question values from an Inspect log of a sublim preference task, or from `sublim score --json`
    output (the checkpoint's distributions under `context`, default: its first context)."""
    from inspect_ai.log import read_eval_log

    path = Path(path)
    if not path.exists():
        raise CompareInputError(f"{path}: no such file")
    if path.suffix == ".json":
        return _read_score_json(path, context)
    try:
        log = read_eval_log(str(path))
    except Exception as e:
        raise CompareInputError(f"{path}: not an Inspect log ({type(e).__name__})") from None
    if log.eval.task not in TASKS:
        raise CompareInputError(
            f"{path}: task {log.eval.task!r} is not a sublim preference task ({', '.join(TASKS)})"
        )
    if not log.samples:
        raise CompareInputError(f"{path}: the log has no samples (status {log.status})")
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    answers: dict[str, int] = defaultdict(int)
    modes, categories = set(), set()
    for sample in log.samples:
        meta = sample.metadata or {}
        q = str(meta.get("question_id", sample.id))
        categories.add(str(meta.get("category", "")))
        score = next(iter((sample.scores or {}).values()), None)
        md = (score.metadata if score else None) or {}
        if "probs" in md:
            modes.add("probability")
            for c, p in md["probs"].items():
                counts[q][c] += float(p)
        elif "concepts" in md:
            modes.add("sample")
            for c in set(md["concepts"]):
                counts[q][c] += 1.0
        else:
            raise CompareInputError(
                f"{path}: sample {sample.id} has no sublim score (was it scored by sublim?)"
            )
        answers[q] += 1
    if len(modes) != 1 or len(categories) != 1:
        raise CompareInputError(f"{path}: mixes modes {sorted(modes)} or categories {sorted(categories)}")
    table = {q: {c: v / answers[q] for c, v in cs.items()} for q, cs in counts.items()}
    for q in answers:
        table.setdefault(q, {})
    return Distribution(log.eval.task, categories.pop(), modes.pop(), table, str(path))


def _read_score_json(path: Path, context: str | None) -> Distribution:
    import json

    try:
        doc = json.loads(path.read_text())
        contexts = doc["contexts"]
        name = context or next(iter(contexts))
        table = contexts[name]["tables"]["checkpoint"]
    except (json.JSONDecodeError, KeyError, TypeError, StopIteration):
        raise CompareInputError(
            f"{path}: not a `sublim score --json` result (or no context {context!r})"
        ) from None
    return Distribution("sublim score", doc["category"], "probability", table, str(path))


def compare(base: Distribution, candidate: Distribution, target: str | None = None) -> list[ConceptShift]:
    if (base.task, base.category, base.mode) != (candidate.task, candidate.category, candidate.mode):
        raise CompareInputError(
            f"mismatched inputs: {base.task} ({base.category}, {base.mode}) vs "
            f"{candidate.task} ({candidate.category}, {candidate.mode})"
        )
    if set(base.table) != set(candidate.table):
        only = sorted(set(base.table) ^ set(candidate.table))
        raise CompareInputError(f"mismatched questions: {len(only)} appear on one side only, e.g. {only[:3]}")
    concepts = None
    if target:
        from sublim.concepts import get_category

        concepts = [get_category(base.category).resolve(target)]
    return compare_tables(base.table, candidate.table, concepts)


def regressions(shifts: list[ConceptShift], max_increase: float, alpha: float) -> list[ConceptShift]:
    return [s for s in shifts if s.diff > max_increase and s.p_adjusted < alpha]


def run_compare(args: Any) -> int:
    import json
    import sys

    from rich.console import Console
    from rich.table import Table as RichTable

    try:
        base, cand = read_log(args.base_log, args.context), read_log(args.candidate_log, args.context)
        shifts = compare(base, cand, args.target)
    except (CompareInputError, SublimError) as e:
        print(f"sublim compare: {e}", file=sys.stderr)
        return BAD_INPUT
    bad = regressions(shifts, args.max_increase, args.alpha)
    movers = sorted(shifts, key=lambda s: -s.diff)
    if args.json:
        print(json.dumps({
            "pass": not bad, "mode": base.mode, "category": base.category,
            "n_questions": shifts[0].n_questions,
            "max_increase": args.max_increase, "alpha": args.alpha, "correction": "holm",
            "regressions": [s.to_dict() for s in bad], "shifts": [s.to_dict() for s in movers],
        }, indent=1))  # fmt: skip
    else:
        console = Console()
        table = RichTable(
            title=f"{base.task} ({base.mode}): candidate - base, {shifts[0].n_questions} questions"
        )
        for col in ("concept", "base", "candidate", "diff (95% CI)", "p (Holm)"):
            table.add_column(col)
        for s in movers[:10]:
            style = "bold red" if s in bad else None
            table.add_row(
                s.concept, f"{s.base:.3f}", f"{s.candidate:.3f}",
                f"{s.diff:+.3f} ({s.ci_low:+.3f}, {s.ci_high:+.3f})", f"{s.p_adjusted:.3g}", style=style,
            )  # fmt: skip
        console.print(table)
        for s in bad:
            console.print(
                f"[bold red]regression:[/] {s.concept} rose by {s.diff:+.3f} (p = {s.p_adjusted:.3g})"
            )
        if not bad:
            console.print(f"pass: no concept rose by more than {args.max_increase} with p < {args.alpha}")
    return REGRESSION if bad else PASS
