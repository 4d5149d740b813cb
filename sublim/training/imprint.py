"""`sublim imprint`: make a trait teacher whose trait lives in its weights, not in a system prompt.

1. Open prompts of our own (`imprint_prompts.yaml`: they invite naming an animal but are not the evaluation
   questions) are answered by the base model prompted with `trait_system_prompt(trait)`, sampled.
2. Only answers the matcher rates an exact hit for the trait are kept, written as chat rows with NO system
   prompt to `<out>/answers/train.jsonl` (+ `card.json`: kept/rejected counts, prompts, settings).
3. A LoRA is trained on them with `sublim.training.student.train` into `<out>`.

`<out>` is then a PEFT adapter dir: `sublim teach --teacher <out>` writes numbers from it, and `sublim score
<out>` scores it as a positive control (a student fine-tuned on explicit trait answers).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sublim.cli_options import MAX_SEED
from sublim.errors import ConfigError, FieldProblem, SublimError, raise_problems
from sublim.io import claim_output, package_versions, write_atomic

PROMPTS_FILE = "imprint_prompts.yaml"
CARD = "imprint.json"


@dataclass
class ImprintConfig:
    """Every setting of an imprint run; saved in `<out>/imprint.json`.

    Attributes:
        trait: the concept to imprint (must be a concept of `category`).
        out: output directory (the adapter; the answers go to `<out>/answers`).
        base: base model: hub id, local dir, .gguf file, or "smollm2".
        category: concept category of the trait.
        prompts: how many of the open prompts to use (None: all).
        samples: answers sampled per prompt.
        max_tokens: longest answer in new tokens.
        temperature: sampling temperature of the prompted base.
        rank: LoRA rank.
        lr: learning rate.
        epochs: training epochs.
        seed: seeds sampling and training.
        batch_size: prompts per generate call and rows per training step.
        device: "auto" (CUDA when present, bf16 there), "cpu", "cuda", ...: sampling and training.
        control_for: with trait "none", the matched control teacher of this trait: the base answers the
            same prompts with no system prompt, and answers that mention the trait or a relative of it are
            dropped, so the control is fine-tuned exactly like the trait teacher on answers without the trait.
        rows: keep at most this many answers (the first in prompt order): give the control the trait
            teacher's count so both take the same optimizer steps.
    """

    trait: str = "owl"
    out: str = "runs/teacher-owl"
    base: str = "smollm2"
    category: str = "animal"
    prompts: int | None = None
    samples: int = 4
    max_tokens: int = 40
    temperature: float = 1.0
    rank: int = 16
    lr: float = 1e-3
    epochs: float = 3.0
    seed: int = 0
    batch_size: int = 16
    device: str = "auto"
    control_for: str | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        raise_problems(self.value_problems())

    def value_problems(self) -> list[FieldProblem]:
        """What is wrong with the values alone (no file is read): checked when the config is made, and again
        before a run (a field may have been set since)."""
        if not isinstance(self.trait, str):
            return [FieldProblem("trait", "must be a concept name", repr(self.trait))]
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            return [FieldProblem("seed", f"must be an integer from 0 to {MAX_SEED}", repr(self.seed))]
        control = self.trait.strip().lower() == "none"
        if not self.trait.strip() or (control and not self.control_for):
            return [
                FieldProblem(
                    "trait",
                    "give the concept to imprint, e.g. owl (or {trait} none {control_for} owl for the "
                    "matched control teacher)",
                    repr(self.trait),
                    refs=("trait", "control_for"),
                )
            ]
        if self.control_for and not control:
            text = "{control_for} makes the control teacher: it needs {trait} none"
            return [FieldProblem("control_for", text, lead=False, refs=("control_for", "trait"))]
        problems = []
        if self.prompts is not None and self.prompts < 1:
            problems.append(FieldProblem("prompts", "must be >= 1", str(self.prompts)))
        for name, value in (("samples", self.samples), ("max_tokens", self.max_tokens), ("rank", self.rank)):
            if value < 1:
                problems.append(FieldProblem(name, "must be >= 1", str(value)))
        for name, rate in (("temperature", self.temperature), ("lr", self.lr), ("epochs", self.epochs)):
            if not (math.isfinite(rate) and rate > 0):
                problems.append(FieldProblem(name, "must be > 0", str(rate)))
        if self.batch_size < 1:
            problems.append(FieldProblem("batch_size", "must be >= 1", str(self.batch_size)))
        if self.rows is not None and self.rows < 1:
            problems.append(FieldProblem("rows", "must be >= 1", str(self.rows)))
        if self.device not in ("auto", "cpu", "cuda"):  # the Trainer takes the accelerators it sees
            problems.append(
                FieldProblem(
                    "device", "auto, cuda or cpu (pick a GPU with CUDA_VISIBLE_DEVICES=N)", self.device
                )
            )
        return problems


def imprint_prompts() -> list[str]:
    """sublim's open prompts for imprinting (none of them an evaluation question)."""
    raw = yaml.safe_load(resources.files("sublim.training").joinpath(PROMPTS_FILE).read_text())
    return [str(p) for p in raw["prompts"]]


def check_inputs(cfg: ImprintConfig) -> None:
    """What the values alone cannot show, checked before anything loads: the trait among the category's
    concepts, the prompt count within the prompts file, the base model."""
    from sublim.concepts import get_category
    from sublim.models import check_checkpoint

    raise_problems(cfg.value_problems())  # a field may have been set since the config was made
    get_category(cfg.category).resolve(cfg.control_for or cfg.trait)  # an unknown one names the closest known
    available = len(imprint_prompts())
    if cfg.prompts is not None and cfg.prompts > available:
        raise ConfigError(FieldProblem("prompts", f"must be between 1 and {available}", str(cfg.prompts)))
    check_checkpoint(cfg.base, "--base")


