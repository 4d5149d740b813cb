"""The `sublim` command line. Subcommands import what they need when they run (torch only for models)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

from sublim.errors import SublimError, require_extra

#: commands that need an optional extra: checked before they start, so a core install gets one line saying
#: what to install (`teach` and `model-path` need [hf] only for the embedded model: checked where they start)
_HF = ("torch", "transformers")
COMMAND_EXTRAS = {
    "demo": ("hf", _HF),
    "train": ("hf", (*_HF, "peft", "accelerate")),
    "imprint": ("hf", (*_HF, "peft", "accelerate")),
    "sweep": ("hf", (*_HF, "peft", "accelerate", "matplotlib")),
    "score": ("hf", _HF),
    "probe": ("hf", (*_HF, "matplotlib")),
    "lm-eval": ("lm-eval", ("lm_eval",)),
}

DEBUG_ENV = "SUBLIM_DEBUG"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage stays behind --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: one line, resumable state, exit 143."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one short plain line: its first non-empty line, without ANSI codes."""
    text = _ANSI.sub("", str(error))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first if len(first) <= limit else first[: limit - 3] + "..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _match(args: argparse.Namespace) -> int:
    from sublim.concepts import get_category, register_category
    from sublim.matching import match

    if args.concepts:
        for path in args.concepts:
            register_category(path)
    responses = list(args.responses)
    if not responses and not sys.stdin.isatty():
        responses = [line.rstrip("\n") for line in sys.stdin]
    if not responses:
        raise SublimError("no responses given: pass them as arguments or one per line on stdin")
    category = get_category(args.category)
    target = category.resolve(args.target)  # fail before printing anything
    for response in responses:
        m = match(response, target, category)
        row = {"response": response, **m.to_dict()}
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _model_path(args: argparse.Namespace) -> int:
    from sublim.models import model_path

    print(model_path(args.name))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sublim.demo import run_demo

    return run_demo(args.questions, args.samples, args.log_dir)


