"""The `sublim` command line. Subcommands import what they need when they run (torch only for models)."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

from sublim.cli_options import add_device as _device_flag
from sublim.cli_options import add_overwrite as _overwrite_flag
from sublim.cli_options import int_list as _ints
from sublim.errors import SublimError, one_line, require_extra

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


def _seeds(text: str) -> list[int]:
    from sublim.cli_options import seed_problem

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


def build_parser() -> argparse.ArgumentParser:
    """The `sublim` parser: each command's arguments come from the module that runs it."""
    from sublim import __version__, demo, gate, lmeval, match_cli, models, neighbours, trait_shift
    from sublim.probes import cli as probes_cli
    from sublim.training import cli as training_cli

    parser = _Parser(
        prog="sublim", description="Measure trait transfer (subliminal learning) in language models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    match_cli.add_match_parser(sub)
    models.add_parser(sub)  # model-path
    demo.add_parser(sub)
    training_cli.add_parsers(sub)  # teach, imprint, train
    _add_sweep_parser(sub)
    _add_analyze_parser(sub)
    gate.add_parser(sub)  # compare
    trait_shift.add_parser(sub)  # score
    neighbours.add_parser(sub)
    lmeval.add_parser(sub)  # lm-eval
    probes_cli.add_parser(sub)  # probe digits | divergence | entangle | gradient
    match_cli.add_concepts_parser(sub)
    return parser


def _add_sweep_parser(sub: Any) -> None:
    """sweep (its parser stays here, unchanged, until the sweep package takes it)."""
    from sublim.io import out_argument

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


def _add_analyze_parser(sub: Any) -> None:
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
