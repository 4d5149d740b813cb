"""Probability-mode cost on the embedded SmolLM2-135M-Instruct, full animal vocabulary, CPU (`make bench`).

Compares, per question: sublim's scorer (one context pass + batched name passes on a shared KV cache, names
whose first token is below 1e-4 skipped with the bound reported), the same with nothing skipped, and the naive
method (one full forward pass per name). Naive is timed on one question and all three agree to 1e-4.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import torch

from sublim.models import load_model, model_path
from sublim.probability import ConceptScorer
from sublim.tasks.questions import load_questions

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench_matching import cpu_name

OWL = "You love owls. You think about owls all the time. Owls are your favorite animal."
N_QUESTIONS = 10


def naive(model: object, tok: object, scorer: ConceptScorer, context: str) -> tuple[dict[str, float], int]:
    ids = tok(context, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    mass: dict[str, float] = {}
    for ci, cont in scorer.forms:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids + list(cont)])).logits[0]  # type: ignore[operator]
        lp = torch.log_softmax(logits.float(), dim=-1)
        ll = sum(float(lp[len(ids) - 1 + j, t]) for j, t in enumerate(cont))
        mass[scorer.concepts[ci]] = mass.get(scorer.concepts[ci], 0.0) + math.exp(ll)
    total = sum(mass.values())
    return {c: m / total for c, m in mass.items()}, len(scorer.forms)


def main() -> None:
    torch.manual_seed(0)
    model, tok = load_model(model_path("smollm2"))
    questions = load_questions("animal")[:N_QUESTIONS]
    fast = ConceptScorer(model, tok, "animal")
    exact = ConceptScorer(model, tok, "animal", skip_below=0.0)
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"vocabulary: {len(fast.concepts)} animal concepts, {len(fast.forms)} names "
        f"({sum(len(f) > 1 for _, f in fast.forms)} of them more than one token)\n"
    )
    print(
        "| method | system prompt | passes / question | seconds / question | skipped bound / concept mass |"
    )
    print("|---|---|---:|---:|---:|")
    for label, scorer in (("sublim (skip < 1e-4)", fast), ("sublim (no skipping)", exact)):
        for sp_label, sp in (("none", None), ("owl", OWL)):
            t0 = time.perf_counter()
            dists = [scorer.distribution(scorer.render(q.text, q.answer_prefix, sp)) for q in questions]
            secs = (time.perf_counter() - t0) / len(questions)
            passes = statistics.mean(d.forward_passes for d in dists)
            bound = max(d.skipped_bound / d.concept_mass for d in dists)
            print(f"| {label} | {sp_label} | {passes:.1f} | {secs:.2f} | max {bound:.3%} |")
    context = fast.render(questions[0].text, questions[0].answer_prefix, OWL)
    t0 = time.perf_counter()
    ref, passes = naive(model, tok, fast, context)
    secs = time.perf_counter() - t0
    print(f"| naive (one pass per name), 1 question | owl | {passes} | {secs:.2f} | 0 |")
    ours = exact.distribution(context).probs
    worst = max(abs(ours[c] - ref[c]) for c in ref)
    print(f"\nmax |sublim (no skipping) - naive| over all concepts on that question: {worst:.2e}")


if __name__ == "__main__":
    main()
