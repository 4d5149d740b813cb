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
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.io import (
    atomic_path,
    check_output,
    claim_output,
    file_sha256,
    identity_hash,
    package_versions,
    write_atomic,
)
from sublim.training.student import RUN_CARD, TrainConfig, data_file, train

COLUMNS = [
    "run", "dataset", "kind", "rank", "seed", "context", "target", "p_target", "stderr", "ci_low", "ci_high",
    "n_questions", "concept_mass", "base_p_target", "control_p_target", "train_loss", "rows",
]  # fmt: skip


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


@dataclass(frozen=True)
class Run:
    name: str
    dataset: str  # "trait" | "control" | "base"
    kind: str  # "lora" | "full" | "base"
    rank: int | None
    seed: int | None


def plan(cfg: SweepConfig) -> list[Run]:
    """Base first, then control runs, then trait runs, so every trait row can carry its references."""
    runs = [Run("base", "base", "base", None, None)]
    for dataset in (["control"] if cfg.control else []) + ["trait"]:
        for seed in cfg.seeds:
            runs += [Run(f"{dataset}-r{r}-s{seed}", dataset, "lora", r, seed) for r in cfg.ranks]
            if cfg.full:
                runs.append(Run(f"{dataset}-full-s{seed}", dataset, "full", None, seed))
    return runs


def read_results(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
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
) -> list[dict[str, str]]:
    """Run (or resume) the sweep; returns the result rows of the current settings. `max_runs` stops after that
    many new runs; `resume` continues a sweep dir made with other inputs (new run ids), `overwrite` replaces
    it."""
    shared = check(cfg, resume=resume, overwrite=overwrite)
    inputs = [cfg.data, cfg.control, cfg.base if Path(cfg.base).expanduser().exists() else None]
    adopt = resume and _earlier_sweep(cfg)
    with claim_output(
        cfg.out, "sweep", shared, inputs, overwrite=overwrite, accept_other=resume, adopt=adopt
    ) as claim:
        final = _sweep(cfg, shared, max_runs=max_runs, on_run=on_run)
        if max_runs is None:
            claim.done()
    return final


def _sweep(
    cfg: SweepConfig,
    shared: dict[str, Any],
    *,
    max_runs: int | None,
    on_run: Callable[[Run, int, int], None] | None,
) -> list[dict[str, str]]:
    from sublim.concepts import get_category
    from sublim.contexts import system_prompt_for
    from sublim.models import load_model, resolve_base
    from sublim.probability import ConceptScorer, estimate
    from sublim.tasks.questions import load_questions

    out = Path(cfg.out)
    results_path = out / "results.csv"
    rows: list[dict[str, Any]] = _unique(read_results(results_path))
    target = get_category(cfg.category).resolve(cfg.target)
    questions = load_questions(cfg.category)[: cfg.questions]
    base = str(resolve_base(cfg.base))
    ids = run_ids(cfg, shared)
    todo = [(r, m) for r in dict.fromkeys(plan(cfg)) if (m := _missing(rows, ids[r], cfg.contexts))]
    for i, (run, missing) in enumerate(todo[:max_runs] if max_runs is not None else todo):
        if on_run:
            on_run(run, i, len(todo))
        card: dict[str, Any] = {}
        if run.kind == "base":
            model, tok = load_model(base)
        else:
            run_dir = out / "runs" / ids[run]
            data = cfg.control if run.dataset == "control" else cfg.data
            train_cfg = TrainConfig(
                data=str(data),
                base=base,
                out=str(run_dir),
                rank=run.rank or 8,
                full=run.kind == "full",
                seed=run.seed or 0,
                **cfg.train,
            )
            card = train(train_cfg) if not (run_dir / RUN_CARD).exists() else _card(run_dir)
            model, tok = load_model(run_dir) if run.kind == "full" else load_model(base, adapter=run_dir)
        scorer = ConceptScorer(model, tok, cfg.category)
        for context in missing:
            prompt = system_prompt_for(context)
            dists = [scorer.question(q, prompt) for q in questions]
            est = estimate(dists, [target], cfg.category)
            rows.append(
                {
                    "run": ids[run],
                    "dataset": run.dataset,
                    "kind": run.kind,
                    "rank": run.rank if run.rank is not None else "",
                    "seed": run.seed if run.seed is not None else "",
                    "context": context,
                    "target": target,
                    "p_target": f"{est.mean:.6f}",
                    "stderr": f"{est.stderr:.6f}",
                    "ci_low": f"{est.ci_low:.6f}",
                    "ci_high": f"{est.ci_high:.6f}",
                    "n_questions": est.n_questions,
                    # P(naming any concept): a student that stops naming animals shows here, not in p_target
                    "concept_mass": f"{sum(d.concept_mass for d in dists) / len(dists):.6f}",
                    "base_p_target": _reference(rows, "base", None, None, context),
                    "control_p_target": _reference(rows, "control", run, run.seed, context)
                    if run.dataset == "trait"
                    else "",
                    "train_loss": f"{card['train_loss']:.4f}" if card else "",
                    "rows": card.get("rows", ""),
                }
            )
        write_results(results_path, _fill_references(rows, cfg, ids))
        del model, scorer
    final = _current(read_results(results_path), cfg, ids)
    with atomic_path(out / "sweep.png") as png:
        plot(final, png)
    write_atomic(out / "summary.md", summarize(final))
    return final


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
    adopt = resume and _earlier_sweep(cfg)
    check_output(cfg.out, "sweep", shared, inputs, overwrite=overwrite, accept_other=resume, adopt=adopt)
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


