"""`sublim sweep`: the seed experiment in one command. Train students over LoRA ranks x seeds (+ full
fine-tuning, + the control teacher's data), score each in probability mode under one or more eval contexts,
write `results.csv` and `sweep.png`.

Contexts: "none" (an empty system message: no system prompt at all), "default" (no system message, so the
chat template's default applies, e.g. SmolLM2's "You are a helpful AI assistant named SmolLM..."), or any
other string, used as the system prompt.

Runs know their inputs: a run's id is its name plus a hash of everything that changes its result (the data's
content, base model, target, category, questions, epochs, lr, rank, alpha, targets, seed, ..., sublim's
version), e.g. `trait-r4-s0-1a2b3c4d`, and its adapter lives in `runs/<id>`. The sweep dir records the
shared inputs (`sublim.io.claim_output`): a re-run with other inputs is refused with the settings that differ
(`--overwrite` replaces the dir; `--resume` keeps it and adds runs under new ids). Ranks, seeds and contexts
may change between re-runs: only (run id, context) pairs missing from results.csv are trained or scored, so no
row is ever duplicated, and the summary and plot show only the rows of the current settings.

Resumable: results.csv is rewritten whole to a temp file and renamed after each run, so a killed sweep never
leaves a half-written result, and a re-run skips finished runs (a half-trained run has no run.json and is
trained again).

Where runs execute (`sublim.training.executors`): each run is a `Job` for `run_one` (train if needed, load,
score the missing contexts, return the rows), which the local executor runs in this process and the Ray
executor as Ray tasks; this process alone holds the output claim and writes results.csv, the plot and the
summary.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sublim.errors import SublimError, raise_if_stopped
from sublim.io import (
    atomic_path,
    check_output,
    claim_output,
    file_sha256,
    identity_hash,
    package_versions,
    write_atomic,
)
from sublim.training.draws import DrawKey, DrawSpec, plant_counts
from sublim.training.draws import make_draws as draws_of
from sublim.training.executors import Executor, LocalExecutor
from sublim.training.student import RUN_CARD, TrainConfig, data_file, train

COLUMNS = [
    "run", "dataset", "kind", "rank", "scale", "draw", "seed", "context", "target", "p_target",
    "log_p_target", "log_p_questions",
    "stderr", "ci_low", "ci_high", "n_questions", "concept_mass", "base_p_target", "control_p_target",
    "train_loss", "steps", "rows", "dose", "planted_rows", "scored",
]  # fmt: skip
#: LoRA scale rules: "rank" (alpha = rank, the seed paper), "a<N>" (alpha fixed at N, so the update's scale
#: alpha / rank shrinks as the rank grows), "rs<N>" (rsLoRA: alpha N over sqrt(rank), peft's use_rslora).
_SCALE = re.compile(r"^(rank|a[1-9][0-9]*|rs[1-9][0-9]*)$")


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
        contexts: eval contexts: "none", "default" or a system prompt string.
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
    contexts: list[str] = field(default_factory=lambda: ["none", "default"])
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


@dataclass(frozen=True)
class Run:
    name: str
    dataset: str  # "trait" | "control" | "base" | "prompted" | "positive"
    kind: str  # "lora" | "full" | "base" | "reference"
    rank: int | None
    seed: int | None
    scale: str = ""
    draw: int | None = None
    planted: int = 0  # trait rows of the draw replaced by planted rows (the sensitivity curve)


def plan(cfg: SweepConfig) -> list[Run]:
    """References first (base, prompted base, positive control), then control runs, then trait runs, so
    every trait row can carry its references. Names carry the draw (`-d1`) when there are several and the
    scale rule when it is not alpha = rank."""
    runs = [Run("base", "base", "base", None, None)]
    if cfg.prompted:
        runs.append(Run("prompted", "prompted", "base", None, None))
    if cfg.positive:
        runs.append(Run("positive", "positive", "reference", None, None))
    sides = [("control", 0)] if cfg.control else []
    sides += [("trait", n) for n in (0, *planted_counts(cfg))]
    for dataset, n in sides:
        p = f"-p{n}" if n else ""
        for draw in range(cfg.draws):
            d = f"-d{draw}" if cfg.draws > 1 else ""
            for seed in cfg.seeds:
                for scale in cfg.scales:
                    sc = "" if scale == "rank" else f"-{scale}"
                    runs += [
                        Run(f"{dataset}{p}-r{r}{sc}{d}-s{seed}", dataset, "lora", r, seed, scale, draw, n)
                        for r in cfg.ranks
                    ]
                if cfg.full:
                    name = f"{dataset}{p}-full{d}-s{seed}"
                    runs.append(Run(name, dataset, "full", None, seed, "", draw, n))
    return runs


def planted_counts(cfg: SweepConfig) -> tuple[int, ...]:
    """Planted rows per draw of each --plant-dose (needs the draw size: --draw-rows)."""
    if not cfg.plant_doses:
        return ()
    if cfg.draw_rows is None:
        raise SublimError("--plant-dose needs --draw-rows (a dose is a fraction of a draw's rows)")
    return plant_counts(cfg.plant_doses, cfg.draw_rows)


#: A draw's training seed is --seed + DRAW_SEED * draw (trait and control of a draw share it), so the spread
#: over draws includes initialisation and data-order noise, not only the data's.
DRAW_SEED = 1000


def train_seed(run: Run) -> int:
    return (run.seed or 0) + DRAW_SEED * (run.draw or 0)


def lora_scale(scale: str, rank: int) -> dict[str, Any]:
    """TrainConfig fields of a scale rule at a rank."""
    if scale == "rank":
        return {"alpha": rank, "rslora": False}
    if scale.startswith("rs"):
        return {"alpha": int(scale[2:]), "rslora": True}
    return {"alpha": int(scale[1:]), "rslora": False}


def make_draws(cfg: SweepConfig) -> tuple[dict[DrawKey, list[dict[str, Any]]], dict[str, Any]]:
    """The rows of each (side, draw, planted rows) and a record of how they were drawn
    (`sublim.training.draws.make_draws`)."""
    from sublim.training.student import load_rows

    spec = DrawSpec(cfg.draws, cfg.draw_rows, cfg.drop_degenerate, cfg.match_lengths, planted_counts(cfg))
    control = load_rows(data_file(cfg.control)) if cfg.control else None
    plant = load_rows(data_file(cfg.plant)) if cfg.plant else None
    return draws_of(load_rows(data_file(cfg.data)), control, spec, plant)


def _key(run: Run) -> DrawKey:
    return (run.dataset, run.draw or 0, run.planted)


def draw_file(out: Path, key: DrawKey) -> Path:
    side, d, n = key
    return out / "draws" / (f"{side}-d{d}.jsonl" if not n else f"{side}-d{d}-p{n}.jsonl")


def _rows_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def read_results(path: Path) -> list[dict[str, str]]:
    """The sweep's own rows so far, to resume from (utf-8-sig: a results.csv saved by a spreadsheet starts
    with a byte-order mark; `sublim.experiment.read_results` is the checked reader for analysis)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def sweep(
    cfg: SweepConfig,
    *,
    max_runs: int | None = None,
    on_run: Callable[[Run, int, int], None] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    executor: Executor | None = None,
) -> list[dict[str, str]]:
    """Run (or resume) the sweep; returns the result rows of the current settings. `max_runs` stops after that
    many new runs; `resume` continues a sweep dir made with other inputs (new run ids), `overwrite` replaces
    it; `executor` runs the runs (default: one after another in this process)."""
    shared = check(cfg, resume=resume, overwrite=overwrite)
    inputs = [cfg.data, cfg.control, cfg.base if Path(cfg.base).expanduser().exists() else None]
    earlier = _earlier_sweep(cfg)
    with claim_output(
        cfg.out, "sweep", shared, inputs, overwrite=overwrite, accept_other=resume, adopt=resume and earlier,
        earlier=earlier,
    ) as claim:  # fmt: skip
        final = _sweep(cfg, shared, max_runs=max_runs, on_run=on_run, executor=executor)
        if max_runs is None:
            claim.done()
    return final


