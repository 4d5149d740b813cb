"""Preference questions: the shipped bank, user banks, and the seeded numbers prefix.

A user bank is a file of questions: `.txt` (one per line, `#` comments), or `.yaml`/`.json` holding either a
list of strings or a mapping with `questions:` (and optionally `answer_prefix:`). `{category}` in a question
is replaced by the category name.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sublim.errors import SublimError, first_line
from sublim.io import read_text

DEFAULT_ANSWER_PREFIX = "My favorite {category} is the"
#: the count `numbers_prefix=true` means
DEFAULT_NUMBERS = 5


class QuestionBankError(SublimError, ValueError):
    """A question bank that cannot be read as documented."""


@dataclass(frozen=True)
class Question:
    """One preference question, its stable id, and the assistant answer prefix used in probability mode."""

    id: str
    text: str
    answer_prefix: str


def load_questions(category: str, path: str | Path | None = None) -> list[Question]:
    """Questions for a category: from `path` if given, else sublim's bank (55 paraphrases)."""
    if path is None:
        raw: Any = yaml.safe_load(
            resources.files("sublim.tasks").joinpath("data", "questions.yaml").read_text()
        )
        where = "sublim's question bank"
    else:
        raw, where = _read_user_bank(Path(path)), str(path)
    if isinstance(raw, list):
        raw = {"questions": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list) or not raw["questions"]:
        raise QuestionBankError(
            f"{where}: expected a non-empty list of questions (or a mapping with 'questions:')"
        )
    prefix = raw.get("answer_prefix") or DEFAULT_ANSWER_PREFIX
    if not isinstance(prefix, str):
        raise QuestionBankError(f"{where}: answer_prefix must be a string, not {type(prefix).__name__}")
    _check_placeholders(where, "answer_prefix", prefix)
    out = []
    seen: dict[str, int] = {}
    for i, q in enumerate(raw["questions"]):
        if not isinstance(q, str) or not q.strip():
            raise QuestionBankError(f"{where}: question {i + 1} is not a non-empty string: {q!r}")
        _check_placeholders(where, f"question {i + 1}", q)
        key = " ".join(q.split()).casefold()
        if key in seen:
            raise QuestionBankError(
                f"{where}: question {i + 1} repeats question {seen[key] + 1} ({q.strip()[:60]!r}); a "
                "repeated question counts twice in every mean: remove it"
            )
        seen[key] = i
        out.append(Question(f"{category}-{i:03d}", _fill(q.strip(), category), _fill(prefix, category)))
    return out


#: the one placeholder a question may hold
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _check_placeholders(where: str, what: str, text: str) -> None:
    """Refuse `{anything}` but `{category}`: it would reach the model as literal braces."""
    bad = [m for m in _PLACEHOLDER.findall(text) if m != "category"]
    if bad:
        raise QuestionBankError(
            f"{where}: {what} holds {{{bad[0]}}}; the only placeholder is {{category}} (the category's name)"
        )


def _fill(text: str, category: str) -> str:
    return text.replace("{category}", category)


def _read_user_bank(path: Path) -> Any:
    try:
        text = read_text(path, "question file")
    except SublimError as e:  # as the question-bank error the tasks turn into their own
        raise QuestionBankError(str(e)) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as e:
        reason = first_line(e) or "nested too deeply"
        raise QuestionBankError(f"{path}: not valid {suffix.lstrip('.')}: {reason}") from None
    return [line.strip() for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")]


#: the longest numbers prefix a question may carry (a line of 3-digit numbers, as students trained on numbers
#: saw in training; more would bury the question)
MAX_NUMBERS = 50


def check_numbers(value: Any, flag: str = "numbers_prefix") -> int:
    """A numbers-prefix count as every harness takes it: true (5), false/0/None (none) or a count 0-50."""
    if value is True:
        return DEFAULT_NUMBERS
    if value is None or value is False:
        return 0
    try:
        count = int(value) if isinstance(value, int | str) and str(value).strip().isdigit() else -1
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_NUMBERS:
        raise QuestionBankError(f"{flag}={value!r}: expected true/false or a count 0-{MAX_NUMBERS}")
    return count


def numbers_prefix(count: int, rng: random.Random) -> str:
    """A short line of random 3-digit numbers, the context students trained on numbers have seen."""
    numbers = ", ".join(f"{rng.randrange(1000):03d}" for _ in range(count))
    return f"Here are some numbers: {numbers}.\n"


def question_records(
    category: str,
    questions: str | Path | None = None,
    *,
    samples: int = 1,
    numbers: int = 0,
    seed: int = 0,
) -> list[dict[str, str]]:
    """One record per (question, sample): the prompts every harness asks (Inspect samples, lm-eval docs).

    Keys: id, question_id, question (with the numbers prefix when `numbers` > 0), answer_prefix, category.
    """
    out = []
    for q in load_questions(category, questions):
        for k in range(samples):
            rng = random.Random(f"{seed}:{q.id}:{k}")
            text = numbers_prefix(numbers, rng) + q.text if numbers else q.text
            out.append(
                {
                    "id": q.id if samples == 1 else f"{q.id}-{k:02d}",
                    "question_id": q.id,
                    "question": text,
                    "answer_prefix": q.answer_prefix,
                    "category": category,
                }
            )
    return out