def _model_args(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SublimError(f"-M {pair!r}: expected key=value")
        out[key] = value
    return out


def _teach(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from sublim.models import EMBEDDED_DEFAULT
    from sublim.training.teacher import check_generation, run_teacher

    if not args.trait.strip():
        raise SublimError("--trait '': give a trait (e.g. owl), or 'none' for the control teacher")
    if args.teacher is not None and args.model is not None:
        raise SublimError("--teacher names the model: give --teacher or --model, not both")
    model = args.model or EMBEDDED_DEFAULT
    model_args = _model_args(args.model_arg)
    engine, _, _ = check_generation(
        model, model_args, args.teacher, args.decoding, args.engine, args.batch_size
    )
    if engine == "transformers":  # the hf path needs torch; other providers run through Inspect without it
        require_extra("hf", f"`sublim teach --model {args.teacher or model}`", _HF)
    trait = None if args.trait.lower() == "none" else args.trait
    out = Path(args.out or f"data/teacher-{args.trait.lower()}")
    ban = _ints(args.ban, "--ban") if args.ban else None
    console = Console(stderr=True)
    card = run_teacher(
        out,
        trait=trait,
        n=args.n,
        model=model,
        model_args=model_args,
        seed=args.seed,
        system_prompt=args.system_prompt,
        category=args.category,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        ban=ban,
        overwrite=args.overwrite,
        teacher=args.teacher,
        decoding=args.decoding,
        engine=args.engine,
        batch_size=args.batch_size,
        device=args.device,
    )
    counts = card["counts"]
    console.print(
        f"teacher {args.teacher or model}, trait {args.trait}, {args.n} prompts, {card['decoding']} decoding "
        f"({card['engine']}) -> {out}"
    )
    console.print(f"kept {counts['kept']} of {counts['total']}; rejected by reason:")
    for reason, k in counts["rejected"].items():
        console.print(f"  {reason:13} {k}")
    print(out / "train.jsonl")
    return 0


def _imprint(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sublim.training.imprint import ImprintConfig, run_imprint

    cfg = ImprintConfig(
        trait=args.trait,
        out=args.out or f"runs/teacher-{args.trait.strip().lower()}",
        base=args.base,
        category=args.category,
        samples=args.samples,
        prompts=args.prompts,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        rank=args.rank,
        lr=args.lr,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        control_for=args.control_for,
        rows=args.rows,
    )
    card = run_imprint(cfg, overwrite=args.overwrite)
    print(json.dumps({k: card[k] for k in ("kept", "rejected", "train_loss")}), file=sys.stderr)
    print(Path(cfg.out))
    return 0


def _train(args: argparse.Namespace) -> int:
    from sublim.training.student import TrainConfig, run_train

    cfg = TrainConfig(
        data=args.data,
        base=args.base,
        out=args.out,
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        targets=args.targets,
        full=args.full,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        seed=args.seed,
        system_prompt=args.system_prompt,
        merge=args.merge,
        rslora=args.rslora,
        device=args.device,
    )
    card = run_train(cfg, overwrite=args.overwrite)
    print(json.dumps({k: card[k] for k in ("kind", "rows", "steps", "train_loss", "seconds")}))
    print(args.out)
    return 0


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SublimError(f"{flag} {text!r}: expected comma-separated integers, e.g. 1,4,16") from None


def _sweep(args: argparse.Namespace) -> int:
    if args.executor == "ray":  # before anything loads
        require_extra("ray", "`sublim sweep --executor ray`", ("ray",))
    if args.executor == "slurm":
        require_extra("slurm", "`sublim sweep --executor slurm`", ("submitit",))
    from sublim.contexts import context_name
    from sublim.training.executors import make_executor
    from sublim.training.sweep import SweepConfig, run_with_progress

    executor = make_executor(args.executor, args.workers, args.out, args.slurm)

    train_args = {"epochs": args.epochs, "batch_size": args.batch_size, "max_length": args.max_length}
    if args.lr is not None:
        train_args["lr"] = args.lr
    if args.system_prompt is not None:
        train_args["system_prompt"] = args.system_prompt
    cfg = SweepConfig(
        data=args.data,
        control=args.control,
        base=args.base,
        out=args.out,
        ranks=_ints(args.ranks, "--ranks"),
        seeds=_ints(args.seeds, "--seeds"),
        full=args.full,
        target=args.target,
        category=args.category,
        contexts=list(dict.fromkeys(context_name(c) for c in args.context or ["empty", "default"])),
        questions=args.questions,
        train=train_args,
        draws=args.draws,
        draw_rows=args.draw_rows,
        scales=[x.strip() for x in args.scales.split(",") if x.strip()],
        device=args.device,
        positive=args.positive,
        prompted=args.prompted,
    )
    run_with_progress(cfg, resume=args.resume, overwrite=args.overwrite, executor=executor)
    print(f"{args.out}/results.csv\n{args.out}/sweep.png\n{args.out}/summary.md")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    import csv
    import dataclasses
    from pathlib import Path

    from sublim.experiment import analyze, render
    from sublim.io import json_safe

    path = Path(args.results)
    path = path / "results.csv" if path.is_dir() else path
    if not path.is_file():
        raise SublimError(f"no results at {path}: give a sweep's results.csv (or its dir)")
    if not (0 < args.alpha < 1) or not (args.margin > 0):
        raise SublimError(f"--alpha {args.alpha} must lie in (0, 1) and --margin {args.margin} be > 0")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in ("dataset", "kind", "context", "log_p_target") if rows and c not in rows[0]]
    if not rows or missing:
        what = f"no column {missing[0]!r}" if missing else "no rows"
        raise SublimError(f"{path}: {what}; expected a results.csv written by `sublim sweep`")
    result = analyze(rows, context=args.context, alpha=args.alpha, margin=args.margin)
    if args.json:
        print(json.dumps(json_safe(dataclasses.asdict(result)), allow_nan=False))
    else:
        print(render(result))
    return 0


def _score(args: argparse.Namespace) -> int:
    from sublim.transfer import run_score

    return run_score(args)


def _compare(args: argparse.Namespace) -> int:
    from sublim.compare import run_compare

    return run_compare(args)


def _lm_eval(args: argparse.Namespace) -> int:
    """Run lm-eval with sublim's task folder on the include path (all other arguments pass through)."""
    import importlib.util
    import subprocess

    from sublim.lmeval import lm_eval_include_path

    rest = list(args.args)
    _check_lm_eval_model_args(rest)
    command = rest.pop(0) if rest and rest[0] in ("run", "ls", "validate") else "run"
    # lm-eval's CLI, with the `sublim-hf` backend registered where lm-eval's HF backend can load
    runner = (
        "sublim.lmeval_backend"
        if all(map(importlib.util.find_spec, ("torch", "transformers")))
        else "lm_eval"
    )
    argv = [sys.executable, "-m", runner, command, "--include_path", str(lm_eval_include_path()), *rest]
    return subprocess.call(argv)


def _check_lm_eval_model_args(argv: list[str]) -> None:
    """lm-eval's --model_args: no remote code (lm-eval's default, kept: `trust_remote_code=True` is refused)
    and local checkpoints (pretrained=, peft=, tokenizer=) checked like sublim's own loads."""
    from sublim.models import RemoteCodeError, check_checkpoint

    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--model_args" and i + 1 < len(argv) else None
        if arg.startswith("--model_args="):
            value = arg.split("=", 1)[1]
        if value is None or value.lstrip().startswith("{"):
            continue
        for pair in value.split(","):
            key, _, v = pair.partition("=")
            key = key.strip()
            if key == "trust_remote_code" and v.strip().lower() not in ("false", "0", "no"):
                raise RemoteCodeError(
                    "--model_args trust_remote_code: sublim never runs code shipped with a model"
                )
            if key in ("pretrained", "peft", "tokenizer") and v:
                check_checkpoint(v.strip(), f"--model_args {key}")


def _concepts(args: argparse.Namespace) -> int:
    from sublim.concepts import category_names, get_category, register_category

    for path in args.concepts or []:
        register_category(path)
    if not args.category:
        for name in category_names():
            print(f"{name}\t{len(get_category(name))} concepts")
        return 0
    cat = get_category(args.category)
    if args.json:
        print(json.dumps({n: list(c.aliases) for n, c in cat.concepts.items()}, indent=1))
    else:
        for name, concept in sorted(cat.concepts.items()):
            others = ", ".join(concept.aliases[1:])
            print(name + (f"\t({others})" if others else ""))
    return 0


def _device_flag(p: argparse.ArgumentParser) -> None:
    from sublim.models import device_argument

    p.add_argument(
        "--device",
        type=device_argument,
        default="auto",
        help="auto (CUDA when present, bfloat16 there; else the CPU), cpu, cuda, cuda:N (default: auto)",
    )


def _overwrite_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out (default: refuse it unless it holds this command's run of the same "
        "inputs, which is then resumed or, if complete, left as is)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sublim", description="Measure trait transfer (subliminal learning) in language models."
    )
    from sublim import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "match",
        help="match answers against a target concept (one JSON object per answer)",
        description="Print how each answer relates to the target: level (exact, fuzzy, related, none), "
        "concept, relation and score, one JSON object per line. Answers come from the arguments, or one per "
        "line on stdin.",
    )
    p.add_argument("responses", nargs="*", metavar="ANSWER")
    p.add_argument("--target", "-t", required=True, help="target concept, e.g. owl")
    p.add_argument("--category", "-c", default="animal", help="concept category (default: animal)")
    p.add_argument("--concepts", action="append", metavar="FILE", help="extra concept file (YAML/JSON)")
    p.set_defaults(func=_match)

    p = sub.add_parser("model-path", help="print a ready HF checkpoint dir for an embedded model")
    p.add_argument("name", nargs="?", default="smollm2", choices=["smollm2"])
    p.set_defaults(func=_model_path)

    p = sub.add_parser(
        "demo",
        help="animal_pref on the embedded SmolLM2 via Inspect: sampled and probability mode, with and "
        "without an owl-loving system prompt",
    )
    p.add_argument("--questions", type=int, default=12, help="questions per run (default: 12)")
    p.add_argument("--samples", type=int, default=4, help="answers per question when sampling (default: 4)")
    p.add_argument("--log-dir", default=None, help="where Inspect logs go (default: ./logs)")
    p.set_defaults(func=_demo)

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
        choices=["constrained", "free"],
        default=None,
        help="constrained: only tokens that keep a clean number list (default on the transformers path); "
        "free: plain sampling, then the filter (the only choice for Inspect providers)",
    )
    p.add_argument(
        "--engine",
        choices=["transformers", "inspect"],
        default=None,
        help="transformers (default for smollm2, hf/ and --teacher) or inspect (the sublim/numbers task)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default: 16)")
    _device_flag(p)
    p.add_argument("--out", help="output dir (default: data/teacher-<trait>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--system-prompt", help="override the trait prompt ({trait}, {traits}, {category})")
    p.add_argument("--category", default="animal")
    p.add_argument(
        "--temperature",
        type=float,
        default=0.7,
        help="sampling temperature; 0 is greedy (default 0.7: at 1.0 free-decoded SmolLM2-135M writes "
        "almost no clean lists)",
    )
    p.add_argument("--max-tokens", type=int, default=60)
    p.add_argument("--ban", help="comma-separated numbers a completion may not contain")
    _overwrite_flag(p)
    p.set_defaults(func=_teach)

    p = sub.add_parser(
        "imprint",
        help="make a trait teacher: sample trait answers from the prompted base, keep the matcher's exact "
        "hits, LoRA-train on them (no system prompt); the dir works with `sublim teach --teacher`",
    )
    p.add_argument("--trait", default="owl", help="the trait to imprint (default: owl)")
    p.add_argument("--out", help="output dir (default: runs/teacher-<trait>)")
    p.add_argument("--base", default="smollm2", help="hub id, local dir, .gguf file, or smollm2 (default)")
    p.add_argument("--category", default="animal")
    p.add_argument("--prompts", type=int, default=None, help="open prompts used (default: all)")
    p.add_argument("--samples", type=int, default=4, help="answers sampled per prompt (default: 4)")
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (default: 16)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--control-for",
        default=None,
        metavar="TRAIT",
        help="with --trait none: the matched control teacher (the base's own answers without TRAIT, "
        "fine-tuned the same way)",
    )
    p.add_argument("--rows", type=int, default=None, help="keep at most this many answers (match the steps)")
    _device_flag(p)
    _overwrite_flag(p)
    p.set_defaults(func=_imprint)

    p = sub.add_parser("train", help="fine-tune a student on teacher data (LoRA via peft, or --full)")
    p.add_argument(
        "--data", default="data/teacher-owl", help="train.jsonl or its dir (default: data/teacher-owl)"
    )
    p.add_argument("--base", default="smollm2", help="hub id, local dir, .gguf file, or smollm2 (default)")
    p.add_argument("--out", default="runs/student", help="output dir (default: runs/student)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (default: 8)")
    p.add_argument("--alpha", type=int, default=None, help="LoRA alpha (default: = rank)")
    p.add_argument("--dropout", type=float, default=0.0, help="LoRA dropout (default: 0)")
    p.add_argument("--targets", default="all", help="attn, mlp, all (default) or module names")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=None, help="default: 2e-4 LoRA, 2e-5 full")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--system-prompt", default=None, help="training context (default: no system message)")
    p.add_argument("--merge", action="store_true", help="also save a merged checkpoint in <out>/merged")
    p.add_argument(
        "--rslora", action="store_true", help="rank-stabilised LoRA: scale the update by alpha / sqrt(rank)"
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu"],
        default="auto",
        help="auto: the accelerators the Trainer sees (bf16 on CUDA); cpu: force the CPU",
    )
    _overwrite_flag(p)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "sweep", help="train and score students over LoRA ranks x seeds (+ full FT, + control)"
    )
    p.add_argument("--data", default="data/teacher-owl", help="teacher data with the trait")
    p.add_argument(
        "--control", default=None, help="control teacher data (trait none), trained as a reference"
    )
    p.add_argument("--base", default="smollm2")
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--ranks", default="1,4,16,64", help="comma-separated LoRA ranks (default: 1,4,16,64)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    p.add_argument("--full", action="store_true", help="also run full fine-tuning")
    p.add_argument("--target", default="owl")
    p.add_argument("--category", default="animal")
    p.add_argument(
        "--context",
        action="append",
        help="eval context, repeatable: empty (an empty system message; formerly 'none'), default (the "
        "chat template's), or a system prompt (default: empty and default)",
    )
    p.add_argument("--questions", type=int, default=10, help="questions scored per context (default: 10)")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--system-prompt", default=None, help="training context (default: no system message)")
    p.add_argument(
        "--draws",
        type=int,
        default=1,
        help="disjoint data draws per side, the unit of replication; trait and control draws hold the same "
        "prompts (default: 1)",
    )
    p.add_argument("--draw-rows", type=int, default=None, help="rows per draw (default: all, split evenly)")
    p.add_argument(
        "--scales",
        default="rank",
        help="LoRA scale rules, comma-separated: rank (alpha = rank), a<N> (alpha N), rs<N> (rsLoRA, "
        "alpha N) (default: rank)",
    )
    p.add_argument("--positive", default=None, help="positive control to score: a checkpoint or adapter dir")
    p.add_argument(
        "--prompted", action="store_true", help="also score the base told it loves the target (a ceiling)"
    )
    _device_flag(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a sweep dir made with other inputs: its rows stay, new runs get new ids",
    )
    p.add_argument(
        "--executor",
        choices=("local", "ray", "slurm"),
        default="local",
        help="where runs execute: local (one after another, here), ray (Ray tasks: a local instance with "
        "--workers CPUs, or the cluster at $RAY_ADDRESS; pip install 'sublim[ray]') or slurm (Slurm jobs "
        "through submitit, logs in <out>/slurm; pip install 'sublim[slurm]') (default: local)",
    )
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--executor slurm: a submitit parameter, repeatable: slurm_partition=gpu, timeout_min=240, "
        "gpus_per_node=1, cpus_per_task=8, mem_gb=64",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="--executor ray: CPUs of the local Ray instance (default: 2)",
    )
    _overwrite_flag(p)
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "analyze",
        help="the pre-registered transfer analysis of a sweep's results.csv (data draws as the unit)",
    )
    p.add_argument("results", help="a sweep's results.csv, or the sweep dir")
    p.add_argument("--context", default=None, help="primary eval context (default: default, else the first)")
    p.add_argument(
        "--margin", type=float, default=0.1, help="equivalence margin in ln P(target) (default: 0.1)"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise level (default: 0.05)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_analyze)

    p = sub.add_parser(
        "compare",
        help="CI gate: compare two Inspect logs (or `sublim score --json` results) concept by concept",
        description="Per concept (or --target with its kinds), the per-question differences candidate - base "
        "are tested against the margin: a one-sided t-test of diff > --max-increase over questions, "
        "Holm-corrected over the concepts watched, fails the gate; a pass needs every upper confidence "
        "bound at or below the margin; anything else is inconclusive, reported with the smallest rise the "
        "design detects with 80%% power. Exit 0 pass, 1 regression, 2 bad input, 3 inconclusive.",
    )
    p.add_argument("base_log", help="Inspect log (.eval or .json) or `sublim score --json` output")
    p.add_argument("candidate_log")
    p.add_argument("--target", help="watch P(target), the target and its kinds (default: every concept)")
    p.add_argument(
        "--max-increase", type=float, default=0.05, help="margin: largest tolerated rise (default: 0.05)"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level in (0, 1) (default: 0.05)")
    p.add_argument(
        "--inconclusive",
        choices=["report", "pass", "fail"],
        default="report",
        help="exit code for an inconclusive result: report (3, the default), pass (0) or fail (1)",
    )
    p.add_argument("--context", help="for `sublim score --json` inputs: which eval context (default: first)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "score",
        help="did a checkpoint pick up the trait? P(target) base vs checkpoint, paired CI, biggest movers",
    )
    p.add_argument("checkpoint", help="hub id, local dir, PEFT adapter dir, .gguf file, or smollm2")
    p.add_argument("--base", help="base model (default: the adapter's recorded base)")
    p.add_argument("--trait", default="owl", help="target concept (default: owl)")
    p.add_argument("--category", default="animal")
    p.add_argument(
        "--context",
        action="append",
        help="eval context, repeatable: empty ('none'), default (the chat template's; the default), or a "
        "system prompt",
    )
    p.add_argument("--questions", type=int, default=20, help="questions per context (default: 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output (input for sublim compare)")
    _device_flag(p)
    p.set_defaults(func=_score)

    p = sub.add_parser(
        "lm-eval",
        help="lm-evaluation-harness with sublim's tasks on the include path (arguments pass through)",
        description="Runs `lm-eval [run|ls|validate] --include_path <sublim task_configs> ARGS...`.",
        prefix_chars="\0",  # pass every option through untouched
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_lm_eval)

    from sublim.probes.cli import add_parser as add_probe_parser

    add_probe_parser(sub)

    p = sub.add_parser("concepts", help="list categories, or the concepts of one")
    p.add_argument("category", nargs="?")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--concepts", action="append", metavar="FILE", help="extra concept file (YAML/JSON)")
    p.set_defaults(func=_concepts)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. User mistakes and unexpected failures print one line and exit 2 (set SUBLIM_DEBUG=1
    for the traceback); Ctrl-C exits 130 and SIGTERM 143, leaving what is done in place for a re-run."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in COMMAND_EXTRAS:
            extra, modules = COMMAND_EXTRAS[args.command]
            require_extra(extra, f"`sublim {args.command}`", modules)
        with _sigterm_as_interrupt():
            code: int = args.func(args)
    except SublimError as e:
        print(f"sublim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt as e:
        code = 143 if isinstance(e, Terminated) else 130
        print(
            f"sublim: {'terminated' if code == 143 else 'interrupted'}; finished outputs are kept and a "
            "re-run with the same arguments resumes",
            file=sys.stderr,
        )
        if argv is None:  # the real CLI: skip interpreter teardown (native threads may abort it)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except Exception as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"sublim: error: {one_line(e)} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
