"""Running a sweep: the main loop (`sweep`), one run's work (`Job`, `run_one`: train if needed, load, score
the missing contexts) and the progress display."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sublim.errors import raise_if_stopped
from sublim.experiment.rows import StudentResult
from sublim.io import (
    atomic_path,
    claim_output,
    write_atomic,
)
from sublim.training.config import TrainConfig
from sublim.training.executors import Executor, LocalExecutor
from sublim.training.student import RUN_CARD, train
from sublim.training.sweep.config import PROMPTED, SweepConfig, lora_scale
from sublim.training.sweep.identity import _earlier_sweep, check, run_ids
from sublim.training.sweep.plan import Run, _key, _rows_text, draw_file, make_draws, plan, train_seed
from sublim.training.sweep.report import plot, summarize
from sublim.training.sweep.results import (
    _contexts,
    _current,
    _fill_references,
    _missing,
    _unique,
    read_results,
    write_results,
)


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
    if cfg.primary:  # `sublim analyze <out>` tests the same primary configuration as summary.md
        from sublim.experiment.cli import PRIMARY_FILE

        write_atomic(out / PRIMARY_FILE, json.dumps({"primary": cfg.primary}) + "\n")
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
        card = _card(run_dir) if (run_dir / RUN_CARD).exists() else train(train_cfg)
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
        row = StudentResult(
            run=job.run_id,
            dataset=run.dataset,
            kind=run.kind,
            rank=run.rank,
            scale=run.scale,
            draw=run.draw,
            seed=str(run.seed) if run.seed is not None else "",
            context=context,
            target=target,
            **score_columns(scorer, questions, target, prompt, absolute=cfg.score == "target"),
            train_loss=round(card["train_loss"], 4) if card else None,
            steps=card.get("steps"),
            rows=card.get("rows"),
            dose=_rounded(run.planted / card["rows"], ".6g")
            if run.dataset == "trait" and card.get("rows")
            else None,
            planted_rows=run.planted if run.dataset == "trait" else None,
            scored=cfg.score,
        )
        rows.append(row.to_csv_row())
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
    target's concepts), not its share of the concept mass, and concept_mass is left empty. Typed, as
    `sublim.experiment.StudentResult` holds them."""
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
        "p_target": _rounded(ci.mean, spec),
        "log_p_target": _rounded(sum(logs) / len(logs), ".6f"),
        "log_p_questions": tuple(_rounded(x, ".6f") for x in logs),
        "stderr": _rounded(se, spec),
        "ci_low": _rounded(ci.ci_low, spec),
        "ci_high": _rounded(ci.ci_high, spec),
        "n_questions": ci.n,
        "concept_mass": None
        if absolute
        else _rounded(sum(d.concept_mass for d in dists) / len(dists), ".6f"),
    }


def _rounded(value: float, spec: str) -> float | None:
    """`value` to the digits results.csv keeps (`spec`); None for NaN (a missing value)."""
    return None if math.isnan(value) else float(f"{value:{spec}}")


def _card(run_dir: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((run_dir / RUN_CARD).read_text())
    return data


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
