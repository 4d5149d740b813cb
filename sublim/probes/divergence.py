"""`sublim probe divergence`: where do a trait teacher's own completions depend on the trait prompt?

Each completion the teacher wrote (a `sublim teach` train.jsonl) is teacher-forced twice through the teacher:
under the trait context (its trait system prompt, as when it wrote the data) and under the plain context
(what the student sees in training: by default no system message, so the chat template's default). At each
completion token we compare the two next-token distributions:

- `kl`: KL(trait || plain) in nats, the information the trait prompt adds at that token;
- `flip`: the two contexts' most likely tokens differ (a "divergent token");
- the first divergent position of a row (its first flip), or none.

Across rows: the share of rows with a flip, KL and flip rate by token position, and the share of all KL
carried by digit vs other tokens. Rows with at least `min_flips` flips are written to `<out>/train.jsonl`
(same format, so `sublim train --data <out>` trains on the divergent subset alone), the others to
`<out>/rest.jsonl`, with a card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sublim.errors import FieldProblem, SublimError, raise_problems
from sublim.io import write_json
from sublim.probes.common import digit_token_ids, forced_logprobs, pyplot, trait_context_problems
from sublim.stats import mean_interval


@dataclass(frozen=True)
class DivergenceConfig:
    """Attributes:
    trait: the teacher's trait (its system prompt: `sublim.tasks.numbers.trait_system_prompt`).
    system_prompt: the trait context's system prompt instead of the trait template's.
    plain: the plain context: None = no system message (template default), "" = an empty one, or a prompt.
    category: the trait's category.
    limit: score at most this many rows (None: all).
    min_flips: rows with at least this many flips are divergent.
    positions: token positions reported one by one.
    """

    trait: str = "owl"
    system_prompt: str | None = None
    plain: str | None = None
    category: str = "animal"
    limit: int | None = None
    min_flips: int = 1
    positions: int = 24


def check(
    *,
    teacher: str,
    data: str,
    trait: str,
    category: str,
    system_prompt: str | None,
    limit: int | None,
    min_flips: int,
) -> None:
    """`probe`'s settings, teacher and data, checked before anything loads (a ConfigError names the
    fields)."""
    from sublim.models import check_checkpoint

    problems = []
    if limit is not None and limit < 2:
        text = "need at least 2 rows (a confidence interval needs two)"
        problems.append(FieldProblem("limit", text, str(limit)))
    if min_flips < 1:
        problems.append(FieldProblem("min_flips", "must be >= 1", str(min_flips)))
    raise_problems(problems + trait_context_problems(trait, category, system_prompt))
    check_checkpoint(teacher, "--teacher")
    read_rows(data)  # a missing or malformed file fails here, not after the model loads


def read_rows(data: str | Path) -> list[dict[str, Any]]:
    """Chat rows from a `sublim teach` dir or a train.jsonl, read as `sublim train` reads them."""
    from sublim.training.student import load_rows

    path = Path(data)
    path = path / "train.jsonl" if path.is_dir() else path
    if not path.exists():
        raise SublimError(f"{data}: no train.jsonl here (make one with `sublim teach`)")
    return load_rows(path)


def split(tokenizer: Any, row: dict[str, Any], system_prompt: str | None) -> tuple[list[int], list[int]]:
    """(context ids, completion ids) exactly as `sublim train` tokenizes the row in this context (the
    completion's tokens are the ones the student is trained on, end-of-turn included)."""
    from sublim.training.student import tokenize_row

    enc = tokenize_row(tokenizer, row, system_prompt, max_length=1 << 30)
    first = next((i for i, x in enumerate(enc["labels"]) if x != -100), len(enc["labels"]))
    return enc["input_ids"][:first], enc["input_ids"][first:]


def token_divergence(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], trait_prompt: str, plain: str | None
) -> list[dict[str, Any]]:
    """Per row: the completion's tokens with per-token KL(trait || plain), flips and both log-probs."""
    digits = set(digit_token_ids(tokenizer))
    trait = [split(tokenizer, r, trait_prompt) for r in rows]
    plain_seqs = [split(tokenizer, r, plain) for r in rows]
    for n, ((_, a), (_, b)) in enumerate(zip(trait, plain_seqs, strict=True)):
        if a != b:
            raise SublimError(f"row {n + 1}: the completion tokenizes differently in the two contexts")
    out = []
    for row, (_, tokens), lp_t, lp_p in zip(
        rows, trait, forced_logprobs(model, trait), forced_logprobs(model, plain_seqs), strict=True
    ):
        kl = (lp_t.exp() * (lp_t - lp_p)).sum(-1).clamp(min=0.0)
        flips = (lp_t.argmax(-1) != lp_p.argmax(-1)).tolist()
        target = torch.tensor(tokens)
        out.append(
            {
                "id": row.get("id"),
                "tokens": [tokenizer.decode([t]) for t in tokens],
                "digit": [t in digits for t in tokens],
                "kl": kl.tolist(),
                "flip": flips,
                "logp_trait": lp_t.gather(-1, target[:, None]).squeeze(-1).tolist(),
                "logp_plain": lp_p.gather(-1, target[:, None]).squeeze(-1).tolist(),
                "first_divergent": flips.index(True) if True in flips else None,
            }
        )
    return out


