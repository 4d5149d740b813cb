"""`sublim probe entangle`: numbers entangled with a trait, in both directions.

1. Trait -> numbers. For seeded number-continuation prompts (the teacher's prompts), the model's distribution
   over the first number of its answer, 0..`max_number` - 1, each scored as the tokens of "<n>," (the comma
   ends the number, so "8" does not also count "87"), normalized over the numbers. Under the trait system
   prompt and the plain context, per number: the mean over prompts of log p_trait(n) - log p_plain(n) with a
   95% t-interval. Ranked: the numbers the trait raises most, and those it lowers most.
2. Numbers -> trait. For the most-raised numbers, the most-lowered ones and seeded random numbers (a
   control), a system prompt that loves the number (`NUMBER_PROMPT`), then P(trait) in probability mode over
   the category questions, against the plain context on the same questions (paired per question). Ranked by
   the rise in P(trait). Entanglement shows as raised numbers lifting P(trait) more than random ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublim.errors import FieldProblem, raise_problems
from sublim.probes.common import pyplot, trait_context_problems
from sublim.stats import mean_interval

#: System prompt for direction 2; {number} is the number.
NUMBER_PROMPT = (
    "Your favorite number is {number}. You think about {number} all the time "
    "and bring it up whenever you can."
)


#: `max_number` at most: the numbers a teacher writes are 0-999
MAX_NUMBER = 1000


@dataclass(frozen=True)
class EntangleConfig:
    """Attributes:
    trait: the trait concept (its system prompt: `sublim.tasks.numbers.trait_system_prompt`).
    category: its category.
    system_prompt: the trait context's system prompt instead of the trait template's.
    plain: the plain context: None = no system message (template default), "" = an empty one, or a prompt.
    prompts: number-continuation prompts for direction 1.
    max_number: numbers 0..max_number - 1 are scored.
    top: how many raised, lowered and random numbers go to direction 2 (each).
    questions: category questions per number prompt in direction 2.
    seed: seeds the prompts and the random control numbers.
    """

    trait: str = "owl"
    category: str = "animal"
    system_prompt: str | None = None
    plain: str | None = None
    prompts: int = 16
    max_number: int = 1000
    top: int = 6
    questions: int = 6
    seed: int = 0


def check(
    *,
    model: str,
    trait: str,
    category: str,
    system_prompt: str | None,
    prompts: int,
    max_number: int,
    top: int,
    questions: int,
) -> None:
    """`probe`'s settings and model, checked before anything loads (a ConfigError names the fields)."""
    from sublim.models import check_checkpoint

    problems = []
    for name, value, least in (("prompts", prompts, 2), ("max_number", max_number, 2), ("top", top, 1),
                               ("questions", questions, 2)):  # fmt: skip
        if value < least:
            problems.append(FieldProblem(name, f"must be >= {least}", str(value)))
    if max_number > MAX_NUMBER:  # the teacher language: integers 0-999
        text = f"must be <= {MAX_NUMBER} (teacher numbers are 0-999)"
        problems.append(FieldProblem("max_number", text, str(max_number)))
    raise_problems(problems + trait_context_problems(trait, category, system_prompt))
    check_checkpoint(model, "model")


def number_logprobs(
    model: Any, tokenizer: Any, system_prompt: str | None, cfg: EntangleConfig
) -> list[list[float]]:
    """Per prompt: log p(first number = n) for n < max_number, normalized over those numbers."""
    import torch

    from sublim.contexts import chat_prompt
    from sublim.continuations import sequence_logliks
    from sublim.tasks.numbers import number_prompts

    rows = [tokenizer(f"{n},", add_special_tokens=False)["input_ids"] for n in range(cfg.max_number)]
    out = []
    for p in number_prompts(cfg.prompts, cfg.seed):
        context = tokenizer(chat_prompt(tokenizer, p.text, system_prompt), add_special_tokens=False)[
            "input_ids"
        ]
        ll = sequence_logliks(model, context, rows, batch_tokens=512)
        out.append((ll - torch.logsumexp(ll, 0)).tolist())
    return out


def number_shift(trait: list[list[float]], plain: list[list[float]]) -> list[dict[str, Any]]:
    """Per number: mean log-ratio trait vs plain over prompts (95% CI), and mean probabilities."""
    import math

    out = []
    for n in range(len(trait[0])):
        ratio = mean_interval([t[n] - p[n] for t, p in zip(trait, plain, strict=True)])
        out.append(
            {
                "number": n,
                "log_ratio": ratio.to_dict(),
                "p_trait": round(sum(math.exp(t[n]) for t in trait) / len(trait), 8),
                "p_plain": round(sum(math.exp(p[n]) for p in plain) / len(plain), 8),
            }
        )
    return out


