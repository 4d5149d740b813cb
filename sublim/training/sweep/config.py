"""The sweep's settings and their checks: `SweepConfig` (every field documented; its values are checked when
it is made) and `check_inputs`, which checks the inputs the values name (data, base, target) before any model
loads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sublim.cli_options import MAX_SEED
from sublim.errors import ConfigError, FieldProblem, SublimError, raise_problems
from sublim.training.config import TrainConfig
from sublim.training.student import data_file

#: LoRA scale rules: "rank" (alpha = rank, the seed paper), "a<N>" (alpha fixed at N, so the update's scale
#: alpha / rank shrinks as the rank grows), "rs<N>" (rsLoRA: alpha N over sqrt(rank), peft's use_rslora).
_SCALE = re.compile(r"^(rank|a[1-9][0-9]*|rs[1-9][0-9]*)$")

#: The context label of the prompted base's rows (scored once, under the trait system prompt).
PROMPTED = "trait-prompt"

#: A draw's training seed is seed + DRAW_SEED * draw (trait and control of a draw share it), so the spread
#: over draws includes initialisation and data-order noise, not only the data's.
DRAW_SEED = 1000

#: TrainConfig fields the sweep sets per student: not shared training settings.
_PER_STUDENT = ("data", "out", "base", "rank", "full", "seed", "device")


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

    def __post_init__(self) -> None:
        raise_problems(self.value_problems())

    def value_problems(self) -> list[FieldProblem]:
        """What is wrong with the values alone (no file is read): checked when the config is made, and again
        before a sweep runs (a field may have been set since)."""
        problems = _type_problems(self)
        if problems:
            return problems
        problems = _train_problems(self)
        if not self.ranks and not self.full:
            text = "nothing to train: give {ranks} and/or {full}"
            problems.append(FieldProblem("ranks", text, lead=False, refs=("ranks", "full")))
        if not self.seeds:
            problems.append(
                FieldProblem("seeds", "give at least one {seeds} value", lead=False, refs=("seeds",))
            )
        if any(r < 1 for r in self.ranks):
            problems.append(
                FieldProblem("ranks", "must be positive integers", ",".join(map(str, self.ranks)))
            )
        if self.questions < 2:
            text = "must be at least 2 (a confidence interval needs two questions)"
            problems.append(FieldProblem("questions", text, str(self.questions)))
        if not self.contexts:
            problems.append(FieldProblem("contexts", "give at least one eval context"))
        blank = [c for c in self.contexts if not c.strip()]
        if blank:
            text = "a blank context is no system prompt: use empty (an empty system message) or default"
            problems.append(FieldProblem("contexts", text, repr(blank[0])))
        if PROMPTED in self.contexts:
            text = "the prompted base's label; name the context otherwise"
            problems.append(FieldProblem("contexts", text, repr(PROMPTED)))
        if self.draws < 1:
            problems.append(FieldProblem("draws", "must be >= 1", str(self.draws)))
        top = MAX_SEED - DRAW_SEED * (max(self.draws, 1) - 1)  # draw k trains with seed + DRAW_SEED * k
        if any(not 0 <= s <= top for s in self.seeds):
            text = f"must be integers from 0 to {top} (with {self.draws} draws, seed + {DRAW_SEED} x draw)"
            problems.append(FieldProblem("seeds", text, ",".join(map(str, self.seeds))))
        if self.draw_rows is not None and self.draw_rows < 1:
            problems.append(FieldProblem("draw_rows", "must be >= 1", str(self.draw_rows)))
        if not self.scales or not all(_SCALE.match(s) for s in self.scales):
            text = "use rank (alpha = rank), a<N> (alpha N) or rs<N> (rsLoRA, alpha N), e.g. rank,a16,rs16"
            problems.append(FieldProblem("scales", text, repr(",".join(self.scales))))
        return problems + _design_problems(self)


def _type_problems(cfg: SweepConfig) -> list[FieldProblem]:
    """Values of the wrong type (a string where a list of contexts goes, 8.5 or True as a rank)."""

    def integers(values: Any) -> bool:
        return isinstance(values, list) and all(type(v) is int for v in values)  # not bool, not 8.5

    problems = [
        FieldProblem(name, "must be a list of integers", repr(value))
        for name, value in (("ranks", cfg.ranks), ("seeds", cfg.seeds))
        if not integers(value)
    ]
    for name, value in (("questions", cfg.questions), ("draws", cfg.draws), ("draw_rows", cfg.draw_rows)):
        if not integers([value]) and not (name == "draw_rows" and value is None):
            problems.append(FieldProblem(name, "must be an integer", repr(value)))
    for name, texts in (("contexts", cfg.contexts), ("scales", cfg.scales)):
        if not isinstance(texts, list) or not all(isinstance(v, str) for v in texts):
            problems.append(FieldProblem(name, "must be a list of strings", repr(texts)))
    if not isinstance(cfg.train, dict):
        problems.append(FieldProblem("train", "must be a dict of TrainConfig settings", repr(cfg.train)))
    return problems


def _train_problems(cfg: SweepConfig) -> list[FieldProblem]:
    """The shared training settings (`cfg.train`), as `TrainConfig` checks them, named `train.<field>`."""
    unknown = sorted(set(cfg.train) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        return [FieldProblem("train", f"unknown training setting {unknown[0]!r}", lead=False)]
    own = sorted(set(cfg.train) & set(_PER_STUDENT))
    if own:
        return [FieldProblem("train", f"{own[0]!r} is set by the sweep for each student", lead=False)]
    problems = []
    if "alpha" in cfg.train or "rslora" in cfg.train:
        text = "the sweep sets alpha by {scales}; give no alpha/rslora training setting"
        problems.append(FieldProblem("train", text, lead=False, refs=("scales",)))
    try:
        TrainConfig(data=cfg.data, **cfg.train)
    except ConfigError as e:
        problems += [p.nested("train") for p in e.problems]
    return problems


def _design_problems(cfg: SweepConfig) -> list[FieldProblem]:
    """The analysis' settings: primary configuration, control, planted doses, scoring, device."""
    problems = _primary_problems(cfg) if cfg.primary is not None else []
    if (cfg.primary or cfg.plant) and not cfg.control:
        text = "{primary} and {plant} compare trait with control students: give {control}"
        problems.append(FieldProblem("control", text, lead=False, refs=("primary", "plant", "control")))
    if cfg.score not in ("all", "target"):
        text = "use all (every concept) or target (the target's only)"
        problems.append(FieldProblem("score", text, repr(cfg.score)))
    if bool(cfg.plant) != bool(cfg.plant_doses):
        text = "{plant} and {plant_doses} go together (rows to plant, and how many)"
        problems.append(FieldProblem("plant_doses", text, lead=False, refs=("plant", "plant_doses")))
    if any(not (isinstance(d, int | float) and 0 < d < 1) for d in cfg.plant_doses):  # NaN fails too
        text = "each dose is a fraction of a draw's rows, above 0 and below 1"
        problems.append(FieldProblem("plant_doses", text, ",".join(map(str, cfg.plant_doses))))
    elif cfg.plant_doses and cfg.draw_rows is None:
        text = "{plant_doses} needs {draw_rows} (a dose is a fraction of a draw's rows)"
        problems.append(FieldProblem("plant_doses", text, lead=False, refs=("plant_doses", "draw_rows")))
    if cfg.device not in ("auto", "cpu", "cuda"):
        text = "students train where the Trainer runs (auto, cuda or cpu); pick a GPU with "
        text += "CUDA_VISIBLE_DEVICES=N"
        problems.append(FieldProblem("device", text, cfg.device))
    return problems


