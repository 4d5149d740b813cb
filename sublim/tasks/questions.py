"""Preference questions: the shipped bank, user banks, and the seeded numbers prefix.

A user bank is a file of questions: `.txt` (one per line, `#` comments), or `.yaml`/`.json` holding either a
list of strings or a mapping with `questions:` (and optionally `answer_prefix:`). `{category}` in a question
is replaced by the category name.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sublim.errors import SublimError

DEFAULT_ANSWER_PREFIX = "My favorite {category} is the"


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
    prefix = str(raw.get("answer_prefix") or DEFAULT_ANSWER_PREFIX)
    out = []
    for i, q in enumerate(raw["questions"]):
        if not isinstance(q, str) or not q.strip():
            raise QuestionBankError(f"{where}: question {i + 1} is not a non-empty string: {q!r}")
        out.append(Question(f"{category}-{i:03d}", _fill(q.strip(), category), _fill(prefix, category)))
    return out


def _fill(text: str, category: str) -> str:
    return text.replace("{category}", category)


def _read_user_bank(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise QuestionBankError(f"cannot read question file {path}: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise QuestionBankError(f"{path}: not valid {suffix.lstrip('.')}: {e}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


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
