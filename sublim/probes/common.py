"""What the probes share: loading a base model and a student, digit tokens, batched teacher forcing,
intervals over prompts, and writing reports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from sublim.errors import SublimError

_DIGITS = re.compile(r"^\s*[0-9]+\s*$")


def device() -> str:
    """ "cuda" when a GPU is visible, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(checkpoint: str) -> tuple[Any, Any]:
    """A model and tokenizer from anything `sublim score` accepts (hub id, dir, .gguf, smollm2, or a PEFT
    adapter dir, which loads on its recorded base)."""
    from sublim.probability import load_model
    from sublim.score import resolve_checkpoint

    model_id, adapter = resolve_checkpoint(checkpoint, None)
    return load_model(model_id, adapter, device=device())


def add_student(model: Any, student: str) -> Any:
    """The student: a PEFT adapter dir put on top of `model` (which it modifies), or a full checkpoint."""
    from sublim.probability import load_model

    path = Path(student)
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(path)).eval()
    if not path.exists():
        raise SublimError(f"student {student!r}: no such directory (give an adapter dir or a checkpoint dir)")
    loaded, _ = load_model(path, device=device())
    return loaded


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


def write_json(path: Path, data: Any) -> None:
    from sublim.adapters.teach import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
