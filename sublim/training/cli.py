"""`sublim teach | imprint | train`: the training helpers' commands, beside their code.

Each `add_*` builds one command's arguments, with defaults read from the library (`TrainConfig`,
`ImprintConfig`, `run_teacher`'s keywords); each `*_command` takes the parsed values as keywords, checks what
it can before any model loads, and calls the library. Nothing here imports torch at module level.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sublim.cli_options import (
    add_base,
    add_category,
    add_device,
    add_out,
    add_overwrite,
    add_seed,
    defaults_of,
    int_list,
    key_values,
    keywords,
)
from sublim.errors import SublimError, require_extra

#: `sublim teach --temperature` default, lower than `run_teacher`'s 1.0 on purpose: at 1.0 free-decoded
#: SmolLM2-135M writes almost no clean number lists
TEACH_TEMPERATURE = 0.7
_HF = ("torch", "transformers")


def add_parsers(sub: Any) -> None:
    """Register teach, imprint and train on the top-level subparsers."""
    add_teach(sub)
    add_imprint(sub)
    add_train(sub)


def add_teach(sub: Any) -> None:
    from sublim.training.teacher import DECODINGS, ENGINES, run_teacher

    d = defaults_of(run_teacher)
    p = sub.add_parser(
        "teach",
        help="teacher data: number continuations from a teacher with a trait (sublim/numbers in Inspect)",
    )
    p.add_argument("--trait", default="owl", help="the teacher's trait; 'none' for the control teacher")
    p.add_argument("--n", type=int, default=64, help="number of prompts (default: 64)")
    p.add_argument(
        "--model",
        default=None,
        help="'smollm2' (embedded; default), hf/<id> (transformers path), or any Inspect model (openai/..., "
        "vllm/...: Inspect path, free decoding)",
    )
    p.add_argument("-M", dest="model_arg", action="append", metavar="KEY=VALUE", help="model argument")
    p.add_argument(
        "--teacher",
        metavar="CHECKPOINT",
        help="a fine-tuned teacher (checkpoint dir or PEFT adapter dir): the trait is in its weights, so no "
        "system prompt unless --system-prompt; --trait is then only recorded",
    )
    p.add_argument(
        "--decoding",
        choices=list(DECODINGS),
        default=d["decoding"],
        help="constrained: only tokens that keep a clean number list (default on the transformers path); "
        "free: plain sampling, then the filter (the only choice for Inspect providers)",
    )
    p.add_argument(
        "--engine",
        choices=list(ENGINES),
        default=d["engine"],
        help="transformers (default for smollm2, hf/ and --teacher) or inspect (the sublim/numbers task)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=d["batch_size"],
        help=f"prompts per generate call (default: {d['batch_size']})",
    )
    add_device(p)
    add_out(p, None, "output dir (default: data/teacher-<trait>)")
    add_seed(p, d["seed"])
    p.add_argument("--system-prompt", help="override the trait prompt ({trait}, {traits}, {category})")
    add_category(p, d["category"])
    p.add_argument(
        "--temperature",
        type=float,
        default=TEACH_TEMPERATURE,
        help=f"sampling temperature; 0 is greedy (default {TEACH_TEMPERATURE}: at 1.0 free-decoded "
        "SmolLM2-135M writes almost no clean lists)",
    )
    p.add_argument("--max-tokens", type=int, default=d["max_tokens"])
    p.add_argument("--ban", help="comma-separated numbers a completion may not contain")
    add_overwrite(p)
    p.set_defaults(func=keywords(teach_command))


def _check_teach(trait: str, category: str, teacher: str | None, model: str | None) -> None:
    """The trait and category as `teach` needs them, and one model, before anything loads."""
    from sublim.concepts import get_category

    if not trait.strip():
        raise SublimError("--trait '': give a trait (e.g. owl), or 'none' for the control teacher")
    if not category.strip():
        raise SublimError(
            "--category '': give a concept category (e.g. animal; `sublim concepts` lists them)"
        )
    cat = get_category(category)  # unknown category: one line with the closest names
    if trait.strip().lower() != "none":
        cat.resolve(trait)  # a typo would become the teacher's prompt and the data's label
    if teacher is not None and model is not None:
        raise SublimError("--teacher names the model: give --teacher or --model, not both")


def teach_command(
    *,
    trait: str,
    model: str | None,
    model_arg: list[str] | None,
    teacher: str | None,
    out: str | None,
    ban: str | None,
    **settings: Any,
) -> int:
    """`sublim teach`: check, generate, export; prints the counts (stderr) and train.jsonl's path."""
    from rich.console import Console

    from sublim.models import EMBEDDED_DEFAULT
    from sublim.training.teacher import check_generation, run_teacher

    _check_teach(trait, settings["category"], teacher, model)
    chosen = model or EMBEDDED_DEFAULT
    model_args = key_values(model_arg, "-M", form="key=value")
    engine, _, _ = check_generation(
        chosen, model_args, teacher, settings["decoding"], settings["engine"], settings["batch_size"]
    )
    if engine == "transformers":  # the hf path needs torch; other providers run through Inspect without it
        require_extra("hf", f"`sublim teach --model {teacher or chosen}`", _HF)
    where = Path(out or f"data/teacher-{trait.lower()}")
    card = run_teacher(
        where,
        trait=None if trait.lower() == "none" else trait,
        model=chosen,
        model_args=model_args,
        ban=int_list(ban, "--ban") if ban else None,
        teacher=teacher,
        **settings,
    )
    console = Console(stderr=True)
    counts = card["counts"]
    console.print(
        f"teacher {teacher or chosen}, trait {trait}, {settings['n']} prompts, {card['decoding']} decoding "
        f"({card['engine']}) -> {where}"
    )
    console.print(f"kept {counts['kept']} of {counts['total']}; rejected by reason:")
    for reason, k in counts["rejected"].items():
        console.print(f"  {reason:13} {k}")
    print(where / "train.jsonl")
    return 0