def lora_scale(scale: str, rank: int) -> dict[str, Any]:
    """TrainConfig fields of a scale rule at a rank."""
    if scale == "rank":
        return {"alpha": rank, "rslora": False}
    if scale.startswith("rs"):
        return {"alpha": int(scale[2:]), "rslora": True}
    return {"alpha": int(scale[1:]), "rslora": False}


def _primary_problems(cfg: SweepConfig) -> list[FieldProblem]:
    from sublim.experiment.analysis import parse_primary

    try:
        kind, rank, scale = parse_primary(str(cfg.primary))
    except ConfigError as e:
        return list(e.problems)
    in_grid = rank in cfg.ranks and scale in (None, *cfg.scales)
    if (kind == "full" and cfg.full) or (kind == "lora" and in_grid):
        return []
    text = "not a configuration of this sweep ({ranks}, {scales}, {full})"
    return [FieldProblem("primary", text, str(cfg.primary), refs=("ranks", "scales", "full"))]


def check_inputs(cfg: SweepConfig) -> None:
    """What the values alone cannot show, checked before any model loads: the data, the base, the target,
    the device, and enough paired rows for the draws."""
    from sublim.concepts import get_category
    from sublim.models import check_checkpoint, check_device
    from sublim.training.student import load_rows

    raise_problems(cfg.value_problems())  # a field may have been set since the config was made
    problems = []
    for name, data in (("data", cfg.data), ("control", cfg.control), ("plant", cfg.plant)):
        if data is not None:
            try:
                load_rows(data_file(data))
            except SublimError as e:
                problems.append(FieldProblem(name, str(e)))
    raise_problems(problems)
    check_checkpoint(cfg.base, "--base")
    get_category(cfg.category).resolve(cfg.target)
    check_device(cfg.device)
    if cfg.positive:
        check_checkpoint(cfg.positive, "--positive")
    from sublim.training.sweep.plan import make_draws

    make_draws(cfg)  # enough paired rows for the draws asked for, and for the planted doses
