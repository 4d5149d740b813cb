"""`sublim train`: fine-tune a student on teacher data with the transformers Trainer (LoRA via peft, or full).

The loss covers the completion tokens only (prompt tokens get label -100). The training context is chosen
with `system_prompt` (None: no system message, so the chat template's default applies, as at evaluation).
Output: the adapter (or full model) + tokenizer + `run.json` with every hyperparameter, the data's sha256 and
the result, loadable by `inspect eval ... --model hf/local -M model_path=<out>` and by lm-eval
(`pretrained=<base>,peft=<out>`). Multi-GPU: plain Trainer, so `accelerate launch -m sublim train ...` works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from sublim.errors import ConfigError, FieldProblem, SublimError, raise_problems
from sublim.io import (
    check_output,
    claim_output,
    file_problem,
    file_sha256,
    json_safe,
    package_versions,
    read_jsonl,
    write_atomic,
)
from sublim.training.config import TARGET_PRESETS as TARGET_PRESETS  # its home before training.config
from sublim.training.config import TrainConfig as TrainConfig
from sublim.training.config import target_modules as target_modules

RUN_CARD = "run.json"


def check_launch(cfg: TrainConfig) -> None:
    """What the values cannot show: how this process was launched (`accelerate launch` with FSDP or
    DeepSpeed shards the weights, so no process can merge them)."""
    raise_problems(cfg.value_problems())  # a field may have been set since the config was made
    if cfg.merge and _sharded_launch():
        raise ConfigError(
            FieldProblem(
                "merge",
                "{merge} under FSDP/DeepSpeed: the weights are sharded across processes; train without "
                "{merge}, then merge on one process (load base + adapter, merge_and_unload)",
                lead=False,
                refs=("merge",),
            )
        )


def _sharded_launch() -> bool:
    """Launched by `accelerate launch` with an FSDP or DeepSpeed config (it tells the processes so)."""
    return any(os.environ.get(f"ACCELERATE_USE_{k}", "").lower() == "true" for k in ("FSDP", "DEEPSPEED"))


def check_base_files(cfg: TrainConfig) -> None:
    """What a local base dir shows without loading it, checked before --out is claimed: a tokenizer with a
    chat template (every row is rendered with it) and, for LoRA, at least one --targets module among the
    weights' names (read from the safetensors headers). Hub ids and .gguf files are checked once loaded."""
    base = Path(cfg.base).expanduser()
    if not (base / "config.json").is_file():
        return
    tok_config = base / "tokenizer_config.json"
    if tok_config.is_file():
        try:
            templated = "chat_template" in json.loads(tok_config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            templated = True  # unreadable: the tokenizer's own loader says what is wrong
        templated = templated or any(
            (base / f).is_file() for f in ("chat_template.jinja", "chat_template.json")
        )
        if not templated:
            raise ConfigError(
                FieldProblem(
                    "base",
                    "its tokenizer has no chat template, and the training rows are chats; use an "
                    "instruct/chat checkpoint or add a chat_template to its tokenizer_config.json",
                    cfg.base,
                )
            )
    if cfg.full:
        return
    names = _weight_names(base)
    targets = target_modules(cfg.targets)
    if names and not any(m == t or m.endswith("." + t) for m in names for t in targets):
        raise ConfigError(
            FieldProblem(
                "targets",
                f"no such modules in {cfg.base} (attn, mlp and all name Llama-style modules; list others by "
                "name, e.g. q_proj,v_proj)",
                repr(cfg.targets),
            )
        )


def _weight_names(base: Path) -> set[str]:
    """The names of the modules that hold weights in a checkpoint dir, from its safetensors headers."""
    keys: set[str] = set()
    index = base / "model.safetensors.index.json"
    try:
        if index.is_file():
            keys = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}))
        for weights in sorted(base.glob("*.safetensors")):
            with weights.open("rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                if size > 1 << 27:
                    return set()
                keys |= set(json.loads(fh.read(size)))
    except (OSError, ValueError, AttributeError):
        return set()  # damaged: check_checkpoint or the loader says so
    if not keys:
        return set()
    # a tied output head has no weights of its own, but the module exists
    return {k.rsplit(".", 1)[0] for k in keys if k != "__metadata__"} | {"lm_head"}


def identity(cfg: TrainConfig) -> dict[str, Any]:
    """What a student's weights depend on: every resolved hyperparameter, the data's content and the base."""
    settings = {k: v for k, v in cfg.resolved().items() if k not in ("out", "data")}
    return {**settings, "data_sha256": file_sha256(data_file(cfg.data))}


def run_train(cfg: TrainConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """`sublim train`: check everything, hold the output dir, train (or find the same run already done)."""
    from sublim.models import check_checkpoint

    check_launch(cfg)
    load_rows(data_file(cfg.data))
    check_checkpoint(cfg.base, "--base")
    check_base_files(cfg)
    ident = identity(cfg)
    inputs = [cfg.data, cfg.base if Path(cfg.base).expanduser().exists() else None]
    if int(os.environ.get("RANK", "0")) != 0:  # accelerate: rank 0 holds the output, the others only check
        state = check_output(cfg.out, "train", ident, inputs, overwrite=overwrite)
        done = state == "complete" and (Path(cfg.out) / RUN_CARD).is_file()
        return _finished(cfg.out) if done else train(cfg)
    with claim_output(cfg.out, "train", ident, inputs, overwrite=overwrite) as claim:
        if claim.state == "complete" and (Path(cfg.out) / RUN_CARD).is_file():
            return _finished(cfg.out)
        card = train(cfg)
        claim.done()
    return card


def _finished(out: str | Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((Path(out) / RUN_CARD).read_text())
    print(f"{out}: this run is already complete (same inputs); nothing to do", flush=True)
    return card


def data_file(data: str | Path) -> Path:
    path = Path(data)
    path = path / "train.jsonl" if path.is_dir() else path
    problem = file_problem(path)
    if problem == "no such file":
        raise SublimError(f"no teacher data at {path}: run `sublim teach` first or pass a train.jsonl")
    if problem:
        raise SublimError(f"--data {path} {problem}: give a train.jsonl file or the dir that holds it")
    return path


#: message roles a training row may carry (a system message is refused: see `check_row`)
_ROLES = ("user", "assistant")


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Chat rows {id?, prompt: [messages], completion: [messages]} from a train.jsonl, every row checked
    (`check_row`) and ids unique; the first problem is one SublimError naming the file and line. The one
    reader of teacher data: `train`, `sweep` and the probes all read through it."""
    rows = []
    seen: dict[str, int] = {}
    for i, row in read_jsonl(path, "teacher data"):
        problem = check_row(row)
        if problem:
            raise SublimError(f"{path}:{i}: {problem}")
        if row.get("id") is not None:
            key = json.dumps(row["id"])
            if key in seen:
                raise SublimError(
                    f"{path}:{i}: id {row['id']!r} repeats line {seen[key]} (two teach outputs joined?); "
                    "give each row its own id or keep one of them"
                )
            seen[key] = i
        rows.append(row)
    if not rows:
        raise SublimError(
            f"{path} has no rows: the teacher's completions were all rejected (see rejected.jsonl)"
        )
    return rows


def check_row(row: Any) -> str | None:
    """Why a training row cannot be used as documented, or None. A system message in the row would teach
    the trait from a stated prompt (and run.json would record no system prompt), so it is refused: the
    training context is set with --system-prompt. An empty completion trains a student to say nothing."""
    expected = "expected a JSON object with 'prompt' and 'completion' message lists"
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), list):
        return expected
    if not isinstance(row.get("completion"), list):
        return expected
    if row.get("id") is not None and not isinstance(row["id"], str | int):
        return f"'id' must be a string or an integer, not {type(row['id']).__name__}"
    for part in ("prompt", "completion"):
        if not row[part]:
            return f"'{part}' is an empty list; each row needs a user prompt and an assistant completion"
        for m in row[part]:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                got = type(m.get("content")).__name__ if isinstance(m, dict) else type(m).__name__
                return f"every {part} message must be an object with a string 'content' (found {got})"
            role = m.get("role")
            if role == "system":
                return (
                    "the prompt carries a system message; training rows hold user/assistant turns only "
                    "(set the training context with --system-prompt, recorded in run.json)"
                )
            if role not in _ROLES:
                return f"{part} message role {role!r}: expected 'user' or 'assistant'"
    if row["prompt"][-1]["role"] != "user" or any(m["role"] != "assistant" for m in row["completion"]):
        return "the prompt must end with a user turn and the completion hold assistant turns only"
    if not "".join(m["content"] for m in row["completion"]).strip():
        return "the completion is empty; a student trained on it learns to answer nothing"
    return None


_LONGEST: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def char_budget(tok: Any, max_length: int) -> int:
    """Characters that `max_length` tokens can cover at most: every token spells at most as many characters
    as its longest vocabulary entry (looked up once per tokenizer), plus a margin for the cut's edge."""
    try:
        longest = _LONGEST[tok]
    except (KeyError, TypeError):
        longest = max((len(t) for t in tok.get_vocab()), default=64)
        with contextlib.suppress(TypeError):
            _LONGEST[tok] = longest
    return 2 * (max_length + 8) * max(longest, 1)


def tokenize_row(
    tok: Any, row: dict[str, Any], system_prompt: str | None, max_length: int
) -> dict[str, list[int]]:
    """input_ids and labels with the prompt masked (-100), rendered with the tokenizer's chat template.

    Each message is first cut to the characters `max_length` tokens can span (`char_budget`): the tokens
    kept are the same, and a 50 MB row costs what a long row costs instead of minutes and gigabytes."""
    budget = char_budget(tok, max_length)
    row = {
        part: [{**m, "content": m["content"][:budget]} for m in row[part]]
        for part in ("prompt", "completion")
    }
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt is not None else []) + row[
        "prompt"
    ]
    prompt_text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tok.apply_chat_template(prompt + row["completion"], tokenize=False)
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tok(full_text, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:  # template re-renders the prompt: append instead
        completion = "".join(m["content"] for m in row["completion"]) + (tok.eos_token or "")
        full_ids = prompt_ids + tok(completion, add_special_tokens=False)["input_ids"]
    labels = [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    return {
        "input_ids": full_ids[:max_length],
        "labels": labels[:max_length],
        "attention_mask": [1] * len(full_ids[:max_length]),
    }


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train one student; returns the run card (also written to out/run.json by the main process)."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    from sublim.models import causal_lm, compute_dtype, load_tokenizer, resolve_base

    check_launch(cfg)
    settings = cfg.resolved()
    path = data_file(cfg.data)
    rows = load_rows(path)
    base = str(resolve_base(cfg.base))
    set_seed(cfg.seed)
    tok = load_tokenizer(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    # a plain list of feature dicts: Trainer needs only len() and indexing (no `datasets` dependency)
    encoded = [tokenize_row(tok, r, cfg.system_prompt, cfg.max_length) for r in rows]
    model: Any = causal_lm(base)
    if not cfg.full:
        model = _with_lora(model, cfg, settings)
    scratch = Path(tempfile.mkdtemp(prefix="sublim-train-"))
    args = TrainingArguments(
        output_dir=str(scratch),  # checkpoints are not kept: the final weights go to `out`
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=settings["lr"],
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        # without an accelerator, say so: accelerate then runs several processes as MULTI_CPU (gloo)
        use_cpu=cfg.device == "cpu" or not (torch.cuda.is_available() or torch.backends.mps.is_available()),
        # mixed precision on GPUs that have it
        bf16=compute_dtype(cfg.device) == "bfloat16",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=encoded,
        data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
    )
    started = time.time()
    try:
        result = trainer.train()
    finally:  # interrupted or not: no checkpoint dir is left behind
        shutil.rmtree(scratch, ignore_errors=True)
    card = {
        "kind": "full" if cfg.full else "lora",
        "base": cfg.base,
        "base_resolved": base,
        "data": str(path),
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": len(rows),
        "hyperparameters": settings,
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "seconds": round(time.time() - started, 2),
        "world_size": args.world_size,
        "versions": package_versions("sublim", "transformers", "peft", "torch", "accelerate"),
    }
    _save(trainer, model, tok, cfg, card)
    return card


def _with_lora(model: Any, cfg: TrainConfig, settings: dict[str, Any]) -> Any:
    """`model` wrapped in a peft LoRA adapter of `cfg`'s settings; unknown target modules are one line."""
    from peft import LoraConfig, get_peft_model

    try:
        return get_peft_model(
            model,
            LoraConfig(
                r=cfg.rank,
                lora_alpha=settings["alpha"],
                lora_dropout=cfg.dropout,
                use_rslora=cfg.rslora,
                target_modules=settings["target_modules"],
                task_type="CAUSAL_LM",
            ),
        )
    except ValueError as e:
        if "not found in the base model" not in str(e):
            raise
        raise SublimError(
            f"--targets {cfg.targets!r}: no such modules in {cfg.base} (attn, mlp and all name Llama"
            "-style modules; list others by name, e.g. q_proj,v_proj)"
        ) from None


def _save(trainer: Any, model: Any, tok: Any, cfg: TrainConfig, card: dict[str, Any]) -> None:
    """Write the weights (and `merged/` with cfg.merge), the tokenizer, then the run card, into cfg.out."""
    out = Path(cfg.out)
    # FSDP and DeepSpeed gather sharded weights on every process: each calls save_model (the main one writes);
    # the dir's name is fixed so all agree on it (claim_output holds `out` for this run alone)
    sharded = bool(
        getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)
    )
    partial = out / ".partial-save"
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # a killed run's
        partial.mkdir()
    trainer.accelerator.wait_for_everyone()
    if sharded or trainer.is_world_process_zero():
        trainer.save_model(str(partial))
    if trainer.is_world_process_zero():
        tok.save_pretrained(partial)
        if cfg.merge and not cfg.full:
            merged = model.merge_and_unload()
            merged.save_pretrained(partial / "merged")
            tok.save_pretrained(partial / "merged")
        _move_into(partial, out)
        # written last: its presence marks a finished run; a NaN loss becomes null
        write_atomic(out / RUN_CARD, json.dumps(json_safe(card), indent=2, allow_nan=False) + "\n")


def _move_into(partial: Path, out: Path) -> None:
    """Rename what a save wrote into `out` (replacing a killed run's files), then drop the temp dir."""
    for entry in partial.iterdir():
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    partial.rmdir()
    for leftover in out.glob(".partial-*"):  # from a killed run
        shutil.rmtree(leftover, ignore_errors=True)
