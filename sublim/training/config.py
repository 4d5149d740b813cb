"""`TrainConfig`: every hyperparameter of a student run (saved as run.json next to the weights), its values
checked when it is made, and the LoRA target modules it names."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from sublim.cli_options import MAX_SEED
from sublim.errors import ConfigError, FieldProblem, raise_problems

#: LoRA target-module presets for Llama-style models (SmolLM2, Llama, Qwen, Mistral); other names can be
#: given explicitly, comma-separated.
TARGET_PRESETS = {
    "attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
    "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


@dataclass
class TrainConfig:
    """Every hyperparameter of a student run; saved as run.json next to the weights.

    Attributes:
        data: teacher data (`train.jsonl`, or the directory holding it).
        base: base model: hub id, local HF dir, a .gguf file, or "smollm2" (embedded).
        out: output directory.
        rank: LoRA rank.
        alpha: LoRA alpha; None means alpha = rank.
        rslora: rank-stabilised LoRA (peft's use_rslora): the update is scaled by alpha / sqrt(rank)
            instead of alpha / rank.
        dropout: LoRA dropout.
        targets: LoRA target modules: "attn", "mlp", "all", or comma-separated module names.
        full: full fine-tuning instead of LoRA.
        epochs: training epochs.
        lr: learning rate; None means 2e-4 for LoRA, 2e-5 for full fine-tuning.
        batch_size: per-device batch size.
        grad_accum: gradient accumulation steps.
        max_length: longest tokenized row (longer rows are cut).
        seed: seeds initialization and data order.
        system_prompt: training context: None (no system message) or a system prompt string.
        merge: also save a merged checkpoint (LoRA only) under out/merged.
        device: "auto" (an accelerator when present, bf16 mixed precision on CUDA) or "cpu".
    """

    data: str
    base: str = "smollm2"
    out: str = "runs/student"
    rank: int = 8
    alpha: int | None = None
    rslora: bool = False
    dropout: float = 0.0
    targets: str = "all"
    full: bool = False
    epochs: float = 3.0
    lr: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 0
    system_prompt: str | None = None
    merge: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        raise_problems(self.value_problems())

    def value_problems(self) -> list[FieldProblem]:
        """What is wrong with the values alone (no file is read): checked when the config is made, and again
        before a run (a field may have been set since)."""
        wrong = [
            FieldProblem(name, "must be an integer", repr(value))
            for name, value in (("rank", self.rank), ("seed", self.seed), ("batch_size", self.batch_size))
            if not isinstance(value, int) or isinstance(value, bool)
        ]
        if wrong:
            return wrong
        problems = []
        if not 0 <= self.seed <= MAX_SEED:
            problems.append(FieldProblem("seed", f"must be from 0 to {MAX_SEED}", str(self.seed)))
        if not self.full and self.rank < 1:
            problems.append(FieldProblem("rank", "must be >= 1", str(self.rank)))
        if self.alpha is not None and self.alpha < 1:
            problems.append(FieldProblem("alpha", "must be >= 1", str(self.alpha)))
        if not 0 <= self.dropout < 1:
            problems.append(FieldProblem("dropout", "must be in [0, 1)", str(self.dropout)))
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            problems.append(
                FieldProblem(
                    "epochs",
                    "must be a finite number > 0 (0 would save an untrained model)",
                    str(self.epochs),
                )
            )
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(FieldProblem("lr", "must be > 0", str(self.lr)))
        for name, value in (("batch_size", self.batch_size), ("grad_accum", self.grad_accum)):
            if value < 1:
                problems.append(FieldProblem(name, "must be >= 1", str(value)))
        if self.device not in ("auto", "cpu"):
            problems.append(
                FieldProblem(
                    "device", "auto (the Trainer takes the accelerators it sees) or cpu", repr(self.device)
                )
            )
        if self.max_length < 8:
            problems.append(FieldProblem("max_length", "must be >= 8 tokens", str(self.max_length)))
        if not self.full:
            try:
                bad = [m for m in target_modules(self.targets) if not _MODULE.match(m)]
            except ConfigError as e:
                problems += e.problems
            else:
                if bad:
                    problems.append(
                        FieldProblem("targets", f"{bad[0]!r} is not a module name", repr(self.targets))
                    )
        return problems

    def resolved(self) -> dict[str, Any]:
        d = asdict(self)
        del d["device"]  # where it runs, not what it learns
        if not self.rslora:
            del d["rslora"]  # runs from before the option keep their identity
        d["alpha"] = self.rank if self.alpha is None else self.alpha
        d["lr"] = self.lr if self.lr is not None else (2e-5 if self.full else 2e-4)
        d["target_modules"] = None if self.full else target_modules(self.targets)
        return d


def target_modules(spec: str) -> list[str]:
    if spec in TARGET_PRESETS:
        return TARGET_PRESETS[spec]
    names = [x.strip() for x in spec.split(",") if x.strip()]
    if not names:
        raise ConfigError(
            FieldProblem("targets", "use attn, mlp, all, or comma-separated module names", repr(spec))
        )
    return names


_MODULE = re.compile(r"^[A-Za-z_][\w.]*$")
