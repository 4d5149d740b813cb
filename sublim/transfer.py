"""`sublim score CHECKPOINT --base BASE`: did this checkpoint pick up the trait, and how sure are we?

Both models answer the same questions in probability mode (deterministic), under each eval context. For the
target: P(target) base vs checkpoint and their difference with a 95% CI that pairs the questions, plus a
one-sided p-value for an increase; over all concepts: the biggest movers with Holm-corrected p-values
(`sublim.stats`). `--json` writes the same as a document `sublim compare` can read.
"""

from __future__ import annotations

import json
from typing import Any

from sublim.errors import SublimError
from sublim.stats import compare_tables

MOVERS = 10


def score_checkpoint(
    checkpoint: str,
    base: str | None = None,
    trait: str = "owl",
    category: str = "animal",
    contexts: list[str] | None = None,
    questions: int = 20,
) -> dict[str, Any]:
    from sublim.concepts import get_category
    from sublim.contexts import system_prompt_for
    from sublim.models import add_student, load_model, resolve_base, resolve_checkpoint
    from sublim.probability import ConceptScorer
    from sublim.tasks.questions import load_questions

    target = get_category(category).resolve(trait)
    model_id, adapter = resolve_checkpoint(checkpoint, base)
    if adapter:
        base_id = model_id  # the adapter's base, bare
    elif base is None:
        raise SublimError(f"{checkpoint} is a full model: pass --base to compare against")
    else:
        base_id = str(resolve_base(base))
    qs = load_questions(category)[:questions]
    contexts = contexts or ["default"]
    tables: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    model, tok = load_model(base_id)
    scorer = ConceptScorer(model, tok, category)
    for side in ("base", "checkpoint"):
        if side == "checkpoint":  # an adapter goes on top of the loaded base; a full model is loaded
            scorer.model = add_student(model, adapter or model_id)
        for context in contexts:
            prompt = system_prompt_for(context)
            tables.setdefault(context, {})[side] = {
                q.id: scorer.distribution(scorer.render(q.text, q.answer_prefix, prompt)).probs for q in qs
            }
    result: dict[str, Any] = {
        "checkpoint": checkpoint,
        "base": base_id,
        "adapter": adapter,
        "target": target,
        "category": category,
        "n_questions": len(qs),
        "correction": "holm",
        "contexts": {},
    }
    for context, sides in tables.items():
        [target_shift] = compare_tables(sides["base"], sides["checkpoint"], [target])
        movers = sorted(compare_tables(sides["base"], sides["checkpoint"]), key=lambda s: -abs(s.diff))
        result["contexts"][context] = {
            "target": target_shift.to_dict(),
            "movers": [s.to_dict() for s in movers[:MOVERS]],
            "tables": sides,  # per-question distributions: `sublim compare` input
        }
    return result


def run_score(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    result = score_checkpoint(
        args.checkpoint, args.base, args.trait, args.category, args.context, args.questions
    )
    if args.json:
        print(json.dumps(result))
        return 0
    console = Console()
    for context, r in result["contexts"].items():
        t = r["target"]
        console.print(
            f"[bold]{context}[/] context, {result['n_questions']} questions: P({result['target']}) "
            f"base {t['base']:.4f} -> checkpoint {t['candidate']:.4f}, diff {t['diff']:+.4f} "
            f"(95% CI {t['ci_low']:+.4f} to {t['ci_high']:+.4f}), one-sided p = {t['p_increase']:.3g}"
        )
        table = Table(title="biggest movers (p: Holm-corrected, one-sided for an increase)")
        for col in ("concept", "base", "checkpoint", "diff (95% CI)", "p"):
            table.add_column(col)
        for s in r["movers"]:
            ci = f"{s['diff']:+.4f} ({s['ci_low']:+.4f}, {s['ci_high']:+.4f})"
            table.add_row(
                s["concept"], f"{s['base']:.4f}", f"{s['candidate']:.4f}", ci, f"{s['p_adjusted']:.3g}"
            )
        console.print(table)
    return 0