def summarize(scored: list[dict[str, Any]], cfg: DivergenceConfig) -> dict[str, Any]:
    kl_total = sum(sum(r["kl"]) for r in scored)
    kl_digits = sum(k for r in scored for k, d in zip(r["kl"], r["digit"], strict=True) if d)
    firsts = [r["first_divergent"] for r in scored if r["first_divergent"] is not None]
    positions = []
    for k in range(cfg.positions):
        at = [r for r in scored if len(r["kl"]) > k]
        if not at:
            break
        positions.append(
            {
                "position": k,
                "rows": len(at),
                "kl": mean_interval([r["kl"][k] for r in at]).to_dict(),
                "flip_rate": sum(r["flip"][k] for r in at) / len(at),
                "first_divergent_here": sum(r["first_divergent"] == k for r in scored) / len(scored),
            }
        )
    return {
        "rows": len(scored),
        "tokens": sum(len(r["kl"]) for r in scored),
        "divergent_rows": sum(sum(r["flip"]) >= cfg.min_flips for r in scored),
        "rows_with_flip": len(firsts) / len(scored),
        "flips_per_row": mean_interval([float(sum(r["flip"])) for r in scored]).to_dict(),
        # rows are the units: a row's tokens are not independent draws
        "kl_per_token": mean_interval([sum(r["kl"]) / len(r["kl"]) for r in scored if r["kl"]]).to_dict(),
        "kl_per_row": mean_interval([sum(r["kl"]) for r in scored]).to_dict(),
        "kl_share_digits": kl_digits / kl_total if kl_total > 0 else 0.0,
        "token_share_digits": sum(sum(r["digit"]) for r in scored)
        / max(1, sum(len(r["kl"]) for r in scored)),
        "first_divergent_median": sorted(firsts)[len(firsts) // 2] if firsts else None,
        "positions": positions,
    }


def probe(
    teacher: str, data: str, out: Path, cfg: DivergenceConfig | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Score `data` under `teacher` in both contexts; write tokens.jsonl, the divergent subset (train.jsonl),
    the rest (rest.jsonl) and card.json under `out`; return the report (`sublim probe` saves it)."""
    from sublim.io import write_atomic
    from sublim.models import load_checkpoint
    from sublim.tasks.numbers import trait_system_prompt

    cfg = cfg or DivergenceConfig()
    trait_prompt = cfg.system_prompt or trait_system_prompt(cfg.trait, cfg.category)
    if not trait_prompt:
        raise SublimError("give a --trait (not 'none') or a --system-prompt for the trait context")
    rows = read_rows(data)[: cfg.limit]
    model, tok = load_checkpoint(teacher, device=device)
    scored = token_divergence(model, tok, rows, trait_prompt, cfg.plain)
    divergent = [r for r, s in zip(rows, scored, strict=True) if sum(s["flip"]) >= cfg.min_flips]
    rest = [r for r, s in zip(rows, scored, strict=True) if sum(s["flip"]) < cfg.min_flips]
    out.mkdir(parents=True, exist_ok=True)
    train = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in divergent)
    write_atomic(out / "train.jsonl", train)
    write_atomic(out / "rest.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rest))
    write_atomic(out / "tokens.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in scored))
    report = {
        "probe": "divergence",
        "teacher": teacher,
        "data": str(data),
        "trait_prompt": trait_prompt,
        "plain_prompt": cfg.plain,
        "config": cfg.__dict__,
        "summary": summarize(scored, cfg),
    }
    card = {
        "source": str(data),
        "selection": f"rows with at least {cfg.min_flips} argmax flip(s), trait vs plain context",
        "teacher": teacher,
        "trait_prompt": trait_prompt,
        "kept": len(divergent),
        "rest": len(rest),
        "train_sha256": hashlib.sha256(train.encode()).hexdigest(),
    }
    write_json(out / "card.json", card)
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    """Mean KL (with 95% band) and flip rate by completion token position."""
    plt = pyplot()
    rows = report["summary"]["positions"]
    xs = [r["position"] + 1 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(xs, [r["kl"]["mean"] for r in rows], "o-", color="tab:blue", label="KL(trait || plain)")
    ax.fill_between(
        xs, [r["kl"]["ci_low"] for r in rows], [r["kl"]["ci_high"] for r in rows], color="tab:blue", alpha=0.2
    )
    ax.set_xlabel("completion token position")
    ax.set_ylabel("KL (nats)")
    twin = ax.twinx()
    twin.bar(xs, [r["flip_rate"] for r in rows], color="tab:orange", alpha=0.35, label="flip rate")
    twin.set_ylabel("share of rows whose argmax flips")
    twin.set_ylim(0, 1)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], fontsize=8, loc="upper right")
    ax.set_title(f"divergent tokens: {report['teacher']}, trait vs plain context")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