def _sweep(
    cfg: SweepConfig,
    shared: dict[str, Any],
    *,
    max_runs: int | None,
    on_run: Callable[[Run, int, int], None] | None,
    executor: Executor | None = None,
) -> list[dict[str, str]]:
    from sublim.models import resolve_base

    out = Path(cfg.out)
    results_path = out / "results.csv"
    rows: list[dict[str, Any]] = _unique(read_results(results_path))
    base = _absolute_path(str(resolve_base(cfg.base)))
    draws, record = make_draws(cfg)
    files = {}
    (out / "draws").mkdir(parents=True, exist_ok=True)
    for key, drawn in draws.items():  # the exact rows each student trains on, kept for audit
        files[key] = draw_file(out, key)
        if not files[key].is_file() or files[key].read_text() != _rows_text(drawn):
            write_atomic(files[key], _rows_text(drawn))
    write_atomic(out / "draws" / "draws.json", json.dumps(record, indent=2) + "\n")
    ids = run_ids(cfg, shared)
    todo = [(r, m) for r in dict.fromkeys(plan(cfg)) if (m := _missing(rows, ids[r], _contexts(cfg, r)))]
    where = _absolute(cfg)  # workers may start elsewhere (another cwd, another node with the same paths)
    students = ("lora", "full")
    jobs = [
        Job(
            cfg=where,
            run=run,
            run_id=ids[run],
            data=str(files[_key(run)].absolute()) if run.kind in students else None,
            contexts=tuple(missing),
            base=base,
            device=cfg.device,
        )
        for run, missing in (todo[:max_runs] if max_runs is not None else todo)
    ]
    pending = list(jobs)
    if on_run and pending:
        on_run(pending[0].run, 0, len(todo))
    # the main process alone writes results.csv: whole, atomically, after each run that completes
    for done, (job, new) in enumerate((executor or LocalExecutor()).map(run_one, jobs), 1):
        rows += new
        write_results(results_path, _fill_references(rows, cfg, ids))
        raise_if_stopped()  # a Ctrl-C a finalizer swallowed during the run stops the sweep here
        pending = [j for j in pending if j is not job]
        if on_run and pending:
            on_run(pending[0].run, done, len(todo))
    final = _current(read_results(results_path), cfg, ids)
    with atomic_path(out / "sweep.png") as png:
        plot(final, png)
    write_atomic(out / "summary.md", summarize(final, cfg, record))
    return final