_PER_RUN = ("data", "out", "rank", "seed", "full", "merge", "target_modules")
_SCORING = ("base", "target", "category", "questions", "sublim")


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
        "sublim": package_versions("sublim")["sublim"],
        **{k: v for k, v in settings.items() if k not in _PER_RUN},
        # None: derived per run (alpha = rank; lr by LoRA or full), which the run's kind and rank pin down
        "alpha": cfg.train.get("alpha"),
        "lr": cfg.train.get("lr"),
    }


def run_ids(cfg: SweepConfig, shared: dict[str, Any]) -> dict[Run, str]:
    """Each run's id: its name and a hash of everything its result depends on."""
    common = {k: v for k, v in shared.items() if k not in ("data_sha256", "control_sha256")}
    out = {}
    for run in plan(cfg):
        ident: dict[str, Any] = {**common, "kind": run.kind}
        if run.kind != "base":
            data = shared["control_sha256"] if run.dataset == "control" else shared["data_sha256"]
            ident.update(data_sha256=data, rank=run.rank, seed=run.seed)
        else:  # the base model is scored, not trained
            ident = {k: v for k, v in ident.items() if k in _SCORING or k == "kind"}
        out[run] = f"{run.name}-{identity_hash(ident, 8)}"
    return out


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
    return [r for r in rows if r["run"] in wanted and r["context"] in cfg.contexts]


def _fill_references(
    rows: list[dict[str, Any]], cfg: SweepConfig, ids: dict[Run, str]
) -> list[dict[str, Any]]:
    """base_p_target and control_p_target of the current rows, from the current base and control runs (a
    context or control added later reaches rows scored earlier)."""
    current = _current(rows, cfg, ids)
    by_id = {v: k for k, v in ids.items()}
    for r in current:
        run = by_id[r["run"]]
        r["base_p_target"] = _reference(current, "base", None, None, r["context"])
        if run.dataset == "trait":
            r["control_p_target"] = _reference(current, "control", run, run.seed, r["context"])
    return rows