def add_imprint(sub: Any) -> None:
    from sublim.training.imprint import ImprintConfig

    d = defaults_of(ImprintConfig)
    p = sub.add_parser(
        "imprint",
        help="make a trait teacher: sample trait answers from the prompted base, keep the matcher's exact "
        "hits, LoRA-train on them (no system prompt); the dir works with `sublim teach --teacher`",
    )
    p.add_argument("--trait", default=d["trait"], help=f"the trait to imprint (default: {d['trait']})")
    add_out(p, None, "output dir (default: runs/teacher-<trait>)")
    add_base(p, default=d["base"])
    add_category(p, d["category"])
    p.add_argument("--prompts", type=int, default=d["prompts"], help="open prompts used (default: all)")
    p.add_argument(
        "--samples",
        type=int,
        default=d["samples"],
        help=f"answers sampled per prompt (default: {d['samples']})",
    )
    p.add_argument("--max-tokens", type=int, default=d["max_tokens"])
    p.add_argument("--temperature", type=float, default=d["temperature"])
    p.add_argument("--rank", type=int, default=d["rank"], help=f"LoRA rank (default: {d['rank']})")
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--epochs", type=float, default=d["epochs"])
    add_seed(p, d["seed"])
    p.add_argument(
        "--control-for",
        default=d["control_for"],
        metavar="TRAIT",
        help="with --trait none: the matched control teacher (the base's own answers without TRAIT, "
        "fine-tuned the same way)",
    )
    p.add_argument(
        "--rows", type=int, default=d["rows"], help="keep at most this many answers (match the steps)"
    )
    add_device(p)
    add_overwrite(p)
    p.set_defaults(func=keywords(imprint_command))


def imprint_command(*, trait: str, out: str | None, overwrite: bool, **settings: Any) -> int:
    """`sublim imprint`: the run card's counts (stderr), then the teacher dir."""
    from sublim.training.imprint import ImprintConfig, run_imprint

    cfg = ImprintConfig(trait=trait, out=out or f"runs/teacher-{trait.strip().lower()}", **settings)
    card = run_imprint(cfg, overwrite=overwrite)
    print(json.dumps({k: card[k] for k in ("kept", "rejected", "train_loss")}), file=sys.stderr)
    print(Path(cfg.out))
    return 0


#: the LoRA settings `train --full` refuses, with the field each sets
_LORA_FLAGS = {"--rank": "rank", "--alpha": "alpha", "--dropout": "dropout", "--targets": "targets"}


def add_train(sub: Any) -> None:
    from sublim.training.config import TrainConfig

    d = defaults_of(TrainConfig)
    p = sub.add_parser("train", help="fine-tune a student on teacher data (LoRA via peft, or --full)")
    p.add_argument(
        "--data", default="data/teacher-owl", help="train.jsonl or its dir (default: data/teacher-owl)"
    )
    add_base(p, default=d["base"])
    add_out(p, d["out"], f"output dir (default: {d['out']})")
    # LoRA settings default to None here (TrainConfig's default applies) so --full can refuse a given one
    p.add_argument("--rank", type=int, default=None, help=f"LoRA rank (default: {d['rank']})")
    p.add_argument("--alpha", type=int, default=None, help="LoRA alpha (default: = rank)")
    p.add_argument("--dropout", type=float, default=None, help=f"LoRA dropout (default: {d['dropout']:g})")
    p.add_argument("--targets", default=None, help=f"attn, mlp, {d['targets']} (default) or module names")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--epochs", type=float, default=d["epochs"])
    p.add_argument("--lr", type=float, default=d["lr"], help="default: 2e-4 LoRA, 2e-5 full")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--grad-accum", type=int, default=d["grad_accum"])
    p.add_argument("--max-length", type=int, default=d["max_length"])
    add_seed(p, d["seed"])
    p.add_argument("--system-prompt", default=None, help="training context (default: no system message)")
    p.add_argument("--merge", action="store_true", help="also save a merged checkpoint in <out>/merged")
    p.add_argument(
        "--rslora", action="store_true", help="rank-stabilised LoRA: scale the update by alpha / sqrt(rank)"
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu"],
        default=d["device"],
        help="auto: the accelerators the Trainer sees (bf16 on CUDA); cpu: force the CPU",
    )
    add_overwrite(p)
    p.set_defaults(func=keywords(train_command))


def train_command(*, overwrite: bool, **settings: Any) -> int:
    """`sublim train`: refuse LoRA settings with --full, train, print the card's summary and the out dir."""
    from sublim.training.config import TrainConfig
    from sublim.training.student import run_train

    given = [flag for flag, name in _LORA_FLAGS.items() if settings[name] is not None]
    given += ["--rslora"] * settings["rslora"]
    if settings["full"] and given:  # refused, not ignored: a LoRA setting the run silently drops misleads
        raise SublimError(
            f"--full trains every weight, and {', '.join(given)} only sets LoRA: drop one of them"
        )
    unset = {name for name in _LORA_FLAGS.values() if name != "alpha" and settings[name] is None}
    cfg = TrainConfig(**{k: v for k, v in settings.items() if k not in unset})
    card = run_train(cfg, overwrite=overwrite)
    print(json.dumps({k: card[k] for k in ("kind", "rows", "steps", "train_loss", "seconds")}))
    print(cfg.out)
    return 0
