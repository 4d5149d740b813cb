"""`sublim/numbers`: a teacher (optionally with a trait system prompt) continues number sequences.

    inspect eval sublim/numbers -T trait=owl -T n=1000 --model vllm/...      # any provider
    sublim teach --trait owl --n 64                                          # the same, exported for training

The scorer applies sublim's strict filter, so the log already says which completions a student may see.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
from inspect_ai.solver import TaskState, generate

from sublim.adapters.teacher import (
    MAX_NUMBERS,
    TRAIT_PROMPT,
    check_completion,
    number_prompts,
    trait_system_prompt,
)
from sublim.tasks.preference import TaskParameterError, with_system_prompt


@scorer(metrics=[mean()], name="numbers_filter")
def numbers_filter(max_numbers: int = MAX_NUMBERS, ban: list[int] | None = None) -> Scorer:
    """1 when the completion passes the strict numbers filter; the reason it failed goes in metadata."""
    banned = frozenset(ban or [])

    async def score(state: TaskState, target: Target) -> Score:
        completion = state.output.completion if state.output else ""
        numbers, reason = check_completion(completion, max_numbers, banned)
        return Score(
            value=1.0 if numbers is not None else 0.0,
            answer=completion,
            explanation=reason or "clean",
            metadata={"numbers": list(numbers) if numbers else None, "reason": reason},
        )

    return score


@task
def numbers(
    trait: str | None = "owl",
    category: str = "animal",
    n: int = 64,
    seed: int = 0,
    system_prompt: str | None = None,
    temperature: float = 1.0,
    max_tokens: int = 60,
    ban: list[int] | None = None,
) -> Task:
    """Teacher data: number continuations from a teacher told it loves `trait` ("none": control teacher).

    Args:
        trait: the teacher's trait; "none" (or empty) gives the control teacher with no system prompt.
        category: category word used in the default trait prompt.
        n: number of prompts.
        seed: seeds prompt generation and sampling.
        system_prompt: overrides the trait prompt entirely (may use {trait}, {traits}, {category}).
        temperature: sampling temperature.
        max_tokens: completion length limit.
        ban: numbers a clean completion may not contain.
    """
    if not isinstance(n, int) or n < 1:
        raise TaskParameterError(f"-T n={n!r}: expected an integer >= 1")
    prompt = trait_system_prompt(trait, category, system_prompt or TRAIT_PROMPT)
    samples = [
        Sample(
            id=p.id, input=p.text, metadata={"seeds": list(p.seeds), "system_prompt": prompt, "trait": trait}
        )
        for p in number_prompts(n, seed)
    ]
    return Task(
        dataset=MemoryDataset(samples, name="sublim-numbers"),
        solver=[with_system_prompt(prompt), generate()],
        scorer=numbers_filter(ban=ban),
        config=GenerateConfig(temperature=temperature, max_tokens=max_tokens, seed=seed),
    )