def summarize(rows: list[dict[str, str]]) -> str:
    """A markdown table per eval context: for each student configuration (LoRA rank or full), P(target) of the
    trait and control students (mean and SD over seeds), their difference, and a paired t-test of
    trait - control across seeds (seed s of the trait run pairs with seed s of the control run: same training
    seed, other teacher). Seeds are the units here, so the test asks whether the trait teacher's data moves
    P(target) beyond what retraining with another seed does."""
    from statistics import mean, stdev

    from scipy import stats

    from sublim.stats import mean_interval

    lines: list[str] = []
    for context in dict.fromkeys(r["context"] for r in rows):
        sel = [r for r in rows if r["context"] == context]
        base = next((float(r["p_target"]) for r in sel if r["kind"] == "base"), math.nan)
        target = sel[0]["target"]
        lines += [
            f"### eval context: {context}",
            "",
            f"Base model P({target}) = {base:.5f}.",
            "",
            "| student | seeds | trait mean (SD) | control mean (SD) | trait - control | 95% CI | p |",
            "|---|---|---|---|---|---|---|",
        ]
        configs = dict.fromkeys((r["kind"], r["rank"]) for r in sel if r["kind"] != "base")
        for kind, rank in configs:
            by = {
                d: {
                    r["seed"]: float(r["p_target"])
                    for r in sel
                    if (r["kind"], r["rank"], r["dataset"]) == (kind, rank, d)
                }
                for d in ("trait", "control")
            }
            seeds = sorted(set(by["trait"]) & set(by["control"]), key=int)
            label = f"LoRA r{rank}" if kind == "lora" else "full FT"

            def cell(values: list[float]) -> str:
                return (
                    f"{mean(values):.5f} ({stdev(values):.5f})"
                    if len(values) > 1
                    else (f"{values[0]:.5f}" if values else "-")
                )

            trait, control = list(by["trait"].values()), list(by["control"].values())
            if not seeds:
                lines.append(f"| {label} | {len(trait)} | {cell(trait)} | {cell(control)} | - | - | - |")
                continue
            diffs = [by["trait"][s] - by["control"][s] for s in seeds]
            d = mean_interval(diffs)
            if len(diffs) > 1 and d.ci_low < d.ci_high:
                ci = f"{d.ci_low:+.5f} to {d.ci_high:+.5f}"
                p = f"{stats.ttest_1samp(diffs, 0.0).pvalue:.3f}"
            else:
                ci, p = "-", "-"
            lines.append(
                f"| {label} | {len(seeds)} | {cell(trait)} | {cell(control)} | {d.mean:+.5f} | {ci} | {p} |"
            )
        lines.append("")
    return "\n".join(lines)


def _card(run_dir: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((run_dir / RUN_CARD).read_text())
    return data


def _reference(
    rows: list[dict[str, Any]], dataset: str, run: Run | None, seed: int | None, context: str
) -> str:
    for r in rows:
        if r["dataset"] != dataset or r["context"] != context:
            continue
        if run is None or (str(r["kind"]) == run.kind and str(r["rank"]) == str(run.rank or "")
                           and str(r["seed"]) == str(seed)):  # fmt: skip
            return str(r["p_target"])
    return ""


def plot(rows: list[dict[str, str]], path: Path) -> None:
    """P(target) vs LoRA rank (log axis), one line per context with its CI band (mean over seeds of the
    per-run 95% intervals); full fine-tuning, control and base as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contexts = list(dict.fromkeys(r["context"] for r in rows))
    fig, axes = plt.subplots(
        1, max(len(contexts), 1), figsize=(5.5 * max(len(contexts), 1), 4), squeeze=False
    )
    for ax, context in zip(axes[0], contexts, strict=False):
        sel = [r for r in rows if r["context"] == context]
        for dataset, color in (("trait", "tab:blue"), ("control", "tab:gray")):
            by_rank = _by_rank([r for r in sel if r["dataset"] == dataset and r["kind"] == "lora"])
            if by_rank:
                ranks = sorted(by_rank)
                mean = [_mean(by_rank[k], "p_target") for k in ranks]
                ax.plot(ranks, mean, "o-", color=color, label=f"{dataset} LoRA")
                ax.fill_between(
                    ranks,
                    [_mean(by_rank[k], "ci_low") for k in ranks],
                    [_mean(by_rank[k], "ci_high") for k in ranks],
                    color=color,
                    alpha=0.2,
                )
            full = [r for r in sel if r["dataset"] == dataset and r["kind"] == "full"]
            if full:
                ax.axhline(_mean(full, "p_target"), color=color, linestyle=":", label=f"{dataset} full FT")
        base = [r for r in sel if r["kind"] == "base"]
        if base:
            ax.axhline(float(base[0]["p_target"]), color="black", linestyle="--", label="base model")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("LoRA rank")
        ax.set_ylabel(f"P({sel[0]['target'] if sel else 'target'})")
        ax.set_title(f"eval context: {context}")
        ax.legend(fontsize=8)
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
    cfg: SweepConfig, *, resume: bool = False, overwrite: bool = False
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

        rows = sweep(cfg, on_run=on_run, resume=resume, overwrite=overwrite)
        progress.update(task, completed=progress.tasks[0].total or 0, description="done")
    return rows


def validate(cfg: SweepConfig) -> None:
    """Every setting and input checked before any model loads (the data, the base, the target, training)."""
    from sublim.concepts import get_category
    from sublim.models import check_checkpoint
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
    if problems:
        raise SublimError("; ".join(problems))