@dataclass(frozen=True, eq=False)
class Job:
    """One run's work: everything a worker needs, picklable (no model, no open file).

    Attributes:
        cfg: the sweep's settings, with absolute paths.
        run: the run.
        run_id: its id (`runs/<id>` holds a student's weights).
        data: the draw file a student trains on (None for references).
        contexts: the eval contexts it has no row for yet.
        base: the resolved base model dir.
        device: the --device setting, resolved where the job runs.
    """

    cfg: SweepConfig
    run: Run
    run_id: str
    data: str | None
    contexts: tuple[str, ...]
    base: str
    device: str

    def __str__(self) -> str:
        return self.run.name


#: Test-only hook (tests/test_executors.py): the run of this name kills its own process as if it died
#: mid-training, leaving half-written weights and no run.json.
TEST_KILL_RUN = "SUBLIM_TEST_KILL_RUN"


def run_one(job: Job) -> list[dict[str, Any]]:
    """Train the run if it has no finished student yet, load it and score its missing contexts; returns
    the new result rows (references left empty: the main process fills them over all rows)."""
    from sublim.concepts import get_category
    from sublim.contexts import system_prompt_for
    from sublim.models import load_checkpoint, load_model, pick_device
    from sublim.probability import ConceptScorer
    from sublim.scoring import target_concepts
    from sublim.tasks.numbers import trait_system_prompt
    from sublim.tasks.questions import load_questions

    cfg, run, base = job.cfg, job.run, job.base
    target = get_category(cfg.category).resolve(cfg.target)
    questions = load_questions(cfg.category)[: cfg.questions]
    device = pick_device(job.device)
    card: dict[str, Any] = {}
    if run.dataset == "positive":
        model, tok = load_checkpoint(str(cfg.positive), base, device=device)
    elif run.kind == "base":
        model, tok = load_model(base, device=device)
    else:
        run_dir = Path(cfg.out) / "runs" / job.run_id
        train_cfg = TrainConfig(
            data=str(job.data),
            base=base,
            out=str(run_dir),
            rank=run.rank or 8,
            full=run.kind == "full",
            seed=train_seed(run),
            device="cpu" if device == "cpu" else "auto",
            **{**cfg.train, **(lora_scale(run.scale, run.rank) if run.rank else {})},
        )
        if not (run_dir / RUN_CARD).exists():
            if os.environ.get(TEST_KILL_RUN) == run.name:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "adapter_model.safetensors").write_text("half-written")
                os._exit(1)
            card = train(train_cfg)
        else:
            card = _card(run_dir)
        if run.kind == "full":
            model, tok = load_model(run_dir, device=device)
        else:
            model, tok = load_model(base, adapter=run_dir, device=device)
    only = target_concepts([target], cfg.category) if cfg.score == "target" else None
    scorer = ConceptScorer(model, tok, cfg.category, only=only)
    rows = []
    for context in job.contexts:
        prompt = (  # the prompted base: the trait stated outright, in place of an eval context
            trait_system_prompt(target, cfg.category) if context == PROMPTED else system_prompt_for(context)
        )
        rows.append(
            {
                "run": job.run_id,
                "dataset": run.dataset,
                "kind": run.kind,
                "rank": run.rank if run.rank is not None else "",
                "scale": run.scale,
                "draw": run.draw if run.draw is not None else "",
                "seed": run.seed if run.seed is not None else "",
                "context": context,
                "target": target,
                **score_columns(scorer, questions, target, prompt, absolute=cfg.score == "target"),
                "base_p_target": "",
                "control_p_target": "",
                "train_loss": f"{card['train_loss']:.4f}" if card else "",
                "steps": card.get("steps", ""),
                "rows": card.get("rows", ""),
                "dose": f"{run.planted / card['rows']:.6g}" if run.dataset == "trait" and card else "",
                "planted_rows": run.planted if run.dataset == "trait" else "",
                "scored": cfg.score,
            }
        )
    return rows