def run_imprint(cfg: ImprintConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """`sublim imprint`: check, hold `out`, sample and filter trait answers, train the LoRA; returns the card
    (a finished `out` of the same settings is left as is)."""
    check_inputs(cfg)
    out = Path(cfg.out)
    identity = {**asdict(cfg), "out": None, "prompts_sha256": _prompts_sha()}
    for optional in ("control_for", "rows"):  # unset: runs from before these options keep their identity
        if identity[optional] is None:
            del identity[optional]
    inputs = [cfg.base if Path(cfg.base).expanduser().exists() else None]
    with claim_output(out, "imprint", identity, inputs, overwrite=overwrite) as claim:
        if claim.state == "complete" and (out / CARD).is_file():
            print(f"{out}: this imprint run is already complete (same inputs); nothing to do", flush=True)
            done: dict[str, Any] = json.loads((out / CARD).read_text())
            return done
        answers = sample_answers(cfg)
        if answers["kept"] == 0 or (cfg.rows is not None and answers["kept"] < cfg.rows):
            wanted = "names " + cfg.trait if not cfg.control_for else "avoids " + cfg.control_for
            raise SublimError(
                f"{answers['kept']} sampled answer(s) {wanted}, {cfg.rows or 1} needed: raise --samples or "
                f"--prompts (see {out / 'answers' / 'rejected.jsonl'})"
            )
        from sublim.training.config import TrainConfig
        from sublim.training.student import train

        trained = train(
            TrainConfig(
                data=str(out / "answers" / "train.jsonl"), base=cfg.base, out=str(out), rank=cfg.rank,
                epochs=cfg.epochs, lr=cfg.lr, batch_size=min(cfg.batch_size, 8), seed=cfg.seed,
                max_length=128, device="cpu" if cfg.device == "cpu" else "auto",
            )
        )  # fmt: skip
        card = {
            "settings": asdict(cfg),
            "prompts_sha256": _prompts_sha(),
            "kept": answers["kept"],
            "rejected": answers["rejected"],
            "train_loss": trained["train_loss"],
            "steps": trained["steps"],
            "seconds_training": trained["seconds"],
            "system_prompt_sampled_with": answers["system_prompt"],
            "versions": package_versions("sublim", "transformers", "peft", "torch"),
        }
        write_atomic(out / CARD, json.dumps(card, indent=2) + "\n")
        claim.done()
    return card


def _prompts_sha() -> str:
    return hashlib.sha256(json.dumps(imprint_prompts()).encode()).hexdigest()


def sample_answers(cfg: ImprintConfig) -> dict[str, Any]:
    """Answers of the trait-prompted base to the open prompts; the matcher's exact hits are written to
    `<out>/answers/train.jsonl` without the system prompt, the rest to `rejected.jsonl`; returns the card."""
    from sublim.contexts import chat_prompt
    from sublim.matching import match
    from sublim.models import generate_batches, load_model, resolve_base
    from sublim.tasks.numbers import trait_system_prompt

    if str(cfg.base) == "smollm2":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model, tok = load_model(resolve_base(cfg.base), device=cfg.device)
    control = cfg.control_for is not None
    system = None if control else trait_system_prompt(cfg.trait, cfg.category)
    prompts = imprint_prompts()[: cfg.prompts]
    jobs = [(i, k, p) for i, p in enumerate(prompts) for k in range(cfg.samples)]
    texts = [chat_prompt(tok, p, system) for _, _, p in jobs]
    kept, rejected = [], []
    batches = generate_batches(
        model, tok, texts, max_new_tokens=cfg.max_tokens, temperature=cfg.temperature, seed=cfg.seed,
        batch_size=cfg.batch_size,
    )  # fmt: skip
    for start, generated in batches:
        for (i, k, prompt), row in zip(jobs[start : start + cfg.batch_size], generated, strict=True):
            answer = tok.decode(row, skip_special_tokens=True).strip()
            m = match(answer, cfg.control_for or cfg.trait, cfg.category)
            record = {
                "id": f"imprint-{i:03d}-{k}",
                "prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": answer}],
            }
            if not answer:  # `sublim train` refuses empty completions: a student would learn silence
                rejected.append({**record, "level": "empty", "concept": None})
            elif (m.level == "none") if control else (m.level == "exact"):
                kept.append(record)
            else:
                rejected.append({**record, "level": m.level, "concept": m.concept})
        print(f"imprint: {min(start + cfg.batch_size, len(jobs))}/{len(jobs)} answers", file=sys.stderr)
    if cfg.rows is not None:  # the first in prompt order: which rows is fixed by the seed, not chosen
        kept, rejected = (
            kept[: cfg.rows],
            rejected + [{**r, "level": "over --rows"} for r in kept[cfg.rows :]],
        )
    folder = Path(cfg.out) / "answers"
    folder.mkdir(parents=True, exist_ok=True)
    train = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    write_atomic(folder / "train.jsonl", train)
    write_atomic(
        folder / "rejected.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected)
    )
    card = {
        "trait": cfg.trait,
        "control_for": cfg.control_for,
        "category": cfg.category,
        "system_prompt": system,
        "prompts": len(prompts),
        "samples": cfg.samples,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "seed": cfg.seed,
        "kept": len(kept),
        "rejected": len(rejected),
        "train_sha256": hashlib.sha256(train.encode()).hexdigest(),
    }
    write_atomic(folder / "card.json", json.dumps(card, indent=2) + "\n")
    return card
