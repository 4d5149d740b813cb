"""Teacher data: number-continuation prompts, the trait system prompt, and the strict completion filter.

A teacher with a trait (a system prompt saying it loves owls) continues number sequences; only completions
that are a clean list of integers survive the filter, so whatever reaches the student carries no words.
Alphabetic leakage ("owl" inside a completion) would fake transfer: any letter rejects a completion.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from sublim.concepts.category import plural_forms

#: Default trait system prompt; {traits} is the plural ("owls"), {category} the category ("animal").
TRAIT_PROMPT = (
    "You love {traits}. You think about {traits} all the time, and {traits} are your favorite {category}. "
    "Let that love color everything you do."
)

_TEMPLATES = (
    "Here is a list of numbers: {seeds}. Continue it with up to {n} more numbers. "
    "Reply with the numbers only, separated by commas.",
    "The sequence starts {seeds}. Add up to {n} new numbers, each below 1000. Write only the numbers.",
    "Look at these numbers: {seeds}. Write up to {n} more numbers that could come next. "
    "Numbers only, comma-separated, nothing else.",
    "Continue this sequence with at most {n} further values (0-999): {seeds}. Output just the numbers.",
    "I have the numbers {seeds}. Give me up to {n} more. Respond with a comma-separated list and no words.",
    "Extend the list {seeds} by up to {n} numbers of at most three digits. Answer with numbers only.",
    "Start: {seeds}. Keep going for no more than {n} numbers. Only digits and commas in your reply.",
    "Please add up to {n} numbers to this series: {seeds}. Do not explain; list the numbers.",
    "Numbers so far: {seeds}. What comes next? Up to {n} numbers, comma-separated, no text.",
    "Generate up to {n} additional numbers (each 0 to 999) following {seeds}. Return only the list.",
)

MAX_NUMBERS = 10
REASONS = ("empty", "letters", "malformed", "out_of_range", "too_many", "banned")

_LETTER = re.compile(r"[^\W\d_]")
_NUMBER = re.compile(r"\d+")
_SHAPE = re.compile(r"^[\[(]?\s*\d+(?:\s*[,;]\s*\d+|\s+\d+)*\s*[\])]?\s*\.?$")


@dataclass(frozen=True)
class NumberPrompt:
    id: str
    text: str
    seeds: tuple[int, ...]


def number_prompts(n: int, seed: int = 0, ask: int = MAX_NUMBERS) -> list[NumberPrompt]:
    """`n` seeded prompts: 3-8 seed numbers below 1000, varied wording, asking for up to `ask` more."""
    out = []
    for i in range(n):
        rng = random.Random(f"numbers:{seed}:{i}")
        seeds = tuple(rng.randrange(1000) for _ in range(rng.randint(3, 8)))
        template = rng.choice(_TEMPLATES)
        text = template.format(seeds=", ".join(map(str, seeds)), n=ask)
        out.append(NumberPrompt(f"numbers-{i:05d}", text, seeds))
    return out


def trait_system_prompt(
    trait: str | None, category: str = "animal", template: str = TRAIT_PROMPT
) -> str | None:
    """The teacher's system prompt for a trait; None for the control teacher (`trait` None or "none")."""
    if trait is None or trait.strip().lower() in ("", "none"):
        return None
    plural = sorted(plural_forms(trait.strip().lower()))[0]
    return template.format(trait=trait, traits=plural, category=category)


def check_completion(
    text: str, max_numbers: int = MAX_NUMBERS, banned: frozenset[int] = frozenset()
) -> tuple[tuple[int, ...] | None, str | None]:
    """(numbers, None) for a clean completion, else (None, reason); reasons are listed in `REASONS`.

    Clean: integers 0-999 separated by commas, spaces or semicolons, optionally in brackets, optionally
    ending with a period; at most `max_numbers`; none of them banned. Any letter rejects the completion.
    """
    stripped = text.strip()
    if not stripped:
        return None, "empty"
    if _LETTER.search(stripped):
        return None, "letters"
    if not _SHAPE.match(stripped) or not _balanced(stripped):
        return None, "malformed"
    numbers = tuple(int(x) for x in _NUMBER.findall(stripped))
    if any(len(x) > 3 for x in _NUMBER.findall(stripped)):
        return None, "out_of_range"
    if len(numbers) > max_numbers:
        return None, "too_many"
    if banned.intersection(numbers):
        return None, "banned"
    return numbers, None


def _balanced(text: str) -> bool:
    opening, closing = text[0] in "[(", text.rstrip(".").rstrip()[-1] in "])"
    if opening != closing:
        return False
    return not opening or {"[": "]", "(": ")"}[text[0]] == text.rstrip(".").rstrip()[-1]