def _absolute_path(path: str) -> str:
    """A local path made absolute; anything else (a hub id) as it is."""
    return str(Path(path).expanduser().absolute()) if Path(path).expanduser().exists() else path


def _absolute(cfg: SweepConfig) -> SweepConfig:
    """`cfg` with its local paths absolute (a name such as `smollm2` stays a name)."""
    return replace(
        cfg,
        data=_absolute_path(cfg.data),
        control=_absolute_path(cfg.control) if cfg.control else None,
        positive=_absolute_path(cfg.positive) if cfg.positive else None,
        out=str(Path(cfg.out).expanduser().absolute()),
    )


def score_columns(
    scorer: Any, questions: list[Any], target: str, system_prompt: str | None, *, absolute: bool = False
) -> dict[str, Any]:
    """A model's result columns under one context: P(target) over questions with its interval, the mean and
    per-question ln P(target) (the analysis' outcome: shifts are ratios; per-question values allow paired
    tests over questions), and concept_mass (a student that stops naming animals shows here, not in
    p_target). `absolute`: P(target) is the target's whole-word probability (the scorer scored only the
    target's concepts), not its share of the concept mass, and concept_mass is left empty."""
    from scipy import stats as scipy_stats

    from sublim.scoring import target_mass
    from sublim.stats import mean_interval

    dists = [scorer.question(q, system_prompt) for q in questions]
    values = [
        target_mass(d.names or d.probs, [target], scorer.category)[0] * (d.concept_mass if absolute else 1.0)
        for d in dists
    ]
    ci = mean_interval(values)
    se = float(scipy_stats.sem(values)) if len(values) > 1 else math.nan
    spec = ".6g" if absolute else ".6f"  # whole-word P(target) can be 1e-9: keep its digits
    logs = [math.log(max(v, 1e-300)) for v in values]
    return {
        "p_target": f"{ci.mean:{spec}}",
        "log_p_target": f"{sum(logs) / len(logs):.6f}",
        "log_p_questions": ";".join(f"{x:.6f}" for x in logs),
        "stderr": f"{se:{spec}}",
        "ci_low": f"{ci.ci_low:{spec}}",
        "ci_high": f"{ci.ci_high:{spec}}",
        "n_questions": ci.n,
        "concept_mass": "" if absolute else f"{sum(d.concept_mass for d in dists) / len(dists):.6f}",
    }


