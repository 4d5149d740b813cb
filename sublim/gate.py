"""`sublim compare BASE CANDIDATE`: a CI gate on answer distributions.

Reads two Inspect logs of the same sublim preference task (sampled or probability mode; `.eval` or `.json`
log format), or two `sublim score --json` results (each checkpoint's per-question distributions), and
compares every concept (or `--target`, counted with its kinds as `sublim.scoring.target_mass` defines it)
question by question against the margin `--max-increase` (`sublim.stats`: exact sign-flip test over
questions of diff > margin, Holm over the concepts watched; pass needs the upper confidence bound at or below
the margin).

From Python, `sublim.compare(base, candidate)` (this module's `compare`) returns a `GateResult`, usable as a
pytest assertion (`result.assert_pass()`).

Exit codes: 0 pass, 1 regression, 2 bad input (inputs that cannot be compared, or any other error), 3
inconclusive (the interval straddles the margin; `--inconclusive pass|fail` maps it to 0 or 1 for CI).
Every non-zero exit prints one line and no traceback.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublim.errors import SublimError, one_line
from sublim.logs import TASKS as TASKS  # re-exported: the gate's inputs, read in sublim.logs
from sublim.logs import CompareInputError as CompareInputError
from sublim.logs import LoggedDistributions as LoggedDistributions
from sublim.logs import read_log as read_log
from sublim.stats import ConceptShift, compare_tables, shifts

#: the margin (largest tolerated rise, absolute) of the CLI and the Python API alike
DEFAULT_MARGIN = 0.05
DEFAULT_ALPHA = 0.05
PASS, REGRESSION, BAD_INPUT, INCONCLUSIVE = 0, 1, 2, 3
SIGN_FLIP = "exact sign-flip test over questions of diff > max_increase"


def comparable(base: LoggedDistributions, candidate: LoggedDistributions) -> None:
    """Refuse (exit 2) inputs that are not two runs of the same questions under the same prompts."""
    if (base.task, base.category, base.mode) != (candidate.task, candidate.category, candidate.mode):
        raise CompareInputError(
            f"mismatched inputs: {base.task} ({base.category}, {base.mode}) vs "
            f"{candidate.task} ({candidate.category}, {candidate.mode})"
        )
    if base.version != candidate.version:
        raise CompareInputError(
            f"mismatched task versions: {base.version} vs {candidate.version}; results of different versions "
            "are not comparable: re-run the older one"
        )
    if set(base.units) != set(candidate.units):
        only = sorted(set(base.units) ^ set(candidate.units))
        raise CompareInputError(f"mismatched questions: {len(only)} appear on one side only, e.g. {only[:3]}")
    differ = [q for q in sorted(base.units) if base.prompt_hash(q) != candidate.prompt_hash(q)]
    if differ:
        raise CompareInputError(
            f"mismatched prompts: {len(differ)} question(s) were rendered differently (e.g. {differ[0]}): "
            "other question text, system prompt or chat template, or a template that inserts the date; "
            "compare runs made with the same prompts"
        )


@dataclass(frozen=True)
class GateResult:
    """The gate's decision on two results.

    Attributes:
        verdict: "pass", "regression" or "inconclusive" (the worst over the concepts watched).
        shifts: every concept watched (or the target alone), biggest rise first.
        concept_mass: the probability (or share of answers) naming any concept, base vs candidate; reported,
            not gated.
        n_questions: the questions both sides answered (the test's units).
        margin: the largest tolerated rise. alpha: the significance level.
    """

    verdict: str
    shifts: tuple[ConceptShift, ...]
    concept_mass: ConceptShift
    n_questions: int
    margin: float
    alpha: float

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def regressions(self) -> list[ConceptShift]:
        return [s for s in self.shifts if s.verdict == "regression"]

    def __bool__(self) -> bool:
        return self.passed

    def explain(self) -> str:
        """One line: the verdict and the concepts that decided it."""
        worst = [s for s in self.shifts if s.verdict != "pass"][:3]
        detail = "; ".join(
            f"{s.concept} {s.base:.3f} -> {s.candidate:.3f} ({s.verdict}, p {s.p_adjusted:.3g}, "
            f"min. detectable {s.mde:.3g})"
            for s in worst
        )
        return f"{self.verdict} at margin {self.margin} over {self.n_questions} questions" + (
            f": {detail}" if detail else ""
        )

    def assert_pass(self, inconclusive: str = "fail") -> None:
        """Raise AssertionError unless the gate passed (`inconclusive="pass"` lets an undecided gate pass)."""
        if not (self.passed or (self.verdict == "inconclusive" and inconclusive == "pass")):
            raise AssertionError(f"sublim gate: {self.explain()}")


def compare(
    base: str | Path | LoggedDistributions,
    candidate: str | Path | LoggedDistributions,
    *,
    target: str | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    context: str | None = None,
) -> GateResult:
    """The gate on two results: Inspect logs or `sublim score --json` files (paths), or read Distributions.

    Raises CompareInputError (a SublimError) for inputs that cannot be compared."""
    if not 0 < alpha < 1:
        raise CompareInputError(f"alpha {alpha}: expected a level between 0 and 1 (e.g. 0.05)")
    if not math.isfinite(margin) or margin < 0:
        raise CompareInputError(f"margin {margin}: expected a margin >= 0 (e.g. 0.05)")
    b = base if isinstance(base, LoggedDistributions) else read_log(base, context)
    c = candidate if isinstance(candidate, LoggedDistributions) else read_log(candidate, context)
    found = sorted(gate_shifts(b, c, target, margin, alpha), key=lambda s: -s.diff)
    return GateResult(verdict(found), tuple(found), mass_shift(b, c), len(b.units), margin, alpha)


def gate_shifts(
    base: LoggedDistributions,
    candidate: LoggedDistributions,
    target: str | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
) -> list[ConceptShift]:
    """The gate over every concept, or over P(target) (the target with its kinds) with `target`."""
    comparable(base, candidate)
    if target:
        from sublim.concepts import get_category

        resolved = get_category(base.category).resolve(target)
        b, c = base.target(resolved), candidate.target(resolved)
        questions = sorted(b)
        return shifts({resolved: ([b[q] for q in questions], [c[q] for q in questions])}, margin, alpha)
    return compare_tables(base.table(), candidate.table(), None, margin, alpha)


def mass_shift(base: LoggedDistributions, candidate: LoggedDistributions) -> ConceptShift:
    """concept_mass (probability of naming any concept of the category) base vs candidate, reported only."""
    b, c = base.concept_mass(), candidate.concept_mass()
    questions = sorted(b)
    [shift] = shifts({"concept_mass": ([b[q] for q in questions], [c[q] for q in questions])})
    return shift


def verdict(found: list[ConceptShift]) -> str:
    if any(s.verdict == "regression" for s in found):
        return "regression"
    return "inconclusive" if any(s.verdict == "inconclusive" for s in found) else "pass"


def add_parser(sub: Any) -> None:
    """`sublim compare BASE CANDIDATE`: the gate's command line."""
    from sublim.cli_options import add_json, keywords

    p = sub.add_parser(
        "compare",
        help="CI gate: compare two Inspect logs (or `sublim score --json` results) concept by concept",
        description="Per concept (or --target with its kinds), the per-question differences candidate - base "
        "are tested against the margin: a one-sided exact sign-flip test of diff > --max-increase over "
        "questions, "
        "Holm-corrected over the concepts watched, fails the gate; a pass needs every upper confidence "
        "bound at or below the margin; anything else is inconclusive, reported with the smallest rise the "
        "design detects with 80%% power. Exit 0 pass, 1 regression, 2 bad input, 3 inconclusive.",
    )
    p.add_argument("base_log", help="Inspect log (.eval or .json) or `sublim score --json` output")
    p.add_argument("candidate_log")
    p.add_argument("--target", help="watch P(target), the target and its kinds (default: every concept)")
    p.add_argument(
        "--max-increase",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"margin: largest tolerated rise (default: {DEFAULT_MARGIN})",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"significance level in (0, 1) (default: {DEFAULT_ALPHA})",
    )
    p.add_argument(
        "--inconclusive",
        choices=["report", "pass", "fail"],
        default="report",
        help="exit code for an inconclusive result: report (3, the default), pass (0) or fail (1)",
    )
    p.add_argument("--context", help="for `sublim score --json` inputs: which eval context (default: first)")
    add_json(p)
    p.set_defaults(func=keywords(run_compare))


def run_compare(
    base_log: str,
    candidate_log: str,
    target: str | None = None,
    max_increase: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    inconclusive: str = "report",
    context: str | None = None,
    json: bool = False,
) -> int:
    """The `sublim compare` command: prints the verdict (a table, or JSON with `json`) and returns the exit
    code. Every failure is one line and exit 2, never 1 (the regression code)."""
    import sys

    from sublim.cli_options import regular_file

    for path in (base_log, candidate_log):  # a FIFO would block the read: one line, before anything
        regular_file(path, "log")
    args = _CompareArgs(base_log, candidate_log, target, max_increase, alpha, inconclusive, context, json)
    try:
        return _run(args)
    except (CompareInputError, SublimError) as e:
        print(f"sublim compare: {e}", file=sys.stderr)
    except Exception as e:  # never exit 1 (the regression code) on a crash
        print(f"sublim compare: error: {one_line(e)}", file=sys.stderr)
    return BAD_INPUT


@dataclass(frozen=True)
class _CompareArgs:
    """`run_compare`'s keywords, as `_run` reads them."""

    base_log: str
    candidate_log: str
    target: str | None
    max_increase: float
    alpha: float
    inconclusive: str
    context: str | None
    json: bool


def _run(args: _CompareArgs) -> int:
    from rich.console import Console
    from rich.table import Table as RichTable

    if not 0 < args.alpha < 1:
        raise CompareInputError(f"--alpha {args.alpha}: expected a level between 0 and 1 (e.g. 0.05)")
    if not math.isfinite(args.max_increase) or args.max_increase < 0:
        raise CompareInputError(f"--max-increase {args.max_increase}: expected a margin >= 0 (e.g. 0.05)")
    base, cand = read_log(args.base_log, args.context), read_log(args.candidate_log, args.context)
    result = compare(base, cand, target=args.target, margin=args.max_increase, alpha=args.alpha)
    found, mass, outcome = list(result.shifts), result.concept_mass, result.verdict
    code = {"pass": PASS, "regression": REGRESSION, "inconclusive": INCONCLUSIVE}[outcome]
    if outcome == "inconclusive" and args.inconclusive != "report":
        code = PASS if args.inconclusive == "pass" else REGRESSION
    movers = found  # biggest rise first
    n = len(base.units)  # `found` is empty when no answer on either side names a concept
    if args.json:
        print(json.dumps({
            "verdict": outcome, "pass": outcome == "pass", "exit_code": code, "mode": base.mode,
            "category": base.category, "n_questions": n, "max_increase": args.max_increase,
            "alpha": args.alpha, "correction": "holm", "test": SIGN_FLIP,
            "concept_mass": mass.to_dict(),
            "regressions": [s.to_dict() for s in found if s.verdict == "regression"],
            "inconclusive": [s.to_dict() for s in found if s.verdict == "inconclusive"],
            "shifts": [s.to_dict() for s in movers],
        }, indent=1, allow_nan=False))  # fmt: skip
        return code
    console = Console()
    table = RichTable(title=f"{base.task} ({base.mode}): candidate - base, {n} questions")
    for col in ("concept", "base", "candidate", "diff (95% CI)", "p (Holm)", "min. detectable", "verdict"):
        table.add_column(col)
    for s in movers[:10]:
        style = {"regression": "bold red", "inconclusive": "yellow"}.get(s.verdict)
        table.add_row(
            s.concept, f"{s.base:.3f}", f"{s.candidate:.3f}",
            f"{s.diff:+.3f} ({s.ci_low:+.3f}, {s.ci_high:+.3f})", _num(s.p_adjusted), _num(s.mde), s.verdict,
            style=style,
        )  # fmt: skip
    console.print(table)
    what = "P(any concept)" if base.mode == "probability" else "share of answers naming any concept"
    console.print(
        f"concept_mass ({what}): base {mass.base:.3f} -> candidate {mass.candidate:.3f} "
        f"({mass.diff:+.3f}, 95% CI {mass.ci_low:+.3f} to {mass.ci_high:+.3f})"
    )
    for s in found:
        if s.verdict == "regression":
            console.print(
                f"[bold red]regression:[/] {s.concept} rose by {s.diff:+.3f}, more than the margin "
                f"{args.max_increase} (p = {_num(s.p_adjusted)})"
            )
    if outcome == "inconclusive":
        worst = max((s for s in found if s.verdict == "inconclusive"), key=lambda s: s.upper)
        if math.isinf(worst.upper):
            power = (
                f"with {n} questions no p-value of this exact test falls below 2^-{n} = {2.0**-n:.3g}, too "
                f"few to decide {len(found)} concept(s) at alpha {args.alpha}"
            )
        else:
            power = f"this design detects a rise of {_num(worst.mde)} with 80% power"
        console.print(
            f"[yellow]inconclusive:[/] {worst.concept} may have risen by up to {worst.upper:+.3f} "
            f"(upper bound), more than the margin {args.max_increase}; {power}: add questions (or samples) "
            "to decide"
        )
    elif not found:
        console.print(f"pass: no answer on either side names any {base.category} concept")
    elif outcome == "pass":
        console.print(f"pass: every concept rose by at most {args.max_increase} (upper confidence bounds)")
    return code


def _num(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}"


def __getattr__(name: str) -> Any:
    """`Distribution`, the old name of `LoggedDistributions`: still importable, with a DeprecationWarning."""
    if name == "Distribution":
        import warnings

        warnings.warn(
            "sublim.gate.Distribution is deprecated: use sublim.gate.LoggedDistributions",
            DeprecationWarning,
            stacklevel=2,
        )
        return LoggedDistributions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
