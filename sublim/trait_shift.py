"""`sublim score CHECKPOINT --base BASE`: did this checkpoint pick up the trait, and how sure are we?

Both models answer the same questions in probability mode (deterministic), under each eval context. For the
target: P(target) base vs checkpoint and their difference with a 95% CI that pairs the questions, plus a
one-sided p-value for an increase (the gate's exact sign-flip test over questions: a few questions leave the
interval unbounded, reported as null); over all concepts: the biggest movers with Holm-corrected p-values
(`sublim.stats`). `--json` writes the same as a document `sublim compare` can read.

Named for what it measures, the trait's shift from base to checkpoint ("transfer" named the hypothesis, not
the job); `sublim.transfer` is the deprecated old name of this module.
"""

from __future__ import annotations

from typing import Any

from sublim.errors import SublimError
from sublim.stats import compare_tables, shifts

MOVERS = 10


def score_checkpoint(
    checkpoint: str,
    base: str | None = None,
    trait: str = "owl",
    category: str = "animal",
    contexts: list[str] | None = None,
    questions: int = 20,
    margin: float = 0.0,
    alpha: float = 0.05,
    device: str = "auto",
) -> dict[str, Any]:
    """Base vs checkpoint under each context: P(target) (the target and its kinds), concept_mass, movers.

    Both sides are scored exactly (no skipped names), so they are normalised over the same names."""
    from sublim.concepts import get_category
    from sublim.contexts import context_name, prompt_sha256, system_prompt_for
    from sublim.models import add_adapter, load_model, resolve_base, resolve_checkpoint
    from sublim.probability import ConceptScorer
    from sublim.scoring import target_mass
    from sublim.tasks.questions import load_questions

    if questions < 2:
        raise SublimError(f"--questions {questions}: a paired interval needs at least 2 questions")
    cat = get_category(category)
    target = cat.resolve(trait)
    model_id, adapter = resolve_checkpoint(checkpoint, base)
    if adapter:
        base_id = model_id  # the adapter's base, bare
    elif base is None:
        raise SublimError(f"{checkpoint} is a full model: pass --base to compare against")
    else:
        base_id = str(resolve_base(base))
    qs = load_questions(category)[:questions]
    names = list(dict.fromkeys(context_name(c) for c in contexts or ["default"]))
    runs: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in names}
    model, tok = load_model(base_id, device=device)
    scorer = ConceptScorer(model, tok, cat, skip_below=0.0)
    for side in ("base", "checkpoint"):
        if side == "checkpoint":  # an adapter goes on top of the loaded base; a full model is loaded
            scorer.model = add_adapter(model, adapter) if adapter else load_model(model_id, device=device)[0]
        for context in names:
            runs[context][side] = {q.id: scorer.question(q, system_prompt_for(context)) for q in qs}
    result: dict[str, Any] = {
        "checkpoint": checkpoint,
        "base": base_id,
        "adapter": adapter,
        "target": target,
        "category": cat.name,
        "n_questions": len(qs),
        "max_increase": margin,
        "alpha": alpha,
        "correction": "holm",
        "contexts": {},
    }
    for context, sides in runs.items():
        tables = {side: {q: d.probs for q, d in dists.items()} for side, dists in sides.items()}
        by_name = {side: {q: d.names for q, d in dists.items()} for side, dists in sides.items()}
        p_target = {side: [target_mass(t[q.id], [target], cat)[0] for q in qs] for side, t in by_name.items()}
        [target_shift] = shifts({target: (p_target["base"], p_target["checkpoint"])}, margin, alpha)
        mass = {side: {q: d.concept_mass for q, d in dists.items()} for side, dists in sides.items()}
        mass_b, mass_c = ([mass[side][q.id] for q in qs] for side in ("base", "checkpoint"))
        [mass_shift] = shifts({"concept_mass": (mass_b, mass_c)})
        movers = sorted(compare_tables(tables["base"], tables["checkpoint"]), key=lambda s: -abs(s.diff))
        result["contexts"][context] = {
            "target": target_shift.to_dict(),
            "concept_mass": mass,  # per side, per question: P(any concept of the category)
            "concept_mass_shift": mass_shift.to_dict(),
            "movers": [s.to_dict() for s in movers[:MOVERS]],
            "tables": tables,  # per-question distributions: `sublim compare` input
            "names": by_name,  # per-question probability of each name: P(target) is read from these
            "prompts": {q: prompt_sha256(d.context) for q, d in sides["base"].items()},
        }
    return result