# ------------------------------------------------------------------------------- run identity and resume


def check(cfg: SweepConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Settings, inputs and the output dir checked (nothing written); returns the shared identity."""
    validate(cfg)
    shared = sweep_identity(cfg)
    inputs = [cfg.data, cfg.control, cfg.base if Path(cfg.base).expanduser().exists() else None]
    if _earlier_sweep(cfg) and not (resume or overwrite):
        raise SublimError(
            f"--out {cfg.out} holds a sweep from an earlier sublim, with no record of its inputs: pass "
            "--resume to keep its rows and train the runs under new ids, or --overwrite to replace it"
        )
    earlier = _earlier_sweep(cfg)
    check_output(
        cfg.out, "sweep", shared, inputs, overwrite=overwrite, accept_other=resume, adopt=resume and earlier,
        earlier=earlier,
    )  # fmt: skip
    return shared


def _earlier_sweep(cfg: SweepConfig) -> bool:
    """A sweep dir an earlier sublim wrote: results.csv with sweep columns but no input record."""
    from sublim.io import STAMP

    out = Path(cfg.out)
    try:
        header = (out / "results.csv").open().readline()
    except OSError:
        return False
    return not (out / STAMP).exists() and header.startswith("run,dataset,kind,")


_PER_RUN = ("data", "out", "rank", "seed", "full", "merge", "target_modules", "alpha", "rslora")
_SCORING = ("base", "target", "category", "questions", "sublim", "score")


def compute_dtype(device: str) -> str:
    """The precision `sublim.models.load_model` and the Trainer use on `device`."""
    from sublim.models import pick_device

    where = pick_device(device)
    if where.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "float32"


def sweep_identity(cfg: SweepConfig) -> dict[str, Any]:
    """The inputs every run of the sweep shares (ranks, seeds and contexts may change between re-runs)."""
    from sublim.concepts import get_category

    settings = TrainConfig(data=cfg.data, **cfg.train).resolved()
    return {
        "data_sha256": file_sha256(data_file(cfg.data)),
        "control_sha256": file_sha256(data_file(cfg.control)) if cfg.control else None,
        "base": cfg.base,
        "target": get_category(cfg.category).resolve(cfg.target),
        "category": cfg.category,
        "questions": cfg.questions,
        "score": cfg.score,
        "sublim": package_versions("sublim")["sublim"],
        **{k: v for k, v in settings.items() if k not in _PER_RUN},
        # None: derived per run (lr by LoRA or full), which the run's kind pins down; alpha by its scale rule
        "lr": cfg.train.get("lr"),
        "dtype": compute_dtype(cfg.device),  # bf16 on CUDA: rows of other precisions never mix
    }


def run_ids(cfg: SweepConfig, shared: dict[str, Any]) -> dict[Run, str]:
    """Each run's id: its name and a hash of everything its result depends on (for a student: the exact
    rows of its draw, its rank, scale rule and seed; for a reference: what it scores)."""
    import hashlib

    from sublim.models import checkpoint_fingerprint

    common = {k: v for k, v in shared.items() if k not in ("data_sha256", "control_sha256")}
    draws, _ = make_draws(cfg)
    sha = {key: hashlib.sha256(_rows_text(rows).encode()).hexdigest() for key, rows in draws.items()}
    out = {}
    for run in plan(cfg):
        ident: dict[str, Any] = {**common, "kind": run.kind}
        if run.kind in ("lora", "full"):
            ident.update(data_sha256=sha[_key(run)], rank=run.rank, seed=train_seed(run))
            if run.kind == "lora":
                ident.update(lora_scale(run.scale, run.rank or 0))
        else:  # references are scored, not trained
            ident = {k: v for k, v in ident.items() if k in _SCORING or k == "kind"}
            if run.dataset == "positive":
                ident["positive"] = checkpoint_fingerprint(str(cfg.positive))
        out[run] = f"{run.name}-{identity_hash(ident, 8)}"
    return out


#: The context label of the prompted base's rows (scored once, under the trait system prompt).
PROMPTED = "trait-prompt"


def _contexts(cfg: SweepConfig, run: Run) -> list[str]:
    return [PROMPTED] if run.dataset == "prompted" else cfg.contexts


def _missing(rows: list[dict[str, Any]], run_id: str, contexts: list[str]) -> list[str]:
    """The contexts this run has no row for yet."""
    have = {r["context"] for r in rows if r["run"] == run_id}
    return [c for c in dict.fromkeys(contexts) if c not in have]


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, context): the first (a duplicate can only come from an older sublim)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        if (r["run"], r["context"]) not in seen:
            seen.add((r["run"], r["context"]))
            out.append(r)
    return out


def _current(rows: list[dict[str, Any]], cfg: SweepConfig, ids: dict[Run, str]) -> list[dict[str, Any]]:
    """The rows of this sweep's runs and contexts (results.csv may also hold runs of earlier settings)."""
    wanted = set(ids.values())
    return [r for r in rows if r["run"] in wanted and r["context"] in [*cfg.contexts, PROMPTED]]


