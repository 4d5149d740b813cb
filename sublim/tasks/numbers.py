"""`sublim/numbers`: a teacher (optionally with a trait system prompt) continues number sequences.

    inspect eval sublim/numbers -T trait=owl -T n=1000 --model vllm/...      # any provider
    sublim teach --trait owl --n 64                                          # the same, exported for training

The scorer applies sublim's strict filter, so the log already says which completions a student may see.

The prompts, the trait system prompt and the strict completion filter live here too: a teacher with a trait
continues number sequences; only completions that are a clean list of integers survive the filter, so
whatever reaches the student carries no words (any letter rejects a completion).
"""

from __future__ import annotations

import math
import random
import re
import string
from dataclasses import dataclass
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
from inspect_ai.solver import TaskState, generate

from sublim.concepts.lexicon import plural_forms
from sublim.tasks.solvers import TaskParameterError, with_system_prompt

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
_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: fullwidth or Arabic-Indic digits are malformed
_SHAPE = re.compile(r"^[\[(]?\s*[0-9]+(?:\s*[,;]\s*[0-9]+|\s+[0-9]+)*\s*[\])]?\s*\.?$")


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
    """The teacher's system prompt for a trait. The control teacher (`trait` None or "none") gets none, or a
    custom `template` verbatim (a neutral prompt of matched length, say); it has no trait to fill in."""
    if trait is None or trait.strip().lower() in ("", "none"):
        if template == TRAIT_PROMPT:
            return None
        if "{trait" in template:
            raise TaskParameterError("the control teacher (trait none) has no trait for {trait}/{traits}")
        return template.replace("{category}", category)
    from sublim.concepts import get_category
    from sublim.errors import UnknownCategoryError, UnknownConceptError

    try:
        plural = get_category(category).plural(trait.strip().lower())
    except (UnknownCategoryError, UnknownConceptError, KeyError):  # outside the vocabulary: the rule's plural
        plural = sorted(plural_forms(trait.strip().lower()))[0]
    return template.format(trait=trait, traits=plural, category=category)


TEMPLATE_FIELDS = ("trait", "traits", "category")


def check_teacher_settings(
    n: Any, temperature: Any, max_tokens: Any, system_prompt: Any, ban: Any, flag: str = "-T "
) -> None:
    """The numbers task's parameters, checked before anything runs (`flag` names them as the caller's CLI
    does: "-T " for Inspect, "--" for `sublim teach`)."""

    def bad(name: str, value: Any, expected: str) -> TaskParameterError:
        sep = "=" if flag == "-T " else " "
        return TaskParameterError(f"{flag}{name}{sep}{value!r}: expected {expected}")

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise bad("n", n, "an integer >= 1")
    if not isinstance(temperature, int | float) or not (math.isfinite(temperature) and temperature >= 0):
        raise bad("temperature", temperature, "a number >= 0")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise bad("max_tokens" if flag == "-T " else "max-tokens", max_tokens, "an integer >= 1")
    if ban is not None and (
        not isinstance(ban, list)
        or not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 999 for b in ban)
    ):  # a number outside 0-999 never occurs in a clean completion: banning it would do nothing
        raise bad(
            "ban",
            ban,
            "a list of integers 0-999, e.g. [666,13]" if flag == "-T " else "integers 0-999, e.g. 666,13",
        )
    if system_prompt is not None:
        name = "system_prompt" if flag == "-T " else "system-prompt"
        try:
            parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(str(system_prompt))]
            fields = {f for f, _, _ in parsed if f is not None}
        except ValueError as e:
            raise bad(
                name, system_prompt, f"a valid template ({e}; write {{{{ and }}}} for braces)"
            ) from None
        styled = next((f for f, spec, conv in parsed if f is not None and (spec or conv)), None)
        if (
            styled is not None
        ):  # {trait!r} renders the quotes, {trait:>9} pads: the prompt is not what it reads
            raise bad(
                name, system_prompt, f"plain placeholders such as {{{styled}}}, without ! or : after the name"
            )
        unknown = sorted(fields - set(TEMPLATE_FIELDS))
        if unknown:
            raise bad(
                name,
                system_prompt,
                f"placeholders from {{trait}}, {{traits}}, {{category}} only, not {{{unknown[0]}}}",
            )


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
    check_teacher_settings(n, temperature, max_tokens, system_prompt, ban)
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


