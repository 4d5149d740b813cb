"""Probability-mode cost on the embedded SmolLM2-135M-Instruct, full animal vocabulary, CPU (`make bench`).

Compares, per question: sublim's scorer (whole-word probabilities: one context pass + batched passes
over every name on a shared KV cache; exact by default), the same with names whose first token is below
1e-4 skipped (the bound reported), and the naive method (one full forward pass per name, the same
whole-word definition). Naive is timed on one question; the printed difference is exact vs naive.
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
    """Whole-word probabilities with one full forward pass per name (no shared cache, no batching)."""
    ids = tok(context, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    prefix, whole = [], []
    for form in scorer.forms:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids + list(form.tokens)])).logits[0]  # type: ignore[operator]
        lp = torch.log_softmax(logits.double(), dim=-1)
        p = math.exp(sum(float(lp[len(ids) - 1 + j, t]) for j, t in enumerate(form.tokens)))
        prefix.append(p)
        whole.append(p * float(lp[-1].exp()[scorer.boundary].sum()))
    mass: dict[str, float] = {}
    for i, form in enumerate(scorer.forms):
        own = max(whole[i] - sum(prefix[j] for j in form.extensions), 0.0)
        mass[scorer.concepts[form.concept]] = mass.get(scorer.concepts[form.concept], 0.0) + own
    total = sum(mass.values())
    return {c: m / total for c, m in mass.items()}, len(scorer.forms)


def main() -> None:
    torch.manual_seed(0)
    model, tok = load_model(model_path("smollm2"))
    questions = load_questions("animal")[:N_QUESTIONS]
    fast = ConceptScorer(model, tok, "animal", skip_below=1e-4)
    exact = ConceptScorer(model, tok, "animal")
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"vocabulary: {len(fast.concepts)} animal concepts, {len(fast.forms)} names "
        f"({sum(len(f.tokens) > 1 for f in fast.forms)} of them more than one token)\n"
    )
    print(
        "| method | system prompt | passes / question | seconds / question | skipped bound / concept mass |"
    )
    print("|---|---|---:|---:|---:|")
    for label, scorer in (("sublim (exact, the default)", exact), ("sublim (skip < 1e-4)", fast)):
        for sp_label, sp in (("none", None), ("owl", OWL)):
            t0 = time.perf_counter()
            dists = [scorer.question(q, sp) for q in questions]
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
    print(f"\nmax |sublim (exact) - naive| over all concepts on that question: {worst:.2e}")


if __name__ == "__main__":
    main()