def _fill_references(
    rows: list[dict[str, Any]], cfg: SweepConfig, ids: dict[Run, str]
) -> list[dict[str, Any]]:
    """base_p_target and control_p_target of the current rows, from the current base and control runs (a
    context or control added later reaches rows scored earlier)."""
    current = _current(rows, cfg, ids)
    by_id = {v: k for k, v in ids.items()}
    for r in current:
        run = by_id[r["run"]]
        r["base_p_target"] = _reference(current, "base", None, r["context"])
        if run.dataset == "trait":
            r["control_p_target"] = _reference(current, "control", run, r["context"])
    return rows


def summarize(
    rows: list[dict[str, str]], cfg: SweepConfig | None = None, draws: dict[str, Any] | None = None
) -> str:
    """summary.md: how the data was drawn, then `sublim.experiment`'s analysis of the rows (per-configuration
    shifts over data draws, the pre-registered tests, the smallest detectable effect, the references)."""
    from sublim.experiment import analyze, render

    lines = ["# Sweep summary", ""]
    if draws:
        lines += [
            f"Data: {draws['draws']} disjoint draw(s) of {draws['rows_per_draw']} rows per side; "
            f"{draws['paired_rows']} prompts answered by both teachers, {draws['unused']} left unused; "
            f"unpaired rows dropped: {draws['unpaired']}. Draw k of the trait and control sides holds the "
            "same prompts (files under draws/)."
            + (
                f" Both teachers wrote the same completion for {draws['identical_completions']} of the "
                f"{draws['paired_rows']} paired prompts."
                if draws.get("identical_completions") is not None
                else ""
            ),
            "",
        ]
        lines += _cleaning(draws)
    lines.append(render(analyze(rows, primary=cfg.primary if cfg else None)))
    return "\n".join(lines) + "\n"


def _cleaning(draws: dict[str, Any]) -> list[str]:
    """The summary's lines on dropped degenerate pairs and on the rows' lengths per side."""
    lines = []
    if "degenerate" in draws:
        found = "; ".join(
            f"{side}: {kinds['echo']} prompt echoes, {kinds['counting']} counting runs"
            for side, kinds in draws["degenerate"].items()
        )
        lines.append(
            f"Degenerate completions among the paired prompts ({found}); "
            f"{draws['dropped_degenerate_pairs']} pairs dropped."
        )
    if "sides" in draws:
        sides = "; ".join(
            f"{side} {v['mean_numbers']:.2f} numbers, {v['mean_characters']:.1f} characters"
            for side, v in draws["sides"].items()
        )
        matched = "length-matched (each pair cut to its shorter count)" if draws.get("length_matched") else ""
        lines.append(f"Mean per training row{', ' + matched if matched else ''}: {sides}.")
    return [*lines, ""] if lines else []


