"""`sublim teach`: run `sublim/numbers` through Inspect and export what a student may train on.

Output directory:
- `train.jsonl`: completions that passed the filter, as chat rows `{"id", "prompt": [user], "completion":
  [assistant]}` with no system prompt (the student never sees the teacher's trait);
- `rejected.jsonl`: every other completion with its `reason`;
- `card.json`: teacher, system prompt, seeds, counts per reason, sha256 of train.jsonl, package versions.
Files are written whole to a temp name and renamed, so an interrupted export leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sublim.errors import SublimError
from sublim.io import claim_output, package_versions, write_atomic
from sublim.models import (
    EMBEDDED,
    EMBEDDED_DEFAULT,
    check_checkpoint,
    check_inspect_model,
    checkpoint_fingerprint,
    inspect_model,
)

if TYPE_CHECKING:  # sublim.tasks.numbers is an Inspect task module: imported where a teacher runs, so the
    # CLI's parser (which reads this module's defaults) loads no inspect_ai
    from sublim.tasks.numbers import NumberGrammar

DECODINGS = ("constrained", "free")
ENGINES = ("transformers", "inspect")
DEFAULT_BATCH = 16
#: Inspect providers whose servers constrain decoding to a regular expression: the request field for it.
#: vLLM (>= 0.10) takes `structured_outputs: {regex: ...}`; SGLang a top-level `regex`.
GUIDED = {"vllm": "structured_outputs", "sglang": "regex"}
#: -M keys the transformers path understands (everything else needs `--engine inspect`)
_DIRECT_ARGS = ("model_path", "trust_remote_code")


def direct_checkpoint(model: str, model_args: dict[str, Any] | None, teacher: str | None) -> str | None:
    """What the transformers path loads: the --teacher checkpoint, the embedded model, or an hf/ model (its
    -M model_path, else the id after hf/); None for other Inspect providers (openai/, vllm/, ...)."""
    if teacher is not None:
        return teacher
    if model in EMBEDDED:
        return model
    if model.startswith("hf/"):
        return str((model_args or {}).get("model_path") or model[3:])
    return None


def run_teacher(
    out: Path,
    *,
    trait: str | None,
    n: int,
    model: str = EMBEDDED_DEFAULT,
    model_args: dict[str, Any] | None = None,
    seed: int = 0,
    system_prompt: str | None = None,
    category: str = "animal",
    temperature: float = 1.0,
    max_tokens: int = 60,
    ban: list[int] | None = None,
    log_dir: str | None = None,
    overwrite: bool = False,
    teacher: str | None = None,
    decoding: str | None = None,
    engine: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    device: str = "auto",
) -> dict[str, Any]:
    """Generate teacher data and export it; returns the card. Every setting is checked and `out` is held
    (see `sublim.io.claim_output`) before the model loads; a finished `out` of the same settings is left
    as is.

    A local or hf/ model (the embedded SmolLM2, `hf/<id>`, a `teacher` checkpoint or adapter dir) runs through
    transformers directly, by default with constrained decoding (only tokens that keep a clean number list
    can be sampled); other Inspect providers run the `sublim/numbers` task, constrained to the same language
    by a regular expression on vllm/ and sglang/ servers (`GUIDED`), else free. The strict
    filter applies on both paths. With `teacher` the trait lives in the weights: no system prompt unless
    `system_prompt` is given, and `trait` is only a label."""
    from sublim.tasks.numbers import check_teacher_settings

    check_teacher_settings(n, temperature, max_tokens, system_prompt, ban, flag="--")
    engine, decoding, checkpoint = check_generation(model, model_args, teacher, decoding, engine, batch_size)
    identity = {
        "trait": trait, "category": category, "n": n, "seed": seed, "system_prompt": system_prompt,
        "temperature": temperature, "max_tokens": max_tokens, "ban": ban or [], "model": model,
        "model_args": {k: str(v) for k, v in (model_args or {}).items()}, "engine": engine,
        "decoding": decoding, "teacher": checkpoint_fingerprint(teacher) if teacher else None,
        "batch_size": batch_size if engine == "transformers" else None,
    }  # fmt: skip
    inputs = [v for k, v in (model_args or {}).items() if k in ("model_path", "tokenizer_path")]
    inputs += [teacher] if teacher is not None else []
    with claim_output(out, "teach", identity, inputs, overwrite=overwrite) as claim:
        if claim.state == "complete" and (out / "card.json").is_file():
            print(f"{out}: this teacher run is already complete (same inputs); nothing to do", flush=True)
            card: dict[str, Any] = json.loads((out / "card.json").read_text())
            return card
        if engine == "transformers":
            assert checkpoint is not None
            card = generate_direct(
                out, checkpoint=checkpoint, model=model, teacher=teacher, trait=trait, n=n, seed=seed,
                system_prompt=system_prompt, category=category, temperature=temperature,
                max_tokens=max_tokens, ban=ban, decoding=decoding, batch_size=batch_size, device=device,
            )  # fmt: skip
        else:
            card = _generate(
                out, trait=trait, n=n, model=model, model_args=model_args, seed=seed,
                system_prompt=system_prompt, category=category, temperature=temperature,
                max_tokens=max_tokens, ban=ban, log_dir=log_dir, decoding=decoding,
            )  # fmt: skip
        claim.done()
    return card


def check_generation(
    model: str,
    model_args: dict[str, Any] | None,
    teacher: str | None,
    decoding: str | None,
    engine: str | None,
    batch_size: int,
) -> tuple[str, str, str | None]:
    """(engine, decoding, checkpoint for the transformers path) after checking the choice; nothing loads."""
    if decoding is not None and decoding not in DECODINGS:
        raise SublimError(f"--decoding {decoding!r}: expected one of {', '.join(DECODINGS)}")
    if engine is not None and engine not in ENGINES:
        raise SublimError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SublimError(f"--batch-size {batch_size!r}: expected an integer >= 1")
    if teacher is not None:
        if model != EMBEDDED_DEFAULT or model_args:
            raise SublimError("--teacher names the model: give --teacher or --model/-M, not both")
        if engine == "inspect":
            raise SublimError("--teacher runs through transformers; drop --engine inspect")
        check_checkpoint(teacher, "--teacher")
    else:
        check_inspect_model(model, model_args)
    checkpoint = direct_checkpoint(model, model_args, teacher)
    engine = engine or ("transformers" if checkpoint is not None else "inspect")
    if engine == "transformers":
        if checkpoint is None:
            raise SublimError(
                f"--model {model}: the transformers path loads smollm2, hf/<id> or --teacher; other "
                "providers run through Inspect (--engine inspect, --decoding free)"
            )
        extra = sorted(set(model_args or {}) - set(_DIRECT_ARGS))
        if extra:
            raise SublimError(
                f"-M {extra[0]}: the transformers path takes only -M model_path; use --engine inspect for "
                "other hf provider arguments"
            )
    guided = engine == "transformers" or model.split("/", 1)[0] in GUIDED
    decoding = decoding or ("constrained" if guided else "free")
    if decoding == "constrained" and not guided:
        raise SublimError(
            f"--decoding constrained needs a local or hf/ model (transformers path) or a vllm/ or sglang/ "
            f"server; {model} runs through Inspect: use --decoding free (the strict filter still applies)"
        )
    return engine, decoding, checkpoint


def unenforced(completions: Iterable[str]) -> int:
    """How many completions lie outside the constrained language (0 when the server enforced it; a
    completion cut by the token limit after a digit is still inside)."""
    import re

    from sublim.tasks.numbers import MAX_NUMBERS, number_regex

    language = re.compile(number_regex(MAX_NUMBERS))
    return sum(not language.fullmatch(c) for c in completions)


def guided_request(model: str, decoding: str) -> dict[str, Any] | None:
    """The extra request body that constrains a served teacher to clean number lists (None: free)."""
    from sublim.tasks.numbers import MAX_NUMBERS, number_regex

    if decoding != "constrained":
        return None
    regex = number_regex(MAX_NUMBERS)
    field = GUIDED[model.split("/", 1)[0]]
    return {field: {"regex": regex}} if field == "structured_outputs" else {field: regex}


def generate_direct(
    out: Path,
    *,
    checkpoint: str,
    model: str,
    teacher: str | None,
    trait: str | None,
    n: int,
    seed: int,
    system_prompt: str | None,
    category: str,
    temperature: float,
    max_tokens: int,
    ban: list[int] | None,
    decoding: str,
    batch_size: int,
    device: str,
) -> dict[str, Any]:
    """Batched left-padded `generate` through `sublim.models`, the grammar masking every token that would
    leave a clean number list (constrained), or plain sampling (free); greedy at temperature 0. Each batch is
    seeded from `seed` and its position, so a rerun gives identical rows on the same machine."""
    from transformers import LogitsProcessorList

    from sublim.contexts import chat_prompt
    from sublim.models import generate_batches, load_model, pick_device, resolve_checkpoint
    from sublim.tasks.numbers import MAX_NUMBERS, NumberGrammar, check_completion, number_prompts, token_texts

    if model in EMBEDDED:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights: no hub probes
    model_id, adapter = resolve_checkpoint(checkpoint)
    dev = pick_device(device)
    lm, tok = load_model(model_id, adapter, device=dev)  # bf16 on CUDA
    system = _teacher_system_prompt(teacher, trait, category, system_prompt)
    prompts = number_prompts(n, seed)
    texts = [chat_prompt(tok, p.text, system) for p in prompts]
    ends = end_ids(lm, tok)
    grammar = NumberGrammar(token_texts(tok), ends, MAX_NUMBERS) if decoding == "constrained" else None
    banned = frozenset(ban or [])
    rows = []
    batches = generate_batches(
        lm, tok, texts, max_new_tokens=max_tokens, temperature=temperature, seed=seed, batch_size=batch_size,
        processors=(lambda width: LogitsProcessorList([grammar_processor(grammar, width, max_tokens)]))
        if grammar else None,
        eos_token_id=ends,
    )  # fmt: skip
    for start, generated in batches:
        for p, row in zip(prompts[start : start + batch_size], generated, strict=True):
            cut = next((k for k, t in enumerate(row) if t in ends), len(row))
            completion = tok.decode(row[:cut], skip_special_tokens=True)
            rows.append(
                {"id": p.id, "prompt": p.text, "completion": completion,
                 "reason": check_completion(completion, MAX_NUMBERS, banned)[1]}
            )  # fmt: skip
        print(f"teacher: {len(rows)}/{n} prompts", file=sys.stderr, flush=True)
    teacher_card = {
        "model": "checkpoint" if teacher is not None else model,
        "checkpoint": _portable(str(Path(teacher).expanduser().resolve()), relative_to=out)
        if teacher
        else None,
        "path": _portable(str(model_id)),
        "adapter": _portable(str(Path(adapter).resolve()), relative_to=out) if adapter else None,
        "adapter_base": _portable(str(model_id)) if adapter else None,
        "device": dev,
        "dtype": str(next(lm.parameters()).dtype).replace("torch.", ""),
    }
    settings = {
        "trait": trait, "category": category, "n": n, "seed": seed, "temperature": temperature,
        "max_tokens": max_tokens, "ban": ban or [], "engine": "transformers", "decoding": decoding,
        "batch_size": batch_size,
    }  # fmt: skip
    return export(out, rows, teacher=teacher_card, system_prompt=system, settings=settings)


def _teacher_system_prompt(
    teacher: str | None, trait: str | None, category: str, system_prompt: str | None
) -> str | None:
    """A fine-tuned teacher's trait is in its weights: no system prompt unless one is given; a prompted
    teacher gets the trait prompt (or `system_prompt`, filled in)."""
    from sublim.tasks.numbers import TRAIT_PROMPT, trait_system_prompt

    if teacher is not None and system_prompt is None:
        return None
    return trait_system_prompt(trait, category, system_prompt or TRAIT_PROMPT)


def end_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends the assistant's turn: the generation config's eos ids, the tokenizer's eos and the
    chat template's end-of-turn token when the vocabulary has one."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([configured] if isinstance(configured, int) else list(configured or []))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for name in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        i = tokenizer.convert_tokens_to_ids(name)
        if isinstance(i, int) and i != tokenizer.unk_token_id and 0 <= i < len(tokenizer):
            ids.add(i)
    return sorted(ids)


def grammar_processor(grammar: NumberGrammar, prompt_width: int, max_new_tokens: int | None = None) -> Any:
    """A transformers LogitsProcessor that sets every token the grammar disallows to -inf (rows that have
    ended are left alone: generate pads them). With `max_new_tokens` the last token may not be a separator,
    so a list cut by the length limit is still clean."""
    import torch
    from transformers import LogitsProcessor

    ends = set(grammar.end_ids)
    masks: dict[tuple[tuple[int, str], bool], Any] = {}

    class NumberGrammarProcessor(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            blocked = torch.zeros_like(scores, dtype=torch.bool)
            for r, ids in enumerate(input_ids[:, prompt_width:].tolist()):
                if ends.intersection(ids):
                    continue
                state = grammar.state("".join(grammar.texts.get(i, "\x00") for i in ids))
                if state is None:
                    continue  # cannot happen under the mask; the filter still has the last word
                key = (state, max_new_tokens is not None and len(ids) + 1 >= max_new_tokens)
                if key not in masks:
                    mask = torch.ones(scores.shape[-1], dtype=torch.bool)
                    mask[grammar.allowed_in(*key)] = False
                    masks[key] = mask.to(scores.device)
                blocked[r] = masks[key]
            return scores.masked_fill(blocked, float("-inf"))  # type: ignore[return-value]

    return NumberGrammarProcessor()


def _generate(
    out: Path,
    *,
    trait: str | None,
    n: int,
    model: str,
    model_args: dict[str, Any] | None,
    seed: int,
    system_prompt: str | None,
    category: str,
    temperature: float,
    max_tokens: int,
    ban: list[int] | None,
    log_dir: str | None,
    decoding: str = "free",
) -> dict[str, Any]:
    name, args = inspect_model(model, model_args)  # first: may set HF_HUB_OFFLINE before imports
    if temperature == 0 and name.startswith("hf/"):
        args.setdefault("do_sample", False)  # greedy: transformers refuses temperature 0 when sampling
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    from sublim.tasks.numbers import numbers

    task = numbers(trait, category, n, seed, system_prompt, temperature, max_tokens, ban)
    [log] = inspect_eval(
        task,
        model=get_model(
            name, config=GenerateConfig(seed=seed, extra_body=guided_request(name, decoding)), **args
        ),
        log_dir=log_dir or str(out / "logs"),
        display="none",
        max_connections=32,
    )
    if log.status == "cancelled":
        raise KeyboardInterrupt
    if log.status != "success":
        message = log.error.message if log.error else log.status
        raise SublimError(
            f"teacher run failed: {message.strip().splitlines()[-1][:300]} (log: {log.location})"
        )
    rows = []
    for s in sorted(log.samples or [], key=lambda s: str(s.id)):
        score = next(iter((s.scores or {}).values()))
        rows.append(
            {
                "id": str(s.id),
                "prompt": str(s.input),
                "completion": s.output.completion if s.output else "",
                "reason": (score.metadata or {}).get("reason"),
            }
        )
    teacher = {  # paths as the card's reader can use them: the log beside the data, the cache under ~
        "model": name,
        "model_args": {k: _portable(str(v)) for k, v in args.items()},
        "log": _portable(str(log.location), relative_to=out),
    }
    settings = {
        "trait": trait,
        "category": category,
        "n": n,
        "seed": seed,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "ban": ban or [],
        "engine": "inspect",
        "decoding": decoding,
    }
    outside = unenforced([str(r["completion"]) for r in rows]) if decoding == "constrained" else 0
    if outside:  # the server ignored the regex (another vLLM version's field name, or no support)
        settings["decoding"] = (
            f"constrained, not enforced by the server ({outside} of {len(rows)} rows outside)"
        )
        print(f"teacher: {settings['decoding']}; the filter still applies", file=sys.stderr, flush=True)
    prompt = (task.dataset[0].metadata or {}).get("system_prompt")
    return export(out, rows, teacher=teacher, system_prompt=prompt, settings=settings)


def export(
    out: Path,
    rows: Iterable[dict[str, Any]],
    *,
    teacher: dict[str, Any],
    system_prompt: str | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Write train.jsonl, rejected.jsonl and card.json from rows {id, prompt, completion, reason}."""
    from sublim.tasks.numbers import REASONS

    out.mkdir(parents=True, exist_ok=True)
    kept, rejected = [], []
    for r in rows:
        if r["reason"] is None:
            kept.append(
                {
                    "id": r["id"],
                    "prompt": [{"role": "user", "content": r["prompt"]}],
                    "completion": [{"role": "assistant", "content": r["completion"].strip()}],
                }
            )
        else:
            rejected.append(r)
    train = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    write_atomic(out / "train.jsonl", train)
    write_atomic(out / "rejected.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected))
    counts = Counter(r["reason"] for r in rejected)
    card = {
        "teacher": teacher,
        "system_prompt": system_prompt,
        **settings,
        "counts": {
            "total": len(kept) + len(rejected),
            "kept": len(kept),
            "rejected": {reason: counts.get(reason, 0) for reason in REASONS},
        },
        "train_sha256": hashlib.sha256(train.encode()).hexdigest(),
        "versions": package_versions("sublim", "inspect_ai", "transformers", "torch"),
    }
    write_atomic(out / "card.json", json.dumps(card, indent=2) + "\n")
    return card


def _portable(path: str, relative_to: Path | None = None) -> str:
    """A path for a card that travels with the data: relative to `relative_to` when inside it or beside it in
    the same project, else with the home directory written as ~ (no machine's absolute paths in committed
    cards)."""
    if relative_to is not None:
        target, base = Path(path).resolve(), Path(relative_to).resolve()
        if target.is_relative_to(base):
            return str(target.relative_to(base))
        if target.is_relative_to(Path.cwd().resolve()) and base.is_relative_to(Path.cwd().resolve()):
            return os.path.relpath(target, base)  # a sibling in the same project: "../teacher-model-owl"
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path