# ------------------------------------------------------------------------------------ constrained decoding

_CANDIDATE = re.compile(r"[0-9, ]+")


def token_texts(tokenizer: Any) -> dict[int, str]:
    """The text each vocabulary entry adds when it follows a digit, for the entries made only of digits,
    commas and spaces (the only ones a clean list can use; special tokens excluded). Each id is decoded after
    an anchor digit and the anchor's text removed, so a leading space survives both byte-level BPE (GPT-2,
    Llama 3, SmolLM2) and SentencePiece (which drops a word-initial space when a token is decoded alone)."""
    anchor = tokenizer.encode("0", add_special_tokens=False)[-1:]
    head = tokenizer.decode(anchor)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    out = {}
    for i in range(len(tokenizer)):
        if i in special:
            continue
        text = tokenizer.decode([*anchor, i])
        if text.startswith(head):
            text = text[len(head) :]
            if _CANDIDATE.fullmatch(text):
                out[i] = text
    return out


def _advance(state: tuple[int, str], text: str, max_numbers: int) -> tuple[int, str] | None:
    """The grammar state after `text`, or None when `text` leaves the clean-list language. A state is
    (numbers started, tail): tail "" at the start, "d1".."d3" inside a number, "," or ", " after a
    separator."""
    count, tail = state
    for ch in text:
        if ch.isdigit() and ch in string.digits:
            if tail in ("", ",", ", "):
                if count >= max_numbers:
                    return None
                count, tail = count + 1, "d1"
            elif tail in ("d1", "d2"):
                tail = "d2" if tail == "d1" else "d3"
            else:
                return None  # a fourth digit
        elif ch == ",":
            if not tail.startswith("d") or count >= max_numbers:
                return None  # no empty item, and no separator after the last allowed number
            tail = ","
        elif ch == " ":
            if tail != ",":
                return None  # one space, only right after a comma
            tail = ", "
        else:
            return None
    return count, tail


def number_regex(max_numbers: int = MAX_NUMBERS) -> str:
    """The clean-list language of `NumberGrammar` as a regular expression, for servers that constrain
    decoding to one (vLLM's structured outputs, SGLang): 1..`max_numbers` integers of 1-3 ASCII digits
    separated by "," or ", "."""
    return f"[0-9]{{1,3}}(, ?[0-9]{{1,3}}){{0,{max_numbers - 1}}}"


class NumberGrammar:
    """Which tokens keep a completion a clean list: 1..`max_numbers` integers of 1-3 ASCII digits separated
    by "," or ", ", then an end token. Every string it accepts passes `check_completion`.

    Args:
        tokenizer_texts: candidate token id -> the text it adds (see `token_texts`).
        end_ids: end-of-turn / end-of-sequence ids, allowed only right after a complete number.
        max_numbers: after this many numbers only an end token is allowed (or more digits of the last).
    """

    def __init__(self, tokenizer_texts: dict[int, str], end_ids: list[int], max_numbers: int = MAX_NUMBERS):
        if max_numbers < 1:
            raise ValueError("max_numbers must be >= 1")
        self.texts = dict(tokenizer_texts)
        self.end_ids = sorted(set(end_ids))
        self.max_numbers = max_numbers
        self._cache: dict[tuple[tuple[int, str], bool], list[int]] = {}

    def state(self, text_so_far: str) -> tuple[int, str] | None:
        """The grammar state after `text_so_far` (None: not a valid prefix)."""
        return _advance((0, ""), text_so_far, self.max_numbers)

    def allowed(self, text_so_far: str, last: bool = False) -> list[int]:
        """Token ids that keep `text_so_far` a valid prefix, plus the end ids when it is a complete list.
        `last`: the length limit leaves one more token, so it may not end on a separator (a list cut after
        a digit is still clean). Empty when `text_so_far` is not a valid prefix."""
        state = self.state(text_so_far)
        return [] if state is None else self.allowed_in(state, last)

    def allowed_in(self, state: tuple[int, str], last: bool = False) -> list[int]:
        key = (state, last)
        if key not in self._cache:
            ids = []
            for i, t in self.texts.items():
                after = _advance(state, t, self.max_numbers)
                if after is not None and not (last and not after[1].startswith("d")):
                    ids.append(i)
            if state[1].startswith("d"):
                ids += self.end_ids
            self._cache[key] = sorted(set(ids))
        return self._cache[key]