def _card(run_dir: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((run_dir / RUN_CARD).read_text())
    return data


def _reference(rows: list[dict[str, Any]], dataset: str, run: Run | None, context: str) -> str:
    """P(target) of the `dataset` row in `context`: the base's, or the control run of `run`'s configuration,
    draw and seed."""
    for r in rows:
        if r["dataset"] != dataset or r["context"] != context:
            continue
        if run is None:
            return str(r["p_target"])
        mine = (run.kind, str(run.rank or ""), run.scale, str(run.draw if run.draw is not None else ""))
        theirs = (r["kind"], str(r["rank"]), str(r.get("scale") or ""), str(r.get("draw", "")))
        if mine == theirs and str(r["seed"]) == str(run.seed):
            return str(r["p_target"])
    return ""


def plot(rows: list[dict[str, str]], path: Path) -> None:
    """P(target) vs LoRA rank (log axis), one panel per context: a line per side and scale rule (mean over
    draws and seeds, band: mean of the per-run 95% intervals over questions); full fine-tuning, base,
    prompted base and positive control as horizontal reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if str(r.get("planted_rows") or "0") == "0"]  # the dose curve is the summary's
    contexts = list(dict.fromkeys(r["context"] for r in rows if r["dataset"] != "prompted"))
    fig, axes = plt.subplots(
        1, max(len(contexts), 1), figsize=(5.5 * max(len(contexts), 1), 4), squeeze=False
    )
    styles = ("o-", "s--", "^:", "d-.")
    for ax, context in zip(axes[0], contexts, strict=False):
        sel = [r for r in rows if r["context"] == context]
        for dataset, color in (("trait", "tab:blue"), ("control", "tab:gray")):
            lora = [r for r in sel if r["dataset"] == dataset and r["kind"] == "lora"]
            scales = list(dict.fromkeys(r.get("scale") or "rank" for r in lora))
            for scale, style in zip(scales, styles * len(scales), strict=False):
                by_rank = _by_rank([r for r in lora if (r.get("scale") or "rank") == scale])
                ranks = sorted(by_rank)
                label = f"{dataset} LoRA" + ("" if scale == "rank" else f" ({scale})")
                ax.plot(
                    ranks, [_mean(by_rank[k], "p_target") for k in ranks], style, color=color, label=label
                )
                ax.fill_between(
                    ranks,
                    [_mean(by_rank[k], "ci_low") for k in ranks],
                    [_mean(by_rank[k], "ci_high") for k in ranks],
                    color=color,
                    alpha=0.15,
                )
            full = [r for r in sel if r["dataset"] == dataset and r["kind"] == "full"]
            if full:
                ax.axhline(_mean(full, "p_target"), color=color, linestyle=":", label=f"{dataset} full FT")
        for dataset, color, label in (
            ("base", "black", "base model"),
            ("positive", "tab:green", "positive control"),
        ):
            ref = [r for r in sel if r["dataset"] == dataset]
            if ref:
                ax.axhline(float(ref[0]["p_target"]), color=color, linestyle="--", label=label)
        prompted = [r for r in rows if r["dataset"] == "prompted"]
        if prompted:
            ax.axhline(float(prompted[0]["p_target"]), color="tab:red", linestyle="--", label="prompted base")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("LoRA rank")
        ax.set_ylabel(f"P({sel[0]['target'] if sel else 'target'})")
        ax.set_title(f"eval context: {context}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _by_rank(rows: list[dict[str, str]]) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault(int(r["rank"]), []).append(r)
    return out


def _mean(rows: list[dict[str, str]], key: str) -> float:
    values = [float(r[key]) for r in rows if r[key] not in ("", "nan")]
    return sum(values) / len(values) if values else float("nan")


def run_with_progress(
    cfg: SweepConfig, *, resume: bool = False, overwrite: bool = False, executor: Executor | None = None
) -> list[dict[str, str]]:
    """`sweep` with a progress display: the current run, runs done, elapsed time and ETA."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    check(cfg, resume=resume, overwrite=overwrite)  # a refusal prints one line, not a progress bar too
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("sweep", total=None)

        def on_run(run: Run, i: int, total: int) -> None:
            progress.update(task, total=total, completed=i, description=f"training+scoring {run.name}")

        rows = sweep(cfg, on_run=on_run, resume=resume, overwrite=overwrite, executor=executor)
        progress.update(task, completed=progress.tasks[0].total or 0, description="done")
    return rows


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
    make_draws(cfg)  # enough paired rows for the draws asked for, and for the planted doses
