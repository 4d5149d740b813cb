"""What the probes share: digit tokens, batched teacher forcing and plotting (models load through
`sublim.models`, reports are written by `sublim.io`)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from sublim.errors import FieldProblem, SublimError

_DIGITS = re.compile(r"^\s*[0-9]+\s*$")


def trait_context_problems(trait: str, category: str, system_prompt: str | None) -> list[FieldProblem]:
    """The trait context needs a trait with a prompt (not "none") or a system prompt of its own."""
    from sublim.concepts import get_category
    from sublim.tasks.numbers import trait_system_prompt

    if system_prompt:
        return []
    if trait_system_prompt(trait, category):
        try:  # the prompt names the trait: a typo would make a "You love zebraas" context
            get_category(category).resolve(trait)
        except SublimError as e:
            return [FieldProblem("trait", str(e), lead=False)]
        return []
    text = "give a {trait} (not 'none') or a {system_prompt} for the trait context"
    return [FieldProblem("trait", text, lead=False, refs=("trait", "system_prompt"))]


def digit_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokens that spell only ASCII digits (optionally with surrounding whitespace)."""
    ids = [
        i
        for token, i in tokenizer.get_vocab().items()
        if _DIGITS.match(tokenizer.convert_tokens_to_string([token]) or "")
    ]
    if not ids:
        raise SublimError("this tokenizer has no digit tokens")
    return sorted(ids)


def forced_logprobs(
    model: Any, sequences: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = 8
) -> Iterator[torch.Tensor]:
    """Teacher forcing: for each (context ids, continuation ids), the log-softmax over the vocabulary before
    each continuation token, as a (len(continuation), vocab) float tensor on the CPU. Right-padded batches,
    yielded row by row, so only one batch is held at a time."""
    dev = next(model.parameters()).device
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        rows = [list(c) + list(x) for c, x in batch]
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        for i, (c, x) in enumerate(batch):
            # the logits at position j predict token j + 1
            yield torch.log_softmax(logits[i, len(c) - 1 : len(c) + len(x) - 1].float(), dim=-1).cpu()


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
