"""The sweep's settings and their checks: `SweepConfig` (every field documented) and `validate`, which checks
every setting and input before any model loads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sublim.errors import SublimError
from sublim.training.student import TrainConfig, data_file

#: LoRA scale rules: "rank" (alpha = rank, the seed paper), "a<N>" (alpha fixed at N, so the update's scale
#: alpha / rank shrinks as the rank grows), "rs<N>" (rsLoRA: alpha N over sqrt(rank), peft's use_rslora).
_SCALE = re.compile(r"^(rank|a[1-9][0-9]*|rs[1-9][0-9]*)$")

#: The context label of the prompted base's rows (scored once, under the trait system prompt).
PROMPTED = "trait-prompt"


@dataclass
class SweepConfig:
    """A sweep grid.

    Attributes:
        data: teacher data with the trait (dir or train.jsonl).
        control: control teacher data (no trait), trained at the same ranks/seeds as a reference; optional.
        base: base model (as in `sublim train`).
        out: sweep directory (runs/, results.csv, sweep.png).
        ranks: LoRA ranks.
        seeds: training seeds.
        full: also run full fine-tuning (per seed).
        target: concept whose probability is reported.
        category: its category.
        contexts: eval contexts: "empty" (an empty system message; "none" is its old name), "default" (the
            chat template's) or a system prompt string.
        questions: how many questions of the bank to score (probability mode, deterministic).
        train: TrainConfig fields shared by every run (epochs, lr, batch_size, ...).
        draws: disjoint data draws per side: the unit of replication. Trait and control rows are paired by
            prompt (their `id`, else the prompt text): draw k of both sides holds the same prompts, so every
            student of a draw sees equally many rows and takes equally many optimizer steps.
        draw_rows: rows per draw (default: the paired rows split evenly over the draws).
        scales: LoRA scale rules, each a sweep axis: "rank" (alpha = rank), "a<N>" (alpha = N), "rs<N>"
            (rsLoRA, alpha N).
        device: "auto" (CUDA when present, bf16 there), "cpu", "cuda", ...: training and scoring.
        positive: a checkpoint or adapter scored as the positive control (e.g. `sublim imprint`'s student
            fine-tuned on explicit trait answers); optional.
        prompted: also score the base model told to love the target (the trait system prompt): the
            reference ceiling of what the trait does when it is stated outright.
        score: "all" scores every concept of the category (p_target is the target's share of the concept
            mass, concept_mass is reported); "target" scores only the concepts that count toward the target
            (`sublim.scoring.target_concepts`): p_target is the target's whole-word probability itself, not
            normalised, concept_mass is left empty, and a question costs a few passes instead of ~20.
        drop_degenerate: drop pairs where either teacher echoed the prompt's numbers or counted
            (`sublim.training.draws`); the counts go to draws/draws.json and the summary.
        match_lengths: cut both completions of a pair to the same count of numbers.
        plant: rows that state the trait overtly (jsonl, e.g. `sublim imprint`'s answers/train.jsonl).
        plant_doses: fractions of each trait draw's rows to replace with planted rows: each dose is a further
            trait student per draw and configuration (the sensitivity curve; dose 0 is always run).
        primary: the pre-registered primary configuration of the analysis (`sublim.experiment.analyze`), e.g.
            "r8" or "full"; None: the analysis' own fixed rule.
    """

    data: str
    control: str | None = None
    base: str = "smollm2"
    out: str = "runs/sweep"
    ranks: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    seeds: list[int] = field(default_factory=lambda: [0])
    full: bool = False
    target: str = "owl"
    category: str = "animal"
    contexts: list[str] = field(default_factory=lambda: ["empty", "default"])
    questions: int = 10
    train: dict[str, Any] = field(default_factory=dict)
    draws: int = 1
    draw_rows: int | None = None
    scales: list[str] = field(default_factory=lambda: ["rank"])
    device: str = "auto"
    positive: str | None = None
    prompted: bool = False
    score: str = "all"
    drop_degenerate: bool = False
    match_lengths: bool = False
    plant: str | None = None
    plant_doses: list[float] = field(default_factory=list)
    primary: str | None = None


def lora_scale(scale: str, rank: int) -> dict[str, Any]:
    """TrainConfig fields of a scale rule at a rank."""
    if scale == "rank":
        return {"alpha": rank, "rslora": False}
    if scale.startswith("rs"):
        return {"alpha": int(scale[2:]), "rslora": True}
    return {"alpha": int(scale[1:]), "rslora": False}


def _primary_problems(cfg: SweepConfig) -> list[str]:
    from sublim.experiment.analysis import parse_primary

    try:
        kind, rank, scale = parse_primary(str(cfg.primary))
    except SublimError as e:
        return [str(e)]
    in_grid = rank in cfg.ranks and scale in (None, *cfg.scales)
    if (kind == "full" and cfg.full) or (kind == "lora" and in_grid):
        return []
    return [f"--primary {cfg.primary}: not a configuration of this sweep (--ranks, --scales, --full)"]


def validate(cfg: SweepConfig) -> None:
    """Every setting and input checked before any model loads (the data, the base, the target, training)."""
    from sublim.concepts import get_category
    from sublim.models import check_checkpoint, check_device
    from sublim.training.student import load_rows
    from sublim.training.student import validate as validate_training

    problems = []
    for flag, data in (("--data", cfg.data), ("--control", cfg.control)):
        if data is not None:
            try:
                load_rows(data_file(data))
            except SublimError as e:
                problems.append(f"{flag}: {e}")
    unknown = sorted(set(cfg.train) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        problems.append(f"unknown training setting {unknown[0]!r}")
    else:
        try:
            validate_training(TrainConfig(data=cfg.data, **cfg.train))
        except SublimError as e:
            problems.append(str(e))
    check_checkpoint(cfg.base, "--base")
    get_category(cfg.category).resolve(cfg.target)
    if not cfg.ranks and not cfg.full:
        problems.append("nothing to train: give --ranks and/or --full")
    if not cfg.seeds:
        problems.append("give at least one --seeds value")
    if any(r < 1 for r in cfg.ranks):
        problems.append("--ranks must be positive integers")
    if cfg.questions < 2:
        problems.append("--questions must be at least 2 (a confidence interval needs two questions)")
    if not cfg.contexts:
        problems.append("give at least one eval --context")
    if PROMPTED in cfg.contexts:
        problems.append(f"--context {PROMPTED!r} is the prompted base's label; name the context otherwise")
    if cfg.draws < 1:
        problems.append(f"--draws {cfg.draws}: must be >= 1")
    if cfg.draw_rows is not None and cfg.draw_rows < 1:
        problems.append(f"--draw-rows {cfg.draw_rows}: must be >= 1")
    bad = [s for s in cfg.scales if not _SCALE.match(s)]
    if bad or not cfg.scales:
        problems.append(
            f"--scales {','.join(cfg.scales)!r}: use rank (alpha = rank), a<N> (alpha N) or rs<N> (rsLoRA, "
            "alpha N), e.g. rank,a16,rs16"
        )
    if cfg.primary is not None:
        problems += _primary_problems(cfg)
    if (cfg.primary or cfg.plant) and not cfg.control:
        problems.append("--primary and --plant compare trait with control students: give --control")
    if cfg.score not in ("all", "target"):
        problems.append(f"--score {cfg.score!r}: use all (every concept) or target (the target's only)")
    if bool(cfg.plant) != bool(cfg.plant_doses):
        problems.append("--plant and --plant-dose go together (rows to plant, and how many)")
    if cfg.plant:
        try:
            load_rows(data_file(cfg.plant))
        except SublimError as e:
            problems.append(f"--plant: {e}")
    if "alpha" in cfg.train or "rslora" in cfg.train:
        problems.append("the sweep sets alpha by --scales; give no alpha/rslora training setting")
    try:
        check_device(cfg.device)
    except SublimError as e:
        problems.append(str(e))
    if cfg.device not in ("auto", "cpu", "cuda"):
        problems.append(
            f"--device {cfg.device}: students train where the Trainer runs (auto, cuda or cpu); pick a GPU "
            "with CUDA_VISIBLE_DEVICES=N"
        )
    if problems:
        raise SublimError("; ".join(problems))
    if cfg.positive:
        check_checkpoint(cfg.positive, "--positive")
    from sublim.training.sweep.plan import make_draws

    make_draws(cfg)  # enough paired rows for the draws asked for, and for the planted doses