def add_parser(sub: Any) -> None:
    """`sublim score CHECKPOINT`: this module's command line."""
    from sublim.cli_options import add_category, add_device, add_json, defaults_of, keywords

    d = defaults_of(score_checkpoint)
    p = sub.add_parser(
        "score",
        help="did a checkpoint pick up the trait? P(target) base vs checkpoint, paired CI, biggest movers",
    )
    p.add_argument("checkpoint", help="hub id, local dir, PEFT adapter dir, .gguf file, or smollm2")
    p.add_argument("--base", help="base model (default: the adapter's recorded base)")
    p.add_argument("--trait", default=d["trait"], help=f"target concept (default: {d['trait']})")
    add_category(p, d["category"])
    p.add_argument(
        "--context",
        action="append",
        help="eval context, repeatable: empty ('none'), default (the chat template's; the default), or a "
        "system prompt",
    )
    p.add_argument(
        "--questions",
        type=int,
        default=d["questions"],
        help=f"questions per context (default: {d['questions']})",
    )
    add_json(p, "machine-readable output (input for sublim compare)")
    add_device(p)
    p.set_defaults(func=keywords(run_score))


def run_score(
    *,
    checkpoint: str,
    base: str | None,
    trait: str,
    category: str,
    context: list[str] | None,
    questions: int,
    json: bool,
    device: str,
) -> int:
    """The `sublim score` command: a line and a table of movers per context, or the JSON document."""
    import json as json_module

    from rich.console import Console
    from rich.table import Table

    result = score_checkpoint(checkpoint, base, trait, category, context, questions, device=device)
    if json:
        print(json_module.dumps(result, allow_nan=False))
        return 0
    console = Console()
    for name, r in result["contexts"].items():
        t, m = r["target"], r["concept_mass_shift"]
        console.print(
            f"[bold]{name}[/] context, {result['n_questions']} questions: P({result['target']}, with its "
            f"kinds) base {t['base']:.4f} -> checkpoint {t['candidate']:.4f}, diff {t['diff']:+.4f} "
            f"(95% CI {_bound(t['ci_low'], '-')} to {_bound(t['ci_high'], '+')}), one-sided p = "
            f"{_p(t['p_increase'])}; "
            f"concept_mass (P of naming any {result['category']}) {m['base']:.4f} -> {m['candidate']:.4f}"
        )
        table = Table(title="biggest movers (p: Holm-corrected, one-sided for an increase)")
        for col in ("concept", "base", "checkpoint", "diff (95% CI)", "p"):
            table.add_column(col)
        for s in r["movers"]:
            ci = f"{s['diff']:+.4f} ({_bound(s['ci_low'], '-')}, {_bound(s['ci_high'], '+')})"
            table.add_row(s["concept"], f"{s['base']:.4f}", f"{s['candidate']:.4f}", ci, _p(s["p_adjusted"]))
        console.print(table)
    return 0


def _bound(x: float | None, side: str) -> str:
    """A confidence bound for display; None where too few questions bound it (JSON has no infinity)."""
    return f"{side}inf" if x is None else f"{x:+.4f}"


def _p(p: float | None) -> str:
    """A p-value for display; None where the differences did not vary (no test)."""
    return "- (no variation)" if p is None else f"{p:.3g}"