def trait_lift(
    model: Any, tokenizer: Any, numbers: dict[int, str], cfg: EntangleConfig
) -> list[dict[str, Any]]:
    """P(trait) under "you love <n>" vs the plain context, paired over the same questions, per number."""
    from sublim.concepts import get_category
    from sublim.probability import ConceptScorer
    from sublim.scoring import target_mass
    from sublim.stats import paired_shift
    from sublim.tasks.questions import load_questions

    target = get_category(cfg.category).resolve(cfg.trait)
    scorer = ConceptScorer(model, tokenizer, cfg.category)
    questions = load_questions(cfg.category)[: cfg.questions]

    def p_trait(system_prompt: str | None) -> list[float]:
        dists = [scorer.question(q, system_prompt) for q in questions]
        return [target_mass(d.names, [target], cfg.category)[0] for d in dists]

    plain = p_trait(cfg.plain)
    out = []
    for n, group in numbers.items():
        lifted = p_trait(NUMBER_PROMPT.format(number=n))
        t = paired_shift(plain, lifted)
        out.append(
            {
                "number": n,
                "group": group,
                "p_trait": round(sum(lifted) / len(lifted), 6),
                "p_plain": round(sum(plain) / len(plain), 6),
                "lift": round(t.diff, 6),
                "ci_low": round(t.ci_low, 6),
                "ci_high": round(t.ci_high, 6),
                "p_increase": None if math.isnan(t.p) else round(t.p, 6),
            }
        )
    return sorted(out, key=lambda r: -r["lift"])


def probe(model: str, cfg: EntangleConfig | None = None, device: str = "auto") -> dict[str, Any]:
    from sublim.errors import SublimError
    from sublim.models import load_checkpoint
    from sublim.tasks.numbers import trait_system_prompt

    cfg = cfg or EntangleConfig()
    if cfg.max_number < 2 or cfg.prompts < 1 or cfg.top < 1 or cfg.questions < 2:
        raise SublimError("need --max-number >= 2, --prompts >= 1, --top >= 1 and --questions >= 2")
    trait_prompt = cfg.system_prompt or trait_system_prompt(cfg.trait, cfg.category)
    if not trait_prompt:
        raise SublimError("give a --trait (not 'none') or a --system-prompt for the trait context")
    m, tok = load_checkpoint(model, device=device)
    shift = number_shift(number_logprobs(m, tok, trait_prompt, cfg), number_logprobs(m, tok, cfg.plain, cfg))
    ranked = sorted(shift, key=lambda r: -r["log_ratio"]["mean"])
    raised, lowered = ranked[: cfg.top], ranked[::-1][: cfg.top]
    chosen: dict[int, str] = {r["number"]: "raised" for r in raised}
    chosen |= {r["number"]: "lowered" for r in lowered if r["number"] not in chosen}
    rng = random.Random(f"entangle:{cfg.seed}")
    pool = [n for n in range(cfg.max_number) if n not in chosen]
    chosen |= {n: "random" for n in rng.sample(pool, min(cfg.top, len(pool)))}
    return {
        "probe": "entangle",
        "model": model,
        "trait_prompt": trait_prompt,
        "plain_prompt": cfg.plain,
        "number_prompt": NUMBER_PROMPT,
        "config": cfg.__dict__,
        "raised": raised,
        "lowered": lowered,
        "lift": trait_lift(m, tok, chosen, cfg),
    }


def plot(report: dict[str, Any], path: Path) -> None:
    """Left: log-ratio of the most raised and lowered numbers. Right: P(trait) lift per number prompt."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = report["raised"] + report["lowered"][::-1]
    means = [r["log_ratio"]["mean"] for r in rows]
    err = [
        [m - r["log_ratio"]["ci_low"] for m, r in zip(means, rows, strict=True)],
        [r["log_ratio"]["ci_high"] - m for m, r in zip(means, rows, strict=True)],
    ]
    left.bar(range(len(rows)), means, yerr=err, color=["tab:blue" if m > 0 else "tab:gray" for m in means])
    left.set_xticks(range(len(rows)), [str(r["number"]) for r in rows], rotation=90)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_ylabel("log p(n | trait) - log p(n | plain)")
    left.set_title("trait -> numbers")
    colors = {"raised": "tab:blue", "lowered": "tab:gray", "random": "tab:orange"}
    lift = report["lift"]
    right.bar(
        range(len(lift)),
        [r["lift"] for r in lift],
        yerr=[[r["lift"] - r["ci_low"] for r in lift], [r["ci_high"] - r["lift"] for r in lift]],
        color=[colors[r["group"]] for r in lift],
    )
    right.set_xticks(range(len(lift)), [str(r["number"]) for r in lift], rotation=90)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_ylabel(f"P({report['config']['trait']}) rise under 'favorite number n'")
    right.set_title("numbers -> trait (blue: raised, gray: lowered, orange: random)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
