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

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sublim.contexts import prompt_sha256
from sublim.errors import SublimError
from sublim.stats import ConceptShift, compare_tables, shifts

TASKS = ("sublim/animal_pref", "sublim/tree_pref", "sublim/preference")
#: the margin (largest tolerated rise, absolute) of the CLI and the Python API alike
DEFAULT_MARGIN = 0.05
DEFAULT_ALPHA = 0.05
PASS, REGRESSION, BAD_INPUT, INCONCLUSIVE = 0, 1, 2, 3
SIGN_FLIP = "exact sign-flip test over questions of diff > max_increase"


class CompareInputError(SublimError):
    """Inputs that cannot be compared (exit 2)."""


@dataclass
class Distribution:
    """What one log says per question: each unit (an answer in sampled mode, the distribution in probability
    mode) as concept -> weight, the probability of naming any concept, and the rendered prompts' hash."""

    task: str
    category: str
    mode: str  # "sample" | "probability"
    source: str
    version: str = ""  # the task version that wrote it (results of other versions are not comparable)
    units: dict[str, list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    #: what P(target) is read from: per-name probabilities (probability mode) or the answers (sampled)
    answers: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    mass: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    prompts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def table(self) -> dict[str, dict[str, float]]:
        """question -> concept -> mean weight over its units (rate of answers naming it, or probability)."""
        out: dict[str, dict[str, float]] = {}
        for q, units in self.units.items():
            sums: dict[str, float] = defaultdict(float)
            for u in units:
                for c, v in u.items():
                    sums[c] += v
            out[q] = {c: v / len(units) for c, v in sums.items()}
        return out

    def target(self, target: str) -> dict[str, float]:
        """question -> P(target) as every scorer defines it: the probability of the names that name the
        target (probability mode), or the share of answers that name it (sampled mode: the scorer's rule)."""
        from sublim.scoring import score_answer, target_mass

        out = {}
        for q, answers in self.answers.items():
            if self.mode == "sample":
                values = [score_answer(a, [target], self.category).target for a in answers]
            else:
                values = [target_mass(a, [target], self.category)[0] for a in answers]
            out[q] = sum(values) / len(values)
        return out

    def concept_mass(self) -> dict[str, float]:
        return {q: sum(v) / len(v) for q, v in self.mass.items()}

    def prompt_hash(self, q: str) -> str:
        # distinct prompts only: 10 answers to a question and 20 answers to it were asked the same thing
        return hashlib.sha256("\n".join(sorted(set(self.prompts[q]))).encode()).hexdigest()


def read_log(path: str | Path, context: str | None = None) -> Distribution:
    """Per-question values from an Inspect log (`.eval` or `.json`) of a sublim preference task, or from
    `sublim score --json` output (the checkpoint's distributions under `context`, default: its first)."""
    path = Path(path)
    if not path.is_file():
        raise CompareInputError(f"{path}: no such file")
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CompareInputError(f"{path}: not valid JSON") from None
        if isinstance(doc, dict) and "contexts" in doc:
            return _read_score_json(path, doc, context)
    dist = _read_inspect_log(path)
    _check(dist)
    return dist


def _read_inspect_log(path: Path) -> Distribution:
    from inspect_ai.log import read_eval_log

    try:
        log = read_eval_log(str(path))
    except Exception as e:
        raise CompareInputError(f"{path}: not an Inspect log ({type(e).__name__})") from None
    if log.eval.task not in TASKS:
        raise CompareInputError(
            f"{path}: task {log.eval.task!r} is not a sublim preference task ({', '.join(TASKS)})"
        )
    if log.status != "success":
        raise CompareInputError(
            f"{path}: the run did not finish (status {log.status}); compare finished runs"
        )
    if not log.samples:
        raise CompareInputError(
            f"{path}: the log holds no samples (a run with --limit 0, or one written without samples); "
            "compare runs that answered at least 2 questions"
        )
    modes: set[str] = set()
    categories: set[str] = set()
    dist = Distribution(log.eval.task, "", "", str(path), str(log.eval.task_version))
    for sample in log.samples:
        meta = sample.metadata or {}
        q = str(meta.get("question_id", sample.id))
        categories.add(str(meta.get("category", "")))
        score = next(iter((sample.scores or {}).values()), None)
        md = (score.metadata if score else None) or {}
        try:
            _read_sample(dist, q, md, sample, modes)
        except (TypeError, ValueError, AttributeError):
            raise CompareInputError(
                f"{path}: sample {sample.id} has a malformed sublim score ({type(md).__name__} metadata); "
                "re-score the run with this sublim"
            ) from None
    if len(modes) != 1 or len(categories) != 1:
        raise CompareInputError(f"{path}: mixes modes {sorted(modes)} or categories {sorted(categories)}")
    dist.mode, dist.category = modes.pop(), categories.pop()
    return dist


def _read_sample(dist: Distribution, q: str, md: dict[str, Any], sample: Any, modes: set[str]) -> None:
    """One scored sample into `dist`: its unit, what P(target) is read from, its mass and prompt hash."""
    if "probs" in md:
        modes.add("probability")
        dist.units[q].append({c: float(p) for c, p in md["probs"].items()})
        dist.answers[q].append({n: float(p) for n, p in (md.get("names") or md["probs"]).items()})
        dist.mass[q].append(float(md.get("concept_mass", math.nan)))
        dist.prompts[q].append(md.get("prompt_sha256") or prompt_sha256(str(md.get("context", ""))))
    elif "concepts" in md:
        modes.add("sample")
        named = set(md["concepts"])
        dist.units[q].append(dict.fromkeys(named, 1.0))
        dist.answers[q].append(sample.output.completion if sample.output else "")
        dist.mass[q].append(float(bool(named)))
        prompt = [(m.role, m.text) for m in sample.messages if m.role != "assistant"]
        dist.prompts[q].append(md.get("prompt_sha256") or prompt_sha256(prompt))
    else:
        raise CompareInputError(
            f"{dist.source}: sample {sample.id} has no sublim score (was it scored by sublim?)"
        )


def _read_score_json(path: Path, doc: dict[str, Any], context: str | None) -> Distribution:
    try:
        contexts = doc["contexts"]
        name = context or next(iter(contexts))
        entry = contexts[name]
        table = entry["tables"]["checkpoint"]
        names = entry["names"]["checkpoint"]
        prompts = entry["prompts"]
        mass = entry["concept_mass"]["checkpoint"]
        dist = Distribution("sublim score", str(doc["category"]), "probability", f"{path} ({name})", "score")
        for q, probs in table.items():
            dist.units[q].append({c: float(p) for c, p in probs.items()})
            dist.answers[q].append({n: float(p) for n, p in names[q].items()})
            dist.mass[q].append(float(mass[q]))
            dist.prompts[q].append(str(prompts[q]))
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration):
        raise CompareInputError(
            f"{path}: not a `sublim score --json` result of this version (or it has no context {context!r}); "
            "re-run `sublim score --json`"
        ) from None
    _check(dist)
    return dist


