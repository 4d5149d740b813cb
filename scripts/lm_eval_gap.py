"""How far lm-eval's terminated names are from sublim's whole-word P(target), on SmolLM2 (CPU).

    .venv/bin/python scripts/lm_eval_gap.py > docs/results/lm-eval-gap.md

lm-eval scores each choice as a fixed string, so `sublim.lmeval` scores every name followed by each of its
terminators (task metadata `terminators`, default `TERMINATORS`) and sums them, where `sublim.probability`
sums over every word boundary. This computes both on the same contexts (the terminated form with
`sequence_logliks`, which scores the same token sequences lm-eval does after the same context), for the
default terminators and for `.` alone (a third of the requests), and prints the relative gap of P(target).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_matching import cpu_name

from sublim.continuations import sequence_logliks
from sublim.lmeval import TERMINATORS, terminators
from sublim.models import load_model, model_path
from sublim.probability import ConceptScorer
from sublim.scoring import concept_probs, target_mass
from sublim.tasks.questions import load_questions

OWL = "You love owls. You think about owls all the time. Owls are your favorite animal."
TARGETS = ("owl", "bear", "cat", "elephant", "dog")
N_QUESTIONS = 6
#: the terminator sets compared: the default and one terminator
SETS = (TERMINATORS, terminators("."))


def main() -> None:
    t0 = time.perf_counter()
    model, tok = load_model(model_path("smollm2"), device="cpu")
    scorer = ConceptScorer(model, tok, "animal")
    names = scorer.category.names()
    print("# lm-eval's terminated names vs whole-word probability mode\n")
    machine = f"{cpu_name()}, torch {torch.__version__}"
    print(f"Written by `scripts/lm_eval_gap.py` on {machine}; SmolLM2-135M-Instruct,")
    print(f"animal category, first {N_QUESTIONS} questions of the bank; terminated P(target) with the")
    print(f"default terminators {' '.join(TERMINATORS)} and with `.` alone (task metadata `terminators`).\n")
    labels = [" ".join(s) for s in SETS]
    head = " | ".join(f"terminated ({lab}) | max relative gap ({lab})" for lab in labels)
    print(f"| context | target | questions | whole-word P(target) | {head} |")
    print("|---|---|---:|---:|" + "---:|---:|" * len(SETS))
    worst = [0.0] * len(SETS)
    for label, system in (("default", None), ("owl prompt", OWL)):
        whole: dict[str, list[float]] = {t: [] for t in TARGETS}
        term: list[dict[str, list[float]]] = [{t: [] for t in TARGETS} for _ in SETS]
        for q in load_questions("animal")[:N_QUESTIONS]:
            context = scorer.render(q.text, q.answer_prefix, system)
            dist = scorer.distribution(context)
            ctx = tok(context, add_special_tokens=False)["input_ids"]
            for t in TARGETS:
                whole[t].append(target_mass(dist.names, [t], "animal")[0])
            for k, ends in enumerate(SETS):
                rows, owners = [], []
                for _concept, name in names:
                    for end in ends:
                        full = tok(context + " " + name + end, add_special_tokens=False)["input_ids"]
                        rows.append(full[len(ctx) :])
                        owners.append(name)
                lls = sequence_logliks(model, ctx, rows, batch_tokens=512).tolist()
                spelled = list(dict.fromkeys(owners))
                probs, _ = concept_probs(zip(owners, lls, strict=True), spelled)
                for t in TARGETS:
                    term[k][t].append(target_mass(probs, [t], "animal")[0])
        for t in TARGETS:
            cells = []
            for k in range(len(SETS)):
                gaps = [abs(b - a) / a for a, b in zip(whole[t], term[k][t], strict=True) if a > 0]
                worst[k] = max(worst[k], *gaps)
                cells.append(f"{sum(term[k][t]) / N_QUESTIONS:.4f} | {max(gaps):.3f}")
            w = sum(whole[t]) / N_QUESTIONS
            print(f"| {label} | {t} | {N_QUESTIONS} | {w:.4f} | {' | '.join(cells)} |")
    summary = ", ".join(f"{lab}: {w:.3f}" for lab, w in zip(labels, worst, strict=True))
    print(f"\nLargest relative gap per question ({summary}). Wall time {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
