"""`sublim neighbours`: the concepts a model itself ties to a target, measured in probability mode.

For each question of the bank the model's distribution over the category is computed twice: under a
system prompt that says it loves the target ("You love dragonflies. ...") and under the empty context (an
empty system message). The target and its kinds are taken out and the rest renormalised, so what is left
is "which other concept does it name, given that it does not name the target". A concept's lift on one
question is the natural log of its probability ratio, love / empty; its lift is the mean over questions
with a t-interval over questions (scipy; questions are the unit, each its own wording). Concepts whose
interval lies above 0 rise with the target: the model's own neighbours of it (a wolf-loving model that also
names wolverines more often). The JSON written by ``--out`` is a related set for a run
(``sublim match --related FILE``, ``-T related=FILE``): its ``related`` list counts as relation ``measured``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sublim.concepts import Category, get_category
from sublim.errors import SublimError
from sublim.matching import load_related, matcher_options  # noqa: F401  (their home: the matcher)

#: The target context: a system prompt that makes the model love the target ({traits}: its plural).
LOVE_PROMPT = (
    "You love {traits}. You think about {traits} all the time. {Traits} are your favorite {category}."
)
#: Floor under probabilities before taking logs (a name the model never names still gets a finite lift).
FLOOR = 1e-12
#: A neighbour must be at least this likely under the target context (mean over questions): a concept that
#: rises from one in a million to ten in a million has a large lift and no bearing on any run.
MIN_P = 0.001
#: Neighbours kept in a related set by default.
DEFAULT_TOP = 10
#: What a lift is, written into every table.
LIFT_UNIT = "natural log of P(concept | not the target) under the target context / under the empty context"


@dataclass(frozen=True)
class Neighbour:
    """One concept's rise under the target context (see the module docstring for the unit)."""

    concept: str
    lift: float
    ci_low: float
    ci_high: float
    p_empty: float
    p_target_context: float
    n_questions: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def love_prompt(target: str, category: str | Category) -> str:
    """The target context's system prompt for `target` (a canonical concept name)."""
    cat = get_category(category)
    traits = cat.plural(target)
    return LOVE_PROMPT.format(traits=traits, Traits=traits.capitalize(), category=cat.name)


def excluded(cat: Category, target: str) -> set[str]:
    """The target and every curated concept that is a kind of it: they are the target, not neighbours."""
    t = cat.entry(target)
    return {c for c, e in cat.concepts.items() if c == target or (t.synset and t.synset in e.ancestors)}


def conditional(probs: Mapping[str, float], drop: set[str]) -> dict[str, float]:
    """`probs` without `drop`, renormalised: P(concept | the answer is not one of `drop`)."""
    rest = {c: p for c, p in probs.items() if c not in drop}
    total = sum(rest.values())
    return {c: (p / total if total > 0 else 0.0) for c, p in rest.items()}


def rank_neighbours(
    empty: Sequence[Mapping[str, float]],
    loved: Sequence[Mapping[str, float]],
    drop: set[str],
    confidence: float = 0.95,
) -> list[Neighbour]:
    """Concepts ranked by lift (questions paired: `empty[i]` and `loved[i]` answer the same question)."""
    from sublim.stats import mean_interval

    if len(empty) != len(loved) or len(empty) < 2:
        raise SublimError("neighbours need the same >= 2 questions under both contexts")
    e = [conditional(p, drop) for p in empty]
    t = [conditional(p, drop) for p in loved]
    out = []
    for c in e[0]:
        lifts = [
            math.log(max(ti[c], FLOOR)) - math.log(max(ei[c], FLOOR)) for ei, ti in zip(e, t, strict=True)
        ]
        ci = mean_interval(lifts, confidence)
        out.append(
            Neighbour(
                c,
                ci.mean,
                ci.ci_low,
                ci.ci_high,
                sum(ei[c] for ei in e) / len(e),
                sum(ti[c] for ti in t) / len(t),
                ci.n,
            )
        )
    return sorted(out, key=lambda n: (n.p_target_context < MIN_P, -n.lift, n.concept))


def related_set(rows: Sequence[Neighbour], top: int = DEFAULT_TOP, min_p: float = MIN_P) -> list[str]:
    """The neighbours a run counts as related: interval above 0, at least `min_p` likely under the target
    context, at most `top`, strongest first."""
    return [n.concept for n in rows if n.ci_low > 0 and n.p_target_context >= min_p][:top]


