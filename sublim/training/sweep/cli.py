"""`sublim sweep`: its flags and the handler that turns them into a `SweepConfig`."""

from __future__ import annotations

import argparse
import math
from typing import Any

from sublim.cli_options import add_device as _device_flag
from sublim.cli_options import add_overwrite as _overwrite_flag
from sublim.cli_options import int_list as _ints
from sublim.errors import SublimError, require_extra


def add_parser(sub: Any) -> None:
    """sweep: its flags, defaults read from `SweepConfig` and `TrainConfig`."""
    from sublim.cli_options import defaults_of, field_flags
    from sublim.training.config import TrainConfig
    from sublim.training.sweep.config import SweepConfig

    p = sub.add_parser(
        "sweep", help="train and score students over LoRA ranks x seeds (+ full FT, + control)"
    )
    _grid_flags(p, defaults_of(SweepConfig), defaults_of(TrainConfig))
    _data_flags(p)
    _run_flags(p)
    field_flags(p, contexts="--context", plant_doses="--plant-dose")
    p.set_defaults(func=run)


def _grid_flags(p: Any, d: dict[str, Any], t: dict[str, Any]) -> None:
    """What is trained and scored: data, base, grid, target, contexts, training settings, references."""
    from sublim.io import out_argument

    p.add_argument("--data", default="data/teacher-owl", help="teacher data with the trait")
    p.add_argument(
        "--control", default=None, help="control teacher data (trait none), trained as a reference"
    )
    p.add_argument("--base", default=d["base"])
    p.add_argument("--out", type=out_argument, default=d["out"])
    ranks = ",".join(map(str, d["ranks"]))
    p.add_argument("--ranks", default=ranks, help=f"comma-separated LoRA ranks (default: {ranks})")
    seeds = ",".join(map(str, d["seeds"]))
    p.add_argument("--seeds", default=seeds, help=f"comma-separated training seeds (default: {seeds})")
    p.add_argument("--full", action="store_true", help="also run full fine-tuning")
    p.add_argument("--target", default=d["target"])
    p.add_argument("--category", default=d["category"])
    p.add_argument(
        "--context",
        action="append",
        help="eval context, repeatable: empty (an empty system message; formerly 'none'), default (the "
        f"chat template's), or a system prompt (default: {' and '.join(d['contexts'])})",
    )
    p.add_argument(
        "--questions",
        type=int,
        default=d["questions"],
        help=f"questions scored per context (default: {d['questions']})",
    )
    p.add_argument("--epochs", type=float, default=float(t["epochs"]))
    p.add_argument("--lr", type=float, default=t["lr"])
    p.add_argument("--batch-size", type=int, default=t["batch_size"])
    p.add_argument("--max-length", type=int, default=t["max_length"])
    p.add_argument("--system-prompt", default=None, help="training context (default: no system message)")
    p.add_argument(
        "--scales",
        default=",".join(d["scales"]),
        help="LoRA scale rules, comma-separated: rank (alpha = rank), a<N> (alpha N), rs<N> (rsLoRA, "
        f"alpha N) (default: {','.join(d['scales'])})",
    )
    p.add_argument("--positive", default=None, help="positive control to score: a checkpoint or adapter dir")
    p.add_argument(
        "--prompted", action="store_true", help="also score the base told it loves the target (a ceiling)"
    )
    p.add_argument(
        "--score",
        choices=("all", "target"),
        default=d["score"],
        help="all: every concept (P(target) is its share; concept_mass reported); target: only the target's "
        "concepts (P(target) is its whole-word probability, a few passes per question) (default: all)",
    )
    p.add_argument(
        "--primary",
        default=None,
        help="the pre-registered primary configuration of the analysis, e.g. r8 or full (default: the "
        "analysis' fixed rule)",
    )


def _data_flags(p: Any) -> None:
    """How the teacher data becomes draws: draws, cleaning, length matching, planted doses."""
    p.add_argument(
        "--draws",
        type=int,
        default=1,
        help="disjoint data draws per side, the unit of replication; trait and control draws hold the same "
        "prompts (default: 1)",
    )
    p.add_argument("--draw-rows", type=int, default=None, help="rows per draw (default: all, split evenly)")
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


def _run_flags(p: Any) -> None:
    """Where and how the runs execute, and what happens to an existing --out."""
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


def run(args: argparse.Namespace) -> int:
    if args.executor == "ray":  # before anything loads
        require_extra("ray", "`sublim sweep --executor ray`", ("ray",))
    if args.executor == "slurm":
        require_extra("slurm", "`sublim sweep --executor slurm`", ("submitit",))
    from sublim.cli_options import defaults_of
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
        contexts=list(
            dict.fromkeys(context_name(c) for c in args.context or defaults_of(SweepConfig)["contexts"])
        ),
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