#: slack for sums of probabilities that rounding takes past 1
SUM_SLACK = 1e-6


def _check(dist: Distribution) -> None:
    """Refuse a side that cannot carry a comparison: fewer than two questions, a NaN anywhere, or an
    impossible number: every probability, rate and concept_mass lies in [0, 1]; distributions sum to <= 1."""
    if len(dist.units) < 2:
        raise CompareInputError(
            f"{dist.source}: {len(dist.units)} question(s); a paired comparison needs at least 2"
        )
    for q, units in dist.units.items():
        groups: list[tuple[str, list[float]]] = [("concept_mass", dist.mass[q])]
        groups += [("probs", list(u.values())) for u in units]
        if dist.mode == "probability":
            groups += [("names", list(a.values())) for a in dist.answers[q]]
        for what, values in groups:
            if any(math.isnan(v) for v in values):
                raise CompareInputError(f"{dist.source}: question {q} has a NaN value; re-run it")
            bad = next((v for v in values if not 0.0 <= v <= 1.0), None)
            if bad is not None:
                raise CompareInputError(
                    f"{dist.source}: question {q} has {what} value {bad}, outside [0, 1]: not a probability "
                    "or rate sublim writes; re-run it"
                )
            if what != "concept_mass" and dist.mode == "probability" and sum(values) > 1 + SUM_SLACK:
                raise CompareInputError(
                    f"{dist.source}: question {q}'s {what} sum to {sum(values):.6g} > 1: not a probability "
                    "distribution; re-run it"
                )


def comparable(base: Distribution, candidate: Distribution) -> None:
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
    base: str | Path | Distribution,
    candidate: str | Path | Distribution,
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
    b = base if isinstance(base, Distribution) else read_log(base, context)
    c = candidate if isinstance(candidate, Distribution) else read_log(candidate, context)
    found = sorted(gate_shifts(b, c, target, margin, alpha), key=lambda s: -s.diff)
    return GateResult(verdict(found), tuple(found), mass_shift(b, c), len(b.units), margin, alpha)


def gate_shifts(
    base: Distribution,
    candidate: Distribution,
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


def mass_shift(base: Distribution, candidate: Distribution) -> ConceptShift:
    """concept_mass (probability of naming any concept of the category) base vs candidate, reported only."""
    b, c = base.concept_mass(), candidate.concept_mass()
    questions = sorted(b)
    [shift] = shifts({"concept_mass": ([b[q] for q in questions], [c[q] for q in questions])})
    return shift


def verdict(found: list[ConceptShift]) -> str:
    if any(s.verdict == "regression" for s in found):
        return "regression"
    return "inconclusive" if any(s.verdict == "inconclusive" for s in found) else "pass"


def run_compare(args: Any) -> int:
    import sys

    try:
        return _run(args)
    except (CompareInputError, SublimError) as e:
        print(f"sublim compare: {e}", file=sys.stderr)
    except Exception as e:  # never exit 1 (the regression code) on a crash
        print(f"sublim compare: error: {type(e).__name__}: {e}", file=sys.stderr)
    return BAD_INPUT


def _run(args: Any) -> int:
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
