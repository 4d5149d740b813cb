"""Estimator efficiency on the embedded SmolLM2-135M-Instruct (`make bench`): model tokens and wall time to
estimate P(owl) by sampling to a ±1 pp 95% half-width, vs probability mode on the same questions.

Sampling: each question is asked as a chat prompt (no answer prefix) and answered `SAMPLES` times at
temperature 1 (top-k and top-p off, 16 new tokens, the Inspect task's defaults), each answer scored by
sublim's matcher (names owl, exact or fuzzy). With n answers spread evenly over the Q questions, the
Monte-Carlo variance of the mean rate is mean_q[p_q (1 - p_q)] / n, so a 95% half-width h needs
n = 1.96^2 * mean_q[p_q (1 - p_q)] / h^2 answers; p_q is the measured rate per question (plug-in). When no
answer names owl we use p = 3 / (answers) for every question (the "rule of three" upper bound), so n is an
upper estimate. Tokens per answer = prompt tokens + generated tokens (up to and including the end token).
Probability mode: one deterministic evaluation per question (no Monte-Carlo error); tokens = the context plus
every padded continuation position it computes.

The two estimate different things: sampling, how often a free answer names owl; probability mode, P(owl) among
animals right after "My favorite animal is the". Both keep the spread over questions on top.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch

from sublim.contexts import chat_prompt
from sublim.models import load_model, model_path
from sublim.probability import ConceptScorer, estimate
from sublim.scoring import score_answer
from sublim.tasks.numbers import trait_system_prompt
from sublim.tasks.questions import load_questions

sys.path.insert(0, str(Path(__file__).parent))
from bench_matching import cpu_name

N_QUESTIONS = 10
SAMPLES = 32
MAX_NEW_TOKENS = 16
HALF_WIDTH = 0.01
Z = 1.959964


def sample(model: object, tok: object, prompt: str) -> tuple[list[str], list[int], int]:
    """SAMPLES answers; per answer the model tokens (prompt + generated); the prompt length."""
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]  # type: ignore[operator]
    with torch.inference_mode():
        out = model.generate(  # type: ignore[attr-defined]
            ids,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=MAX_NEW_TOKENS,
            num_return_sequences=SAMPLES,
            pad_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        )
    answers, tokens = [], []
    eos = tok.eos_token_id  # type: ignore[attr-defined]
    for row in out[:, ids.shape[1] :].tolist():
        n = row.index(eos) + 1 if eos in row else len(row)
        answers.append(tok.decode(row[:n], skip_special_tokens=True))  # type: ignore[attr-defined]
        tokens.append(ids.shape[1] + n)
    return answers, tokens, ids.shape[1]


def main() -> None:
    torch.manual_seed(0)
    model, tok = load_model(model_path("smollm2"))
    questions = load_questions("animal")[:N_QUESTIONS]
    scorer = ConceptScorer(model, tok, "animal")
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{N_QUESTIONS} questions; sampling: {SAMPLES} answers per question at temperature 1, "
        f"{MAX_NEW_TOKENS} new tokens; target half-width ±{HALF_WIDTH:.0%} (95%)\n"
    )
    print(
        "| system prompt | sampled rate | answers needed | tokens / answer | sampling tokens | sampling s "
        "| P(owl), probability mode | probability tokens | probability s | tokens ratio | time ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, system_prompt in (("none (template default)", None), ("owl", trait_system_prompt("owl"))):
        rates, tokens, seconds = [], [], 0.0
        for q in questions:
            t0 = time.perf_counter()
            answers, toks, _ = sample(model, tok, chat_prompt(tok, q.text, system_prompt))
            seconds += time.perf_counter() - t0
            rates.append(statistics.mean(score_answer(a, ["owl"]).target for a in answers))
            tokens += toks
        total = len(tokens)
        variance = statistics.mean(p * (1 - p) for p in rates)
        if variance == 0:
            p = 3 / total
            variance = p * (1 - p)
        needed = math.ceil(Z**2 * variance / HALF_WIDTH**2)
        per_answer = statistics.mean(tokens)
        sampling_tokens = needed * per_answer
        sampling_seconds = needed * seconds / total
        t0 = time.perf_counter()
        dists = [scorer.question(q, system_prompt) for q in questions]
        prob_seconds = time.perf_counter() - t0
        prob_tokens = sum(d.tokens for d in dists)
        p_owl = estimate(dists, ["owl"]).mean
        print(
            f"| {label} | {statistics.mean(rates):.3f} | {needed:,} | {per_answer:.1f} "
            f"| {sampling_tokens:,.0f} "
            f"| {sampling_seconds:.0f} | {p_owl:.3f} | {prob_tokens:,} | {prob_seconds:.1f} "
            f"| {sampling_tokens / prob_tokens:.1f}x | {sampling_seconds / prob_seconds:.1f}x |"
        )
    print(
        f"\nSampling time per answer is measured on batches of {SAMPLES} answers per question "
        "(transformers `generate`, KV cache); 'answers needed' extrapolates from the measured "
        "per-question rates."
    )


if __name__ == "__main__":
    main()
