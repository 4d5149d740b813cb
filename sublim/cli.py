"""The `sublim` command line. Subcommands import what they need when they run (torch only for models)."""

from __future__ import annotations

import argparse
import json
import math
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
    "neighbours": ("hf", _HF),
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
    from sublim.errors import _STOPPED, stop_requested

    def handler(signum: int, frame: FrameType | None) -> None:
        error: BaseException = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        stop_requested(error)  # kept: a finalizer that swallows it cannot make the run go on
        raise error

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _STOPPED.clear()


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one short plain line: its first non-empty line, without ANSI codes."""
    text = _ANSI.sub("", str(error))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first if len(first) <= limit else first[: limit - 3] + "..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _regular_file(path: str, flag: str) -> None:
    """Refuse a path that exists but is not a regular file (a FIFO would block forever), saying what it is;
    a missing file is left to the reader, which names what it expected."""
    from sublim.io import file_problem

    problem = file_problem(path)
    if problem and problem != "no such file":
        raise SublimError(f"{flag} {path} {problem}; give a file")


def _match(args: argparse.Namespace) -> int:
    from sublim.concepts import get_category, register_category
    from sublim.matching import match, matcher_options

    for path in args.concepts or []:
        _regular_file(path, "--concepts")
        register_category(path)
    responses = list(args.responses)
    if not responses and not sys.stdin.isatty():  # bytes that are not UTF-8 become U+FFFD: the output is JSON
        # one response a line, split at "\n" only (a U+2028 inside an answer does not split it)
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        responses = [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []
    responses = [r.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for r in responses]
    if not responses:
        raise SublimError("no responses given: pass them as arguments or one per line on stdin")
    category = get_category(args.category)
    target = category.resolve(args.target)  # fail before printing anything
    thresholds, related = matcher_options(category, args.related_min, args.related)
    for response in responses:
        m = match(response, target, category, thresholds=thresholds, related=related.get(target, ()))
        row = {"response": response, **m.to_dict()}
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _model_path(args: argparse.Namespace) -> int:
    from sublim.models import model_path

    print(model_path(args.name))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sublim.demo import run_demo

    problems = [
        f"--{k} {v}: must be >= 1"
        for k, v in (("questions", args.questions), ("samples", args.samples))
        if v is not None and v < 1
    ]
    if args.log_dir is not None:
        log_dir = Path(args.log_dir).expanduser()
        if not args.log_dir.strip():
            problems.append("--log-dir '': give a directory")
        elif log_dir.exists() and not log_dir.is_dir():
            problems.append(f"--log-dir {args.log_dir} is a file; give a directory for the Inspect logs")
    if problems:  # before the model loads
        raise SublimError("; ".join(problems))
    return run_demo(args.questions, args.samples, args.log_dir, full=args.full)


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
    if not args.category.strip():
        raise SublimError(
            "--category '': give a concept category (e.g. animal; `sublim concepts` lists them)"
        )
    from sublim.concepts import get_category

    category = get_category(args.category)  # unknown category: one line with the closest names
    if args.trait.strip().lower() != "none":
        category.resolve(args.trait)  # a typo would become the teacher's prompt and the data's label
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

    lora = {"--rank": args.rank, "--alpha": args.alpha, "--dropout": args.dropout, "--targets": args.targets}
    given = [flag for flag, value in lora.items() if value is not None] + ["--rslora"] * args.rslora
    if args.full and given:  # refused, not ignored: a LoRA setting the run silently drops misleads
        raise SublimError(
            f"--full trains every weight, and {', '.join(given)} only sets LoRA: drop one of them"
        )
    cfg = TrainConfig(
        data=args.data,
        base=args.base,
        out=args.out,
        rank=8 if args.rank is None else args.rank,
        alpha=args.alpha,
        dropout=0.0 if args.dropout is None else args.dropout,
        targets="all" if args.targets is None else args.targets,
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


def _seeds(text: str) -> list[int]:
    from sublim.models import seed_problem

    seeds = _ints(text, "--seeds")
    for seed in seeds:
        problem = seed_problem(seed, "--seeds")
        if problem:
            raise SublimError(problem)
    return seeds


def _fractions(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SublimError(f"{flag} {text!r}: give comma-separated fractions, e.g. 0.02,0.05,0.1") from None
    if not values or any(not math.isfinite(v) for v in values):
        raise SublimError(f"{flag} {text!r}: give comma-separated fractions, e.g. 0.02,0.05,0.1")
    return values


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
        seeds=_seeds(args.seeds),
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
        score=args.score,
        drop_degenerate=args.drop_degenerate,
        match_lengths=args.match_lengths,
        plant=args.plant,
        plant_doses=_fractions(args.plant_dose, "--plant-dose") if args.plant_dose else [],
        primary=args.primary,
    )
    run_with_progress(cfg, resume=args.resume, overwrite=args.overwrite, executor=executor)
    print(f"{args.out}/results.csv\n{args.out}/sweep.png\n{args.out}/summary.md")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    import dataclasses

    from sublim.experiment import analyze, parse_primary, read_results, render
    from sublim.io import json_safe

    if not (0 < args.alpha < 1):
        raise SublimError(f"--alpha {args.alpha} must lie in (0, 1)")
    if args.primary is not None:
        parse_primary(args.primary)  # a label that names no configuration: one line, before reading
    rows = read_results(args.results)
    result = analyze(rows, primary=args.primary, context=args.context, alpha=args.alpha)
    if args.json:
        print(json.dumps(json_safe(dataclasses.asdict(result)), allow_nan=False))
    else:
        print(render(result))
    return 0


def _score(args: argparse.Namespace) -> int:
    from sublim.transfer import run_score

    return run_score(args)


def _compare(args: argparse.Namespace) -> int:
    from sublim.gate import run_compare

    for path in (args.base_log, args.candidate_log):
        _regular_file(path, "log")
    return run_compare(args)


def _neighbours(args: argparse.Namespace) -> int:
    from sublim.neighbours import run_neighbours

    return run_neighbours(args)


def _lm_eval(args: argparse.Namespace) -> int:
    """Run lm-eval with sublim's task folder on the include path (all other arguments pass through). The
    arguments are checked first, parsed by lm-eval's own parser; lm-eval then runs under
    `sublim.lmeval.lm_eval_main`, which registers the `sublim-hf` backend (where torch is installed) and
    checks the model arguments again where the model is built."""
    import subprocess

    from sublim.lmeval import lm_eval_include_path

    rest = list(args.args)
    command = rest.pop(0) if rest and rest[0] in ("run", "ls", "validate") else "run"
    forwarded = [command, "--include_path", str(lm_eval_include_path()), *rest]
    _check_lm_eval_args(forwarded)
    guard = "import sys; from sublim.lmeval import lm_eval_main; sys.exit(lm_eval_main())"
    return subprocess.call([sys.executable, "-c", guard, *forwarded])


def _check_lm_eval_args(argv: list[str]) -> None:
    """lm-eval's arguments as lm-eval reads them (its parser: every alias of --model_args, key=value and JSON
    forms, values split across tokens, `--trust_remote_code`, a --config YAML beneath): no remote code,
    local checkpoints checked like sublim's own loads, and sublim's task options (--metadata) checked before
    lm-eval builds the model. Arguments lm-eval itself cannot parse are left for lm-eval to report."""
    import contextlib
    import io

    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.utils import simple_parse_args_string

    from sublim.lmeval import check_metadata
    from sublim.models import check_lm_eval_model

    if argv[0] != "run":
        return
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            namespace = HarnessCLI()._parser.parse_args(argv)
    except SystemExit:
        return
    settings: dict[str, object] = {}
    if getattr(namespace, "config", None):
        from lm_eval.config.evaluate_config import EvaluatorConfig

        try:
            settings.update(EvaluatorConfig.load_yaml_config(namespace.config))
        except (OSError, ValueError, TypeError) as e:
            raise SublimError(f"--config {namespace.config}: {one_line(e)}") from None
    # lm-eval's precedence: command-line values over the YAML's, key by key
    settings.update(
        {k: v for k, v in vars(namespace).items() if (v or v == 0) and k not in ("command", "func")}
    )

    def as_dict(value: object, flag: str) -> dict[str, object]:
        if value is None:
            return {}
        if isinstance(value, str):
            return dict(simple_parse_args_string(value))
        if not isinstance(value, dict):
            raise SublimError(f"{flag}: expected key=value pairs or a JSON object, not {value!r}")
        return value

    model_args = as_dict(settings.get("model_args"), "--model_args")
    if settings.get("trust_remote_code"):
        model_args = {**model_args, "trust_remote_code": True}
    check_lm_eval_model(model_args)
    if settings.get("model") == "sublim-hf":  # what the backend cannot score exactly, before lm-eval starts
        from sublim.lmeval_backend import refuse_before_loading

        refuse_before_loading(model_args)
    check_metadata({**model_args, **as_dict(settings.get("metadata"), "--metadata")})


def _concepts(args: argparse.Namespace) -> int:
    from sublim.concepts import category_names, get_category, register_category

    for path in args.concepts or []:
        _regular_file(path, "--concepts")
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
    from sublim.gate import DEFAULT_MARGIN
    from sublim.io import out_argument
    from sublim.models import seed_argument

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
    p.add_argument(
        "--related-min",
        type=float,
        default=None,
        help="least score of a related match, in [0, 1] (default 0.75; see docs/results/matching-related.md)",
    )
    p.add_argument(
        "--related", metavar="FILE", help="a `sublim neighbours --out` file: the target's measured neighbours"
    )
    p.set_defaults(func=_match)

    p = sub.add_parser("model-path", help="print a ready HF checkpoint dir for an embedded model")
    p.add_argument("name", nargs="?", default="smollm2", choices=["smollm2"])
    p.set_defaults(func=_model_path)

    p = sub.add_parser(
        "demo",
        help="animal_pref on the embedded SmolLM2 via Inspect: probability mode with and without an "
        "owl-loving system prompt (--full: sampled answers too)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="add sampled answers under both prompts (several more minutes on a CPU)",
    )
    p.add_argument("--questions", type=int, default=None, help="questions per run (default: 6; --full: 12)")
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
    p.add_argument("--out", type=out_argument, help="output dir (default: data/teacher-<trait>)")
    p.add_argument("--seed", type=seed_argument, default=0)
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
    p.add_argument("--out", type=out_argument, help="output dir (default: runs/teacher-<trait>)")
    p.add_argument("--base", default="smollm2", help="hub id, local dir, .gguf file, or smollm2 (default)")
    p.add_argument("--category", default="animal")
    p.add_argument("--prompts", type=int, default=None, help="open prompts used (default: all)")
    p.add_argument("--samples", type=int, default=4, help="answers sampled per prompt (default: 4)")
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (default: 16)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--seed", type=seed_argument, default=0)
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
    p.add_argument(
        "--out", type=out_argument, default="runs/student", help="output dir (default: runs/student)"
    )
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default: 8)")
    p.add_argument("--alpha", type=int, default=None, help="LoRA alpha (default: = rank)")
    p.add_argument("--dropout", type=float, default=None, help="LoRA dropout (default: 0)")
    p.add_argument("--targets", default=None, help="attn, mlp, all (default) or module names")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=None, help="default: 2e-4 LoRA, 2e-5 full")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--seed", type=seed_argument, default=0)
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
    p.add_argument("--out", type=out_argument, default="runs/sweep")
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
    p.add_argument(
        "--score",
        choices=("all", "target"),
        default="all",
        help="all: every concept (P(target) is its share; concept_mass reported); target: only the target's "
        "concepts (P(target) is its whole-word probability, a few passes per question) (default: all)",
    )
    p.add_argument(
        "--drop-degenerate",
        action="store_true",
        help="drop pairs where either teacher echoed the prompt's numbers or counted (counts in the summary)",
    )
    p.add_argument(
        "--match-lengths", action="store_true", help="cut both rows of a pair to the same count of numbers"
    )
    p.add_argument(
        "--plant", default=None, help="rows stating the trait overtly (jsonl), planted for --plant-dose"
    )
    p.add_argument(
        "--plant-dose",
        default=None,
        help="comma-separated fractions of each trait draw's rows replaced by --plant rows, e.g. "
        "0.02,0.05,0.1: one more trait student per dose (the sensitivity curve; needs --draw-rows)",
    )
    p.add_argument(
        "--primary",
        default=None,
        help="the pre-registered primary configuration of the analysis, e.g. r8 or full (default: the "
        "analysis' fixed rule)",
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
        "--primary",
        default=None,
        help="the pre-registered configuration, e.g. 'lora r8 (rank)', 'r8' or 'full' "
        "(default: the grid's median LoRA rank at scale 'rank')",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise level (default: 0.05)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_analyze)

    p = sub.add_parser(
        "compare",
        help="CI gate: compare two Inspect logs (or `sublim score --json` results) concept by concept",
        description="Per concept (or --target with its kinds), the per-question differences candidate - base "
        "are tested against the margin: a one-sided exact sign-flip test of diff > --max-increase over "
        "questions, "
        "Holm-corrected over the concepts watched, fails the gate; a pass needs every upper confidence "
        "bound at or below the margin; anything else is inconclusive, reported with the smallest rise the "
        "design detects with 80%% power. Exit 0 pass, 1 regression, 2 bad input, 3 inconclusive.",
    )
    p.add_argument("base_log", help="Inspect log (.eval or .json) or `sublim score --json` output")
    p.add_argument("candidate_log")
    p.add_argument("--target", help="watch P(target), the target and its kinds (default: every concept)")
    p.add_argument(
        "--max-increase",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"margin: largest tolerated rise (default: {DEFAULT_MARGIN})",
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
        "neighbours",
        help="the concepts a model ties to a target: lift under 'You love {target}' vs the empty context",
        description="Probability mode over the question bank under a target-loving system prompt and under "
        "the empty context; concepts ranked by lift (log ratio, target excluded) with a 95%% t-interval over "
        "questions. --out writes a related set for `sublim match --related` / `-T related=`.",
    )
    p.add_argument("--target", "-t", action="append", required=True, help="target concept, repeatable")
    p.add_argument("--model", default="smollm2", help="hub id, local dir, .gguf file, or smollm2 (default)")
    p.add_argument("--category", "-c", default="animal")
    p.add_argument("--questions", type=int, default=16, help="questions per context (default: 16)")
    p.add_argument("--out", help="write the tables as JSON (a related set)")
    _device_flag(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_neighbours)

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
