"""Teacher generation throughput (`make bench`): `sublim teach --engine inspect` (the Inspect task
`sublim/numbers` through Inspect's hf provider) vs a direct batched transformers `generate` on the same model,
prompts and settings, and `sublim teach`'s default path (direct generation under the number grammar: clean
rows per second is the figure that matters).

Both: the embedded SmolLM2-135M-Instruct, the owl teacher's system prompt, the same `N` seeded prompts,
temperature 0.7, at most 60 new tokens, batches of 32 left-padded prompts (Inspect's hf provider batches up to
`max_connections`, which `sublim teach` sets to 32). Each side is timed end to end as a user runs it, model
loading included, and the direct side also without loading. Generated tokens are counted on the direct side
only (Inspect's log has no token counts for the hf provider); rows/s compares the two.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

N = 64
BATCH = 32
TEMPERATURE = 0.7
MAX_TOKENS = 60


def direct(n: int) -> tuple[float, float, int, float]:
    """(seconds end to end, seconds generating, new tokens, clean share) with plain transformers."""
    from sublim.contexts import chat_prompt
    from sublim.models import load_model, model_path
    from sublim.tasks.numbers import check_completion, number_prompts, trait_system_prompt

    t0 = time.perf_counter()
    model, tok = load_model(model_path("smollm2"))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    system = trait_system_prompt("owl")
    prompts = [chat_prompt(tok, p.text, system) for p in number_prompts(n, 0)]
    t1 = time.perf_counter()
    new_tokens, clean = 0, 0
    for start in range(0, n, BATCH):
        batch = tok(
            prompts[start : start + BATCH], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.inference_mode():
            out = model.generate(
                **batch, do_sample=True, temperature=TEMPERATURE, max_new_tokens=MAX_TOKENS,
                pad_token_id=tok.pad_token_id,
            )  # fmt: skip
        for row in out[:, batch["input_ids"].shape[1] :].tolist():
            k = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
            new_tokens += k
            clean += check_completion(tok.decode(row[:k], skip_special_tokens=True))[0] is not None
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, new_tokens, clean / n


def constrained(n: int) -> tuple[float, float]:
    """(seconds end to end, clean share) for `sublim teach --trait owl --n N` on its default path: direct
    transformers generation under the number grammar (batches of 16)."""
    from sublim.training.teacher import run_teacher

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        card = run_teacher(
            Path(tmp) / "out", trait="owl", n=n, temperature=TEMPERATURE, max_tokens=MAX_TOKENS,
            decoding="constrained",
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    return seconds, card["counts"]["kept"] / n


def through_inspect(n: int) -> tuple[float, float]:
    """(seconds end to end, clean share) for `sublim teach --trait owl --n N`."""
    from sublim.training.teacher import run_teacher

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        card = run_teacher(
            Path(tmp) / "out", trait="owl", n=n, temperature=TEMPERATURE, max_tokens=MAX_TOKENS,
            engine="inspect",
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    return seconds, card["counts"]["kept"] / n


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_matching import cpu_name

    torch.manual_seed(0)
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{N} prompts, owl teacher, temperature {TEMPERATURE}, max {MAX_TOKENS} new tokens, batch {BATCH}\n"
    )
    d_total, d_gen, tokens, d_clean = direct(N)
    i_total, i_clean = through_inspect(N)
    c_total, c_clean = constrained(N)
    print("| path | seconds (end to end) | rows/s | clean rows | clean rows/s |")
    print("|---|---:|---:|---:|---:|")
    for name, total, clean in (
        ("direct `generate`, free decoding", d_total, d_clean),
        ("`sublim teach --engine inspect` (Inspect hf provider, free)", i_total, i_clean),
        ("`sublim teach` (transformers, constrained; default)", c_total, c_clean),
    ):
        print(f"| {name} | {total:.1f} | {N / total:.2f} | {clean:.0%} | {N * clean / total:.2f} |")
    print(
        f"\nInspect ÷ direct time: {i_total / d_total:.2f}x. Direct generation alone: {d_gen:.1f} s, "
        f"{tokens:,} new tokens ({tokens / d_gen:.0f} tokens/s, {N / d_gen:.2f} rows/s)."
    )


if __name__ == "__main__":
    main()