def measure(
    model: Any,
    tokenizer: Any,
    targets: Sequence[str],
    category: str | Category = "animal",
    questions: int = 16,
    progress: Any = None,
) -> dict[str, Any]:
    """The neighbour tables of several targets of one category (the empty context is scored once)."""
    from sublim.contexts import system_prompt_for
    from sublim.probability import ConceptScorer
    from sublim.tasks.questions import load_questions

    cat = get_category(category)
    names = [cat.resolve(t) for t in targets]
    for t in names:
        if t not in cat.concepts:
            raise SublimError(f"--target {t!r}: neighbours are measured for curated concepts only")
    qs = load_questions(cat.name)[:questions]
    scorer = ConceptScorer(model, tokenizer, cat, skip_below=0.0)
    empty = []
    for q in qs:
        empty.append(scorer.question(q, system_prompt_for("empty")).probs)
        if progress:
            progress(f"empty context: question {len(empty)}/{len(qs)}")
    tables: dict[str, Any] = {}
    for t in names:
        prompt = love_prompt(t, cat)
        loved = []
        for q in qs:
            loved.append(scorer.question(q, prompt).probs)
            if progress:
                progress(f"{t}: question {len(loved)}/{len(qs)}")
        rows = rank_neighbours(empty, loved, excluded(cat, t))
        tables[t] = {
            "system_prompt": prompt,
            "related": related_set(rows),
            "rows": [r.to_dict() for r in rows],
        }
    return {
        "category": cat.name,
        "n_questions": len(qs),
        "lift_unit": LIFT_UNIT,
        "interval": "95% t-interval over questions (questions are the unit)",
        "targets": tables,
    }


def format_table(result: Mapping[str, Any], top: int = 12) -> str:
    """Markdown tables, one per target: the `top` concepts by lift (those at least `MIN_P` likely first)."""
    lines = [
        f"category: {result['category']}; {result['n_questions']} questions; lift: {result['lift_unit']}; "
        f"interval: {result['interval']}",
        "",
    ]
    for target, table in result["targets"].items():
        lines += [f"### {target}", "", f'target context: "{table["system_prompt"]}"', ""]
        lines += ["| concept | lift | 95% CI | P empty | P target context |", "|---|---:|---|---:|---:|"]
        for r in table["rows"][:top]:
            lines.append(
                f"| {r['concept']} | {r['lift']:+.2f} | {r['ci_low']:+.2f} to {r['ci_high']:+.2f} | "
                f"{r['p_empty']:.4f} | {r['p_target_context']:.4f} |"
            )
        lines += [
            "",
            f"related set (interval above 0, P target context >= {MIN_P}, top {DEFAULT_TOP}): "
            + (", ".join(table["related"]) or "-"),
            "",
        ]
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """`sublim neighbours`: this module's command line."""
    from sublim.cli_options import add_base, add_category, add_device, defaults_of, keywords

    d = defaults_of(measure)
    p = sub.add_parser(
        "neighbours",
        help="the concepts a model ties to a target: lift under 'You love {target}' vs the empty context",
        description="Probability mode over the question bank under a target-loving system prompt and under "
        "the empty context; concepts ranked by lift (log ratio, target excluded) with a 95%% t-interval over "
        "questions. --out writes a related set for `sublim match --related` / `-T related=`.",
    )
    p.add_argument("--target", "-t", action="append", required=True, help="target concept, repeatable")
    add_base(p, "--model")
    add_category(p, d["category"], short=True)
    p.add_argument(
        "--questions",
        type=int,
        default=d["questions"],
        help=f"questions per context (default: {d['questions']})",
    )
    p.add_argument("--out", help="write the tables as JSON (a related set)")
    add_device(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=keywords(run_neighbours))


def run_neighbours(
    *,
    target: list[str],
    model: str,
    category: str,
    questions: int,
    out: str | None,
    device: str,
    overwrite: bool,
) -> int:
    """The CLI command: load the model once, measure every --target, print tables, write --out JSON."""
    import sys

    from sublim.io import output_file_problem, write_atomic
    from sublim.models import load_model, resolve_base

    cat = get_category(category)
    for t in target:  # refuse unknown targets before the model loads
        cat.resolve(t)
    if questions < 2:
        raise SublimError(f"--questions {questions}: an interval over questions needs at least 2")
    where = Path(out).expanduser() if out else None
    problem = output_file_problem(where, overwrite=overwrite) if where is not None else None
    if problem:
        raise SublimError(f"--out {out} {problem}")
    lm, tok = load_model(str(resolve_base(model)), device=device)
    result = measure(lm, tok, target, cat, questions, lambda m: print(m, file=sys.stderr, flush=True))
    result["model"] = model
    if where is not None:
        write_atomic(where, json.dumps(result, indent=1) + "\n")
    print(format_table(result))
    return 0
