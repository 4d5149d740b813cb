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

from sublim.models import compute_dtype
from sublim.training.sweep.config import DRAW_SEED, PROMPTED, SweepConfig, check_inputs, lora_scale
from sublim.training.sweep.identity import check, run_ids, sweep_identity
from sublim.training.sweep.plan import Run, draw_file, make_draws, plan, planted_counts, train_seed
from sublim.training.sweep.report import plot, summarize
from sublim.training.sweep.results import COLUMNS, read_results, write_results
from sublim.training.sweep.run import Job, run_one, run_with_progress, score_columns, sweep

__all__ = [
    "COLUMNS",
    "DRAW_SEED",
    "PROMPTED",
    "Job",
    "Run",
    "SweepConfig",
    "check",
    "check_inputs",
    "compute_dtype",
    "draw_file",
    "lora_scale",
    "make_draws",
    "plan",
    "planted_counts",
    "plot",
    "read_results",
    "run_ids",
    "run_one",
    "run_with_progress",
    "score_columns",
    "summarize",
    "sweep",
    "sweep_identity",
    "train_seed",
    "write_results",
]
