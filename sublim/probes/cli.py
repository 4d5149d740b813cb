"""`sublim probe digits | divergence | entangle`: arguments, output files and readable tables.

Each probe writes `<out>/report.json` and one PNG, and prints a table (or the report with --json).
Contexts take the same words as elsewhere: "empty" (an empty system message; "none" still works),
"default" (no system message: the chat template's default) or a system prompt.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sublim.cli_options import add_category, add_device, add_json, add_out, add_overwrite, add_seed

#: `--max-number` at most: the numbers a teacher writes are 0-999
MAX_NUMBER = 1000


def add_parser(sub: Any) -> None:
    probe = sub.add_parser(
        "probe", help="diagnostics: digit confidence, divergent teacher tokens, entangled numbers"
    )
    kinds = probe.add_subparsers(dest="probe", required=True, metavar="PROBE")
    for add in (_add_digits, _add_divergence, _add_entangle, _add_gradient):
        add(kinds)


def _add_digits(kinds: Any) -> None:
    p = kinds.add_parser(
        "digits",
        help="next-digit confidence on random number strings, base vs student",
        description="Teacher-force seeded random number lists and measure, at each digit position, the mass "
        "on digit tokens, the max probability, the entropy over digit tokens and its gap to uniform.",
    )
    p.add_argument("model", help="base model: hub id, dir, .gguf, smollm2, or an adapter dir")
    p.add_argument(
        "--adapter", "--student", dest="student", help="student: PEFT adapter dir or full checkpoint"
    )
    p.add_argument("--prompts", type=int, default=64, help="seeded prompts (default: 64)")
    p.add_argument("--numbers", type=int, default=8, help="numbers per forced answer (default: 8)")
    add_seed(p)
    p.add_argument(
        "--context",
        default="default",
        help="eval context: default, empty (formerly none), or a system prompt",
    )
    _common(p, "digits")


def _add_divergence(kinds: Any) -> None:
    p = kinds.add_parser(
        "divergence",
        help="where a trait teacher's completions depend on its trait prompt; export the divergent rows",
        description="Teacher-force each completion under the trait context and the plain context; report "
        "per-token KL, argmax flips and first divergent positions; write the rows with flips as train.jsonl.",
    )
    p.add_argument("--teacher", default="smollm2", help="the teacher model (default: smollm2)")
    p.add_argument("--trait", default="owl", help="the teacher's trait (default: owl)")
    p.add_argument("--data", required=True, help="teacher data: a `sublim teach` dir or its train.jsonl")
    p.add_argument("--system-prompt", help="trait context's system prompt (default: the trait template)")
    p.add_argument(
        "--plain", default="default", help="plain context: default, empty (formerly none), or a system prompt"
    )
    add_category(p)
    p.add_argument("--limit", type=int, help="score only the first N rows")
    p.add_argument("--min-flips", type=int, default=1, help="flips that make a row divergent (default: 1)")
    _common(p, "divergence")


def _add_entangle(kinds: Any) -> None:
    p = kinds.add_parser(
        "entangle",
        help="numbers a trait prompt makes likelier, and whether loving them raises P(trait)",
        description="Direction 1: the first-number distribution of number-continuation answers, trait vs "
        "plain context. Direction 2: P(trait) under a prompt loving each of the most raised, most lowered "
        "and random numbers, vs the plain context on the same questions.",
    )
    p.add_argument("model", help="hub id, dir, .gguf, smollm2, or an adapter dir")
    p.add_argument("--trait", default="owl", help="trait concept (default: owl)")
    add_category(p)
    p.add_argument("--system-prompt", help="trait context's system prompt (default: the trait template)")
    p.add_argument(
        "--plain", default="default", help="plain context: default, empty (formerly none), or a system prompt"
    )
    p.add_argument("--prompts", type=int, default=16, help="number prompts for direction 1 (default: 16)")
    p.add_argument("--max-number", type=int, default=1000, help="score numbers below this (default: 1000)")
    p.add_argument("--top", type=int, default=6, help="raised, lowered and random numbers tried (default: 6)")
    p.add_argument("--questions", type=int, default=6, help="questions per number prompt (default: 6)")
    add_seed(p)
    _common(p, "entangle")


def _add_gradient(kinds: Any) -> None:
    p = kinds.add_parser(
        "gradient",
        help="screen data before training: would one step on each row move ln P(target)? (first order)",
        description="Per row, the first-order change in the mean ln P(target) over the bank's questions from "
        "one gradient step on the row: -<grad loss(row), grad ln P(target)>. With --control (rows sharing "
        "prompts), the paired trait - control difference with its t-interval, rows as units.",
    )
    p.add_argument("model", help="the student's starting model: hub id, dir, .gguf, smollm2")
    p.add_argument("--data", required=True, help="rows to screen: a `sublim teach` dir or its train.jsonl")
    p.add_argument("--control", help="control rows (same prompts): a `sublim teach` dir or train.jsonl")
    p.add_argument("--target", default="owl", help="trait concept (default: owl)")
    add_category(p)
    p.add_argument(
        "--context", default="default", help="eval context of ln P: default, empty, or a system prompt"
    )
    p.add_argument(
        "--questions", type=int, default=None, help="bank questions ln P averages over (default: all)"
    )
    p.add_argument(
        "--params", default="all", help="weights a step moves: all, or name fragments (mlp,q_proj)"
    )
    p.add_argument("--limit", type=int, help="screen only the first N rows of each dataset")
    p.add_argument("--batch-size", type=int, default=8, help="rows per pair of forward passes (default: 8)")
    _common(p, "gradient")


def _common(p: argparse.ArgumentParser, kind: str) -> None:
    add_out(p, f"runs/probe-{kind}", f"output dir (default: runs/probe-{kind})")
    add_json(p, "print the report as JSON")
    add_device(p)
    add_overwrite(p, "this probe's run of the same inputs")
    p.set_defaults(func=run)


def check(args: argparse.Namespace) -> None:
    """Every setting of a probe, checked before anything loads."""
    from sublim.errors import SublimError

    problems = []
    if args.probe == "digits":
        if args.prompts < 2:
            problems.append(f"--prompts {args.prompts}: need at least 2 (a confidence interval needs two)")
        if args.numbers < 1:
            problems.append(f"--numbers {args.numbers}: must be >= 1")
    elif args.probe == "divergence":
        if args.limit is not None and args.limit < 2:
            problems.append(f"--limit {args.limit}: need at least 2 rows (a confidence interval needs two)")
        if args.min_flips < 1:
            problems.append(f"--min-flips {args.min_flips}: must be >= 1")
    elif args.probe == "gradient":
        from sublim.probes.gradient import read_data

        for flag, value, least in (
            ("--questions", args.questions, 1),
            ("--limit", args.limit, 2),
            ("--batch-size", args.batch_size, 1),
        ):
            if value is not None and value < least:
                problems.append(f"{flag} {value}: must be >= {least}")
        _concept_or_problem(args.target, args.category, problems)
        if not problems:  # a missing or malformed file fails here, not after the model loads
            read_data(args.data)
            if args.control:
                read_data(args.control)
    else:
        for flag, value, least in (
            ("--prompts", args.prompts, 2), ("--max-number", args.max_number, 2), ("--top", args.top, 1),
            ("--questions", args.questions, 2),
        ):  # fmt: skip
            if value < least:
                problems.append(f"{flag} {value}: must be >= {least}")
        if args.max_number > MAX_NUMBER:  # the teacher language: integers 0-999
            problems.append(
                f"--max-number {args.max_number}: must be <= {MAX_NUMBER} (teacher numbers are 0-999)"
            )
    if args.probe in ("divergence", "entangle") and not args.system_prompt:
        from sublim.tasks.numbers import trait_system_prompt

        if not trait_system_prompt(args.trait, args.category):
            problems.append("give a --trait (not 'none') or a --system-prompt for the trait context")
    if problems:
        raise SublimError("; ".join(problems))
    from sublim.models import check_checkpoint

    for key, role in (("model", "model"), ("teacher", "teacher"), ("student", "student")):
        if getattr(args, key, None):
            check_checkpoint(getattr(args, key), role)
    if args.probe == "divergence":
        from sublim.probes.divergence import read_rows

        read_rows(args.data)  # a missing or malformed file fails here, not after the model loads


def _concept_or_problem(target: str, category: str, problems: list[str]) -> None:
    from sublim.concepts import get_category
    from sublim.errors import SublimError

    try:
        get_category(category).resolve(target)
    except SublimError as e:
        problems.append(str(e))


def _identity(args: argparse.Namespace) -> dict[str, Any]:
    from sublim.io import file_sha256

    ident = {k: v for k, v in vars(args).items() if k not in ("func", "out", "json", "overwrite", "command")}
    for key in ("data", "control"):
        if args.probe in ("divergence", "gradient") and getattr(args, key, None):
            data = Path(getattr(args, key))
            data = data / "train.jsonl" if data.is_dir() else data
            ident[f"{key}_sha256"] = file_sha256(data) if data.is_file() else None
    return ident


def run(args: argparse.Namespace) -> int:
    from sublim.io import claim_output

    check(args)
    inputs = [getattr(args, k, None) for k in ("model", "student", "data", "teacher", "control")]
    with claim_output(
        args.out, f"probe {args.probe}", _identity(args), inputs, overwrite=args.overwrite
    ) as claim:
        if claim.state == "complete" and (Path(args.out) / "report.json").is_file():
            print(f"{args.out}: this probe run is already complete (same inputs); nothing to do")
            print(f"{args.out}/report.json\n{args.out}/{args.probe}.png")
            return 0
        code = _run(args)
        claim.done()
    return code


def _run(args: argparse.Namespace) -> int:
    from sublim.contexts import system_prompt_for
    from sublim.io import atomic_path, json_safe, write_json

    out = Path(args.out)
    if args.probe == "digits":
        from sublim.probes import digits

        dcfg = digits.DigitsConfig(args.prompts, args.numbers, args.seed, system_prompt_for(args.context))
        report = digits.probe(args.model, args.student, dcfg, device=args.device)
        plot, show = digits.plot, _show_digits
    elif args.probe == "divergence":
        from sublim.probes import divergence

        vcfg = divergence.DivergenceConfig(
            args.trait,
            args.system_prompt,
            system_prompt_for(args.plain),
            args.category,
            args.limit,
            args.min_flips,
        )
        report = divergence.probe(args.teacher, args.data, out, vcfg, device=args.device)
        plot, show = divergence.plot, _show_divergence
    elif args.probe == "gradient":
        from sublim.probes import gradient

        gcfg = gradient.GradientConfig(
            target=args.target, category=args.category, eval_prompt=system_prompt_for(args.context),
            questions=args.questions, params=args.params, limit=args.limit, batch_size=args.batch_size,
        )  # fmt: skip
        report = gradient.probe(args.model, args.data, args.control, gcfg, device=args.device)
        plot, show = gradient.plot, _show_gradient
    else:
        from sublim.probes import entangle

        ecfg = entangle.EntangleConfig(
            args.trait, args.category, args.system_prompt, system_prompt_for(args.plain), args.prompts,
            args.max_number, args.top, args.questions, args.seed,
        )  # fmt: skip
        report = entangle.probe(args.model, ecfg, device=args.device)
        plot, show = entangle.plot, _show_entangle
    report = json_safe(report)
    write_json(out / "report.json", report)
    with atomic_path(out / f"{args.probe}.png") as png:
        plot(report, png)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        show(report)
        print(f"{out}/report.json\n{out}/{args.probe}.png")
    return 0


def _ci(d: dict[str, Any], fmt: str = ".3f") -> str:
    return f"{d['mean']:{fmt}} ({d['ci_low']:{fmt}}, {d['ci_high']:{fmt}})"


def _show_digits(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    models = report["models"]
    table = Table(
        title=f"digit confidence (95% CI over prompts); uniform entropy {report['uniform_entropy']:.3f} "
        f"over {report['digit_tokens']} digit tokens"
    )
    table.add_column("statistic")
    for name in models:
        table.add_column(name)
    if "difference" in report:
        table.add_column("student - base (paired)")
    for stat in ("digit_mass", "max_prob", "entropy", "entropy_gap"):
        cells = [_ci(m["mean"][stat]) for m in models.values()]
        if "difference" in report:
            cells.append(_ci(report["difference"][stat], "+.4f"))
        table.add_row(stat, *cells)
    Console().print(table)


def _one_based(position: int | None) -> str:
    return "none" if position is None else str(position + 1)


def _show_divergence(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = report["summary"]
    console = Console()
    console.print(
        f"{s['rows']} rows, {s['tokens']} tokens; rows with an argmax flip: {s['rows_with_flip']:.1%} "
        f"({s['divergent_rows']} exported as divergent); "
        f"mean KL per token {_ci(s['kl_per_token'], '.4f')} nats (rows as units); "
        f"digits carry {s['kl_share_digits']:.1%} of the KL on {s['token_share_digits']:.1%} of the tokens; "
        f"median first divergent position {_one_based(s['first_divergent_median'])}"
    )
    table = Table(title="by completion token position")
    for col in ("position", "rows", "KL (95% CI)", "flip rate", "first flip here"):
        table.add_column(col)
    for r in s["positions"]:
        table.add_row(
            str(r["position"] + 1), str(r["rows"]), _ci(r["kl"], ".4f"), f"{r['flip_rate']:.2f}",
            f"{r['first_divergent_here']:.2f}",
        )  # fmt: skip
    console.print(table)


def _show_entangle(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, rows in (("raised by the trait prompt", report["raised"]), ("lowered", report["lowered"])):
        table = Table(title=f"trait -> numbers: {title} (first number of the answer)")
        for col in ("number", "log p ratio (95% CI)", "p | trait", "p | plain"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["number"]), _ci(r["log_ratio"], "+.3f"), f"{r['p_trait']:.5f}", f"{r['p_plain']:.5f}"
            )
        console.print(table)
    trait = report["config"]["trait"]
    table = Table(title=f"numbers -> trait: P({trait}) under 'favorite number n' vs plain, ranked")
    for col in ("number", "group", f"P({trait})", "plain", "lift (95% CI)", "p (one-sided)"):
        table.add_column(col)
    for r in report["lift"]:
        table.add_row(
            str(r["number"]), r["group"], f"{r['p_trait']:.3g}", f"{r['p_plain']:.3g}",
            f"{r['lift']:+.2e} ({r['ci_low']:+.2e}, {r['ci_high']:+.2e})", f"{r['p_increase']:.3g}",
        )  # fmt: skip
    console.print(table)


def _show_gradient(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    target = report["config"]["target"]
    table = Table(
        title=f"first-order pull toward {target} per training row (95% CI, rows as units); "
        f"{report['parameters']:,} weights, |grad ln P| {report['trait_gradient_norm']:.3g}"
    )
    for col in ("dataset", "rows", "mean pull (95% CI)"):
        table.add_column(col)
    for name, d in report["datasets"].items():
        table.add_row(name, str(d["rows"]), _ci(d["pull"], "+.4g"))
    if "paired" in report:
        pr = report["paired"]
        p = f", one-sided p {pr['p_greater']:.3g}" if "p_greater" in pr else ""
        table.add_row(
            "data - control (paired by prompt)", str(pr["pairs"]), _ci(pr["difference"], "+.4g") + p
        )
    Console().print(table)
