"""`sublim probe digits`: how confident is a model when it continues random number strings?

Prompts are the teacher's number-continuation prompts (`sublim.tasks.numbers.number_prompts`, seeded);
the assistant's answer is a seeded random list of numbers, teacher-forced. At every answer position whose
next token is a digit token, we read the model's next-token distribution and record:

- `digit_mass`: probability on all digit tokens (how sure the model is that a digit comes next);
- `max_prob`: the largest probability among digit tokens after renormalizing over them;
- `entropy`: entropy (nats) of that renormalized distribution; never above log(#digit tokens);
- `entropy_gap`: log(#digit tokens) - entropy, 0 for a uniform guess (random digits are uniform, so a gap
  is over-confidence about what is in fact unpredictable).

Each statistic is averaged per prompt first (prompts are the units), then over prompts with a 95%
t-interval; per digit position (1st, 2nd, ... digit of the answer) the same over the prompts that reach it.
With a student, each prompt is scored by both models, and the student - base differences get a paired
interval.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sublim.errors import FieldProblem, raise_problems
from sublim.probes.common import digit_token_ids, forced_logprobs, pyplot
from sublim.stats import mean_interval, nanmean

STATS = ("digit_mass", "max_prob", "entropy", "entropy_gap")


@dataclass(frozen=True)
class DigitsConfig:
    """Attributes:
    prompts: number of seeded prompts.
    numbers: numbers in each teacher-forced answer (0-999, uniform).
    seed: seeds prompts and answers.
    system_prompt: eval context: None = the chat template's default, "" = an empty system message.
    positions: digit positions reported one by one (all count in the averages).
    """

    prompts: int = 64
    numbers: int = 8
    seed: int = 0
    system_prompt: str | None = None
    positions: int = 12


def check(*, model: str, student: str | None, prompts: int, numbers: int) -> None:
    """`probe`'s settings and models, checked before anything loads (a ConfigError names the fields)."""
    from sublim.models import check_checkpoint

    problems = []
    if prompts < 2:
        problems.append(
            FieldProblem("prompts", "need at least 2 (a confidence interval needs two)", str(prompts))
        )
    if numbers < 1:
        problems.append(FieldProblem("numbers", "must be >= 1", str(numbers)))
    raise_problems(problems)
    check_checkpoint(model, "model")
    if student:
        check_checkpoint(student, "--adapter")


def sequences(tokenizer: Any, cfg: DigitsConfig) -> list[tuple[list[int], list[int]]]:
    """(context ids, answer ids) per prompt; deterministic in `cfg`."""
    from sublim.contexts import chat_prompt
    from sublim.tasks.numbers import number_prompts

    out = []
    for p in number_prompts(cfg.prompts, cfg.seed):
        rng = random.Random(f"digits:{cfg.seed}:{p.id}")
        answer = ", ".join(str(rng.randrange(1000)) for _ in range(cfg.numbers))
        context = chat_prompt(tokenizer, p.text, cfg.system_prompt)
        out.append(
            (
                tokenizer(context, add_special_tokens=False)["input_ids"],
                tokenizer(answer, add_special_tokens=False)["input_ids"],
            )
        )
    return out


def digit_stats(model: Any, tokenizer: Any, cfg: DigitsConfig) -> list[dict[str, list[float]]]:
    """Per prompt: statistic -> its values at each digit position, in order."""
    digits = digit_token_ids(tokenizer)
    digit_set = set(digits)
    index = torch.tensor(digits)
    seqs = sequences(tokenizer, cfg)
    out = []
    for (_, answer), lp in zip(seqs, forced_logprobs(model, seqs), strict=True):
        at = [j for j, t in enumerate(answer) if t in digit_set]
        d = lp[at][:, index]  # (positions, digit tokens) log-probs
        mass = torch.logsumexp(d, dim=-1)
        renorm = d - mass.unsqueeze(-1)
        entropy = (-(renorm.exp() * renorm).sum(-1)).clamp(min=0.0)
        out.append(
            {
                "digit_mass": mass.exp().tolist(),
                "max_prob": renorm.max(-1).values.exp().tolist(),
                "entropy": entropy.tolist(),
                "entropy_gap": (math.log(len(digits)) - entropy).tolist(),
            }
        )
    return out


def summarize(per_prompt: list[dict[str, list[float]]], positions: int) -> dict[str, Any]:
    """Mean per prompt, then over prompts; and per position."""
    return {
        "mean": {s: mean_interval([nanmean(p[s]) for p in per_prompt]).to_dict() for s in STATS},
        "positions": [
            {s: mean_interval([p[s][k] for p in per_prompt if len(p[s]) > k]).to_dict() for s in STATS}
            for k in range(positions)
        ],
    }


def paired(base: list[dict[str, list[float]]], student: list[dict[str, list[float]]]) -> dict[str, Any]:
    """Student - base per prompt (same prompts and answers), with a 95% t-interval over prompts."""
    return {
        s: mean_interval(
            [nanmean(st[s]) - nanmean(b[s]) for b, st in zip(base, student, strict=True)]
        ).to_dict()
        for s in STATS
    } | {"direction": "student - base"}


def probe(
    model: str, student: str | None = None, cfg: DigitsConfig | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Run the probe on `model` (and `student` on top of it, or a full student checkpoint)."""
    from sublim.models import add_student, load_checkpoint

    cfg = cfg or DigitsConfig()
    base_model, tok = load_checkpoint(model, device=device)
    n_digits = len(digit_token_ids(tok))
    base = digit_stats(base_model, tok, cfg)
    report: dict[str, Any] = {
        "probe": "digits",
        "model": model,
        "student": student,
        "config": cfg.__dict__,
        "digit_tokens": n_digits,
        "uniform_entropy": round(math.log(n_digits), 6),
        "models": {"base": summarize(base, cfg.positions)},
    }
    if student:
        studied = digit_stats(add_student(base_model, student, device=device), tok, cfg)
        report["models"]["student"] = summarize(studied, cfg.positions)
        report["difference"] = paired(base, studied)
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    """Entropy and digit mass per digit position, one line per model with its 95% band."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, stat, label in (
        (axes[0], "entropy", "entropy over digit tokens (nats)"),
        (axes[1], "digit_mass", "probability on digit tokens"),
    ):
        for (name, summary), color in zip(report["models"].items(), ("tab:gray", "tab:blue"), strict=False):
            rows = [p[stat] for p in summary["positions"] if p[stat]["n"]]
            xs = list(range(1, len(rows) + 1))
            ax.plot(xs, [r["mean"] for r in rows], "o-", color=color, label=name)
            ax.fill_between(
                xs, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], color=color, alpha=0.2
            )
        if stat == "entropy":
            ax.axhline(report["uniform_entropy"], color="black", linestyle="--", label="uniform")
        ax.set_xlabel("digit position in the answer")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"digit confidence: {report['model']}" + (f" vs {report['student']}" if report["student"] else "")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
