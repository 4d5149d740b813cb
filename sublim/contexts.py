"""Eval and training contexts: which system message a model sees, defined once for every path.

A context is a name or a system prompt:
- ``"empty"``: an empty system message, so the model sees no system prompt at all (the chat template's
  default is suppressed). ``"none"`` is accepted as its older name.
- ``"default"``: no system message, so the chat template's default applies (SmolLM2's is "You are a
  helpful AI assistant named SmolLM, trained by Hugging Face").
- any other text: used verbatim as the system prompt.

In code the same three cases are a ``system_prompt`` of ``""``, ``None`` and the text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

EMPTY = "empty"
DEFAULT = "default"
_ALIASES = {"none": EMPTY}


def context_name(context: str) -> str:
    """The canonical name of a context ("none" -> "empty"); custom system prompts are their own name."""
    return _ALIASES.get(context, context)


def system_prompt_for(context: str) -> str | None:
    """The system prompt of a context: "" for empty, None for the template's default, else the text."""
    name = context_name(context)
    return {EMPTY: "", DEFAULT: None}.get(name, name)


def messages(user: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """A system message unless `system_prompt` is None ("" gives an empty one), then `user`."""
    out = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    out.append({"role": "user", "content": user})
    return out


def chat_prompt(
    tokenizer: Any, user: str, system_prompt: str | None = None, chat_template: str | None = None
) -> str:
    """The rendered chat prompt up to the assistant's turn (see `messages`). Plain lines when the tokenizer
    has no chat template."""
    msgs = messages(user, system_prompt)
    if chat_template or getattr(tokenizer, "chat_template", None):
        prompt: str = tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True, chat_template=chat_template
        )
        return prompt
    return "".join(f"{m['content']}\n" for m in msgs)


def prompt_sha256(prompt: str | Sequence[tuple[str, str]]) -> str:
    """Hash of what a model saw: the rendered prompt text (probability mode), or (role, text) pairs of the
    messages before the answer when the provider renders them (sampled mode). Comparisons refuse runs whose
    hashes differ (another question text, system prompt or chat template, or a template that inserts the
    date)."""
    text = prompt if isinstance(prompt, str) else json.dumps(list(prompt))
    return hashlib.sha256(text.encode()).hexdigest()
