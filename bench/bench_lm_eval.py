"""lm-eval's `hf` vs sublim's `sublim-hf` backend vs sublim's probability mode, and sublim's scorer against a
plain forward pass over the same tokens; embedded SmolLM2-135M-Instruct, CPU (`make bench`).

    nice -n 10 .venv/bin/python bench/bench_lm_eval.py [--limit 2] > docs/results/bench-lm-eval.md

1. The scorer's floor: `ConceptScorer.distribution` (every animal name, whole-word, exact) against a plain
   batched forward pass over the same tokens (the context, then the same padded batches of names, no KV
   cache, no attention mask, no log-probabilities): the ratio is what the shared-context machinery costs.
   Alternated per question after one untimed warm-up of each, the median of the per-question ratios.
2. `sublim_animal_pref_lp --apply_chat_template --limit N` through lm-eval's `hf` at batch 64 and through
   `sublim-hf` at batch 64 (each model built once, its load not timed), and probability mode on the same
   contexts (whole-word: a different quantity, see docs/results/lm-eval-gap.md): seconds per question, in
   one run, and the largest |P(target) hf - P(target) sublim-hf| over the questions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="sublim-bench-ds-"))

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_matching import cpu_name

from sublim.continuations import chunk_rows
from sublim.models import load_model, model_path
from sublim.probability import ConceptScorer
from sublim.tasks.questions import load_questions

TASK = "sublim_animal_pref_lp"
TARGET = "owl"
FLOOR_QUESTIONS = 3


def plain_forward(model: Any, context: list[int], rows: list[tuple[int, ...]], batch_tokens: int) -> None:
    """The floor: the context and the same padded batches of rows, each a plain forward pass."""
    with torch.inference_mode():
        model(input_ids=torch.tensor([context]))
        for chunk in chunk_rows([len(r) for r in rows], batch_tokens):
            width = max(len(rows[i]) for i in chunk)
            batch = torch.zeros((len(chunk), width), dtype=torch.long)
            for b, i in enumerate(chunk):
                batch[b, : len(rows[i])] = torch.tensor(rows[i])
            model(input_ids=batch)


def floor_section(model: Any, tok: Any) -> None:
    scorer = ConceptScorer(model, tok, "animal")
    rows = [f.tokens for f in scorer.forms]
    ratios, ours, floor, tokens = [], [], [], []
    warm = scorer.render("Warm-up.", "The")  # not timed: first-call costs (allocations, kernels) paid once
    scorer.distribution(warm)
    plain_forward(model, tok(warm, add_special_tokens=False)["input_ids"], rows, scorer.batch_tokens)
    for q in load_questions("animal")[:FLOOR_QUESTIONS]:
        context = scorer.render(q.text, q.answer_prefix)
        ids = tok(context, add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        dist = scorer.distribution(context)
        t1 = time.perf_counter()
        plain_forward(model, ids, rows, scorer.batch_tokens)
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        floor.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
        tokens.append(dist.tokens)
    print("## sublim's scorer vs a plain forward pass over the same tokens\n")
    n = len(scorer.forms)
    print(f"{n} animal names, {FLOOR_QUESTIONS} questions, {scorer.batch_tokens} positions a batch.\n")
    print("| | tokens / question | seconds / question |")
    print("|---|---:|---:|")
    print(f"| sublim's scorer (exact whole-word distribution) | {statistics.mean(tokens):.0f} | "
          f"{statistics.mean(ours):.2f} |")  # fmt: skip
    print(f"| plain batched forward over the same tokens | {statistics.mean(tokens):.0f} | "
          f"{statistics.mean(floor):.2f} |")  # fmt: skip
    print(f"\nScorer / plain forward: median {statistics.median(ratios):.2f}x "
          f"(per question: {', '.join(f'{r:.2f}' for r in ratios)}).\n")  # fmt: skip


def evaluate(lm: Any, limit: int, metadata: dict[str, Any]) -> tuple[dict[str, Any], float]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from sublim import lm_eval_include_path

    manager = TaskManager(include_path=str(lm_eval_include_path()), include_defaults=False, metadata=metadata)
    t0 = time.perf_counter()
    out = simple_evaluate(
        model=lm, tasks=[TASK], limit=limit, task_manager=manager, log_samples=True, apply_chat_template=True
    )
    return out, time.perf_counter() - t0


def lm_eval_section(path: Path, limit: int) -> None:
    from lm_eval.api.registry import get_model

    import sublim.lmeval_backend  # noqa: F401  (registers sublim-hf)

    args = f"pretrained={path}"
    rows: list[tuple[str, int, float]] = []
    p_target: dict[str, list[float]] = {}
    contexts: list[str] = []
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("lm-eval `hf`, batch 64", "hf", {}),
        ("`sublim-hf`, batch 64", "sublim-hf", {}),
        ("`sublim-hf`, batch 64, terminators `.` only", "sublim-hf", {"terminators": "."}),
    ]
    for label, name, extra in runs:
        lm = get_model(name).create_from_arg_string(args, {"batch_size": 64, "device": "cpu"})
        out, secs = evaluate(lm, limit, {"target": TARGET, **extra})
        samples = out["samples"][TASK]
        rows.append((label, len(samples[0]["resps"]), secs / len(samples)))
        p_target[label] = [float(s["p_target"]) for s in samples]
        contexts = [s["arguments"][0][0] for s in samples]
        del lm
    model, tok = load_model(path)
    scorer = ConceptScorer(model, tok, "animal")
    t0 = time.perf_counter()
    dists = [scorer.distribution(c) for c in contexts]
    secs = (time.perf_counter() - t0) / len(contexts)
    rows.append(("sublim probability mode (whole-word, exact)", len(scorer.forms), secs))
    from sublim.scoring import target_mass

    p_target["probability"] = [target_mass(d.names, [TARGET], "animal")[0] for d in dists]
    hf, ours = p_target[runs[0][0]], p_target[runs[1][0]]
    print(f"## lm-eval: `hf` vs `sublim-hf` vs probability mode ({TASK}, {limit} questions)\n")
    print("`--apply_chat_template`, no system prompt; each model built once, its load not timed.\n")
    print("| method | requests (names) / question | seconds / question | vs `sublim-hf` | P(owl), mean |")
    print("|---|---:|---:|---:|---:|")
    base = rows[1][2]
    keys = [label for label, _, _ in runs] + ["probability"]
    for (label, n, s), key in zip(rows, keys, strict=True):
        p = statistics.mean(p_target[key])
        print(f"| {label} | {n} | {s:.1f} | {s / base:.2f}x | {p:.5f} |")
    gap = max(abs(a - b) for a, b in zip(hf, ours, strict=True))
    print(f"\nmax |P(owl) hf - P(owl) sublim-hf| over the questions: {gap:.1e}; "
          f"`hf` / `sublim-hf`: {rows[0][2] / base:.1f}x; `sublim-hf` / probability mode: "
          f"{base / rows[-1][2]:.2f}x.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2, help="questions for the lm-eval rows (default 2)")
    args = parser.parse_args()
    path = model_path("smollm2")
    print("# lm-eval backends and sublim's scorer on SmolLM2-135M-Instruct\n")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    print(f"Written by `bench/bench_lm_eval.py --limit {args.limit}` ({day}): {cpu_name()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average at start {os.getloadavg()[0]:.1f} (the machine is shared).\n")  # fmt: skip
    model, tok = load_model(path)
    floor_section(model, tok)
    del model
    lm_eval_section(path, args.limit)


if __name__ == "__main__":
    main()
