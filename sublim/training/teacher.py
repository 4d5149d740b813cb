"""`sublim teach`: run `sublim/numbers` through Inspect and export what a student may train on.

Output directory:
- `train.jsonl`: completions that passed the filter, as chat rows `{"id", "prompt": [user], "completion":
  [assistant]}` with no system prompt (the student never sees the teacher's trait);
- `rejected.jsonl`: every other completion with its `reason`;
- `card.json`: teacher, system prompt, seeds, counts per reason, sha256 of train.jsonl, package versions.
Files are written whole to a temp name and renamed, so an interrupted export leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.io import claim_output, package_versions, write_atomic
from sublim.models import EMBEDDED_DEFAULT, check_inspect_model, inspect_model
from sublim.tasks.numbers import REASONS, check_teacher_settings


def run_teacher(
    out: Path,
    *,
    trait: str | None,
    n: int,
    model: str = EMBEDDED_DEFAULT,
    model_args: dict[str, Any] | None = None,
    seed: int = 0,
    system_prompt: str | None = None,
    category: str = "animal",
    temperature: float = 1.0,
    max_tokens: int = 60,
    ban: list[int] | None = None,
    log_dir: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate teacher data with Inspect and export it; returns the card. Every setting is checked and `out`
    is held (see `sublim.io.claim_output`) before the model loads; a finished `out` of the same settings is
    left as is."""
    check_teacher_settings(n, temperature, max_tokens, system_prompt, ban, flag="--")
    check_inspect_model(model, model_args)
    identity = {
        "trait": trait, "category": category, "n": n, "seed": seed, "system_prompt": system_prompt,
        "temperature": temperature, "max_tokens": max_tokens, "ban": ban or [], "model": model,
        "model_args": {k: str(v) for k, v in (model_args or {}).items()},
    }  # fmt: skip
    inputs = [v for k, v in (model_args or {}).items() if k in ("model_path", "tokenizer_path")]
    with claim_output(out, "teach", identity, inputs, overwrite=overwrite) as claim:
        if claim.state == "complete" and (out / "card.json").is_file():
            print(f"{out}: this teacher run is already complete (same inputs); nothing to do", flush=True)
            card: dict[str, Any] = json.loads((out / "card.json").read_text())
            return card
        card = _generate(
            out, trait=trait, n=n, model=model, model_args=model_args, seed=seed, system_prompt=system_prompt,
            category=category, temperature=temperature, max_tokens=max_tokens, ban=ban, log_dir=log_dir,
        )  # fmt: skip
        claim.done()
    return card


def _generate(
    out: Path,
    *,
    trait: str | None,
    n: int,
    model: str,
    model_args: dict[str, Any] | None,
    seed: int,
    system_prompt: str | None,
    category: str,
    temperature: float,
    max_tokens: int,
    ban: list[int] | None,
    log_dir: str | None,
) -> dict[str, Any]:
    name, args = inspect_model(model, model_args)  # first: may set HF_HUB_OFFLINE before imports
    if temperature == 0 and name.startswith("hf/"):
        args.setdefault("do_sample", False)  # greedy: transformers refuses temperature 0 when sampling
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    from sublim.tasks.numbers import numbers

    task = numbers(trait, category, n, seed, system_prompt, temperature, max_tokens, ban)
    [log] = inspect_eval(
        task,
        model=get_model(name, config=GenerateConfig(seed=seed), **args),
        log_dir=log_dir or str(out / "logs"),
        display="none",
        max_connections=32,
    )
    if log.status == "cancelled":
        raise KeyboardInterrupt
    if log.status != "success":
        message = log.error.message if log.error else log.status
        raise SublimError(
            f"teacher run failed: {message.strip().splitlines()[-1][:300]} (log: {log.location})"
        )
    rows = []
    for s in sorted(log.samples or [], key=lambda s: str(s.id)):
        score = next(iter((s.scores or {}).values()))
        rows.append(
            {
                "id": str(s.id),
                "prompt": str(s.input),
                "completion": s.output.completion if s.output else "",
                "reason": (score.metadata or {}).get("reason"),
            }
        )
    teacher = {  # paths as the card's reader can use them: the log beside the data, the cache under ~
        "model": name,
        "model_args": {k: _portable(str(v)) for k, v in args.items()},
        "log": _portable(str(log.location), relative_to=out),
    }
    settings = {
        "trait": trait,
        "category": category,
        "n": n,
        "seed": seed,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "ban": ban or [],
    }
    prompt = (task.dataset[0].metadata or {}).get("system_prompt")
    return export(out, rows, teacher=teacher, system_prompt=prompt, settings=settings)


def export(
    out: Path,
    rows: Iterable[dict[str, Any]],
    *,
    teacher: dict[str, Any],
    system_prompt: str | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Write train.jsonl, rejected.jsonl and card.json from rows {id, prompt, completion, reason}."""
    out.mkdir(parents=True, exist_ok=True)
    kept, rejected = [], []
    for r in rows:
        if r["reason"] is None:
            kept.append(
                {
                    "id": r["id"],
                    "prompt": [{"role": "user", "content": r["prompt"]}],
                    "completion": [{"role": "assistant", "content": r["completion"].strip()}],
                }
            )
        else:
            rejected.append(r)
    train = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    write_atomic(out / "train.jsonl", train)
    write_atomic(out / "rejected.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected))
    counts = Counter(r["reason"] for r in rejected)
    card = {
        "teacher": teacher,
        "system_prompt": system_prompt,
        **settings,
        "counts": {
            "total": len(kept) + len(rejected),
            "kept": len(kept),
            "rejected": {reason: counts.get(reason, 0) for reason in REASONS},
        },
        "train_sha256": hashlib.sha256(train.encode()).hexdigest(),
        "versions": package_versions("sublim", "inspect_ai", "transformers", "torch"),
    }
    write_atomic(out / "card.json", json.dumps(card, indent=2) + "\n")
    return card


def _portable(path: str, relative_to: Path | None = None) -> str:
    """A path for a card that travels with the data: relative to `relative_to` when inside it, else with the
    home directory written as ~ (no machine's absolute paths in committed cards)."""
    if relative_to is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(relative_to).resolve()))
        except ValueError:
            pass
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path
