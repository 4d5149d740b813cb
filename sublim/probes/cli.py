"""`sublim probe digits | divergence | entangle`: arguments, output files and readable tables.

Each probe writes `<out>/report.json` and one PNG, and prints a table (or the report with --json).
Contexts take the same words as elsewhere: "empty" (an empty system message; "none" still works),
"default" (no system message: the chat template's default) or a system prompt.
"""

from __future__ import annotations

import argparse
import json as json_module
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sublim.cli_options import add_category, add_device, add_json, add_out, add_overwrite, add_seed, keywords


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
    _common(p, "digits", digits_command)


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
    _common(p, "divergence", divergence_command)


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
    _common(p, "entangle", entangle_command)


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
    _common(p, "gradient", gradient_command)


def _common(p: argparse.ArgumentParser, kind: str, handler: Callable[..., int]) -> None:
    add_out(p, f"runs/probe-{kind}", f"output dir (default: runs/probe-{kind})")
    add_json(p, "print the report as JSON")
    add_device(p)
    add_overwrite(p, "this probe's run of the same inputs")
    p.set_defaults(func=keywords(handler))


def digits_command(
    *, model: str, student: str | None, prompts: int, numbers: int, seed: int, context: str, **run: Any
) -> int:
    """`sublim probe digits`: the flags as `sublim.probes.digits` keywords."""
    settings = _settings(locals())
    from sublim.contexts import system_prompt_for
    from sublim.probes import digits

    digits.check(model=model, student=student, prompts=prompts, numbers=numbers)
    cfg = digits.DigitsConfig(prompts, numbers, seed, system_prompt_for(context))
    return _run(
        settings,
        lambda out: digits.probe(model, student, cfg, device=run["device"]),
        digits.plot,
        _show_digits,
        **run,
    )


def divergence_command(
    *, teacher: str, trait: str, data: str, system_prompt: str | None, plain: str, category: str,
    limit: int | None, min_flips: int, **run: Any,
) -> int:  # fmt: skip
    """`sublim probe divergence`: the flags as `sublim.probes.divergence` keywords."""
    settings = _settings(locals())
    from sublim.contexts import system_prompt_for
    from sublim.probes import divergence

    divergence.check(
        teacher=teacher, data=data, trait=trait, category=category, system_prompt=system_prompt, limit=limit,
        min_flips=min_flips,
    )  # fmt: skip
    cfg = divergence.DivergenceConfig(
        trait, system_prompt, system_prompt_for(plain), category, limit, min_flips
    )
    return _run(
        settings,
        lambda out: divergence.probe(teacher, data, out, cfg, device=run["device"]),
        divergence.plot,
        _show_divergence,
        **run,
    )


def entangle_command(
    *, model: str, trait: str, category: str, system_prompt: str | None, plain: str, prompts: int,
    max_number: int, top: int, questions: int, seed: int, **run: Any,
) -> int:  # fmt: skip
    """`sublim probe entangle`: the flags as `sublim.probes.entangle` keywords."""
    settings = _settings(locals())
    from sublim.contexts import system_prompt_for
    from sublim.probes import entangle

    entangle.check(
        model=model, trait=trait, category=category, system_prompt=system_prompt, prompts=prompts,
        max_number=max_number, top=top, questions=questions,
    )  # fmt: skip
    cfg = entangle.EntangleConfig(
        trait, category, system_prompt, system_prompt_for(plain), prompts, max_number, top, questions, seed
    )
    return _run(
        settings,
        lambda out: entangle.probe(model, cfg, device=run["device"]),
        entangle.plot,
        _show_entangle,
        **run,
    )


def gradient_command(
    *, model: str, data: str, control: str | None, target: str, category: str, context: str,
    questions: int | None, params: str, limit: int | None, batch_size: int, **run: Any,
) -> int:  # fmt: skip
    """`sublim probe gradient`: the flags as `sublim.probes.gradient` keywords."""
    settings = _settings(locals())
    from sublim.contexts import system_prompt_for
    from sublim.probes import gradient

    gradient.check(
        model=model, data=data, control=control, target=target, category=category, questions=questions,
        limit=limit, batch_size=batch_size,
    )  # fmt: skip
    cfg = gradient.GradientConfig(
        target=target, category=category, eval_prompt=system_prompt_for(context), questions=questions,
        params=params, limit=limit, batch_size=batch_size,
    )  # fmt: skip
    return _run(
        settings,
        lambda out: gradient.probe(model, data, control, cfg, device=run["device"]),
        gradient.plot,
        _show_gradient,
        **run,
    )


def _settings(given: dict[str, Any]) -> dict[str, Any]:
    """A probe command's own keywords (its `locals()` on entry), without the run's: what its report depends
    on, so a flag added to a command joins its run's identity."""
    return {k: v for k, v in given.items() if k != "run"}


def _identity(probe: str, settings: dict[str, Any], device: str) -> dict[str, Any]:
    """What a probe's report depends on: its settings, the device, and the content of its data files."""
    from sublim.io import file_sha256

    ident = {"probe": probe, **settings, "device": device}
    for key in ("data", "control"):
        if settings.get(key):
            data = Path(settings[key])
            data = data / "train.jsonl" if data.is_dir() else data
            ident[f"{key}_sha256"] = file_sha256(data) if data.is_file() else None
    return ident


def _run(
    settings: dict[str, Any],
    compute: Callable[[Path], dict[str, Any]],
    plot: Callable[[dict[str, Any], Path], None],
    show: Callable[[dict[str, Any]], None],
    *,
    probe: str,
    out: str,
    json: bool,
    device: str,
    overwrite: bool,
) -> int:
    """Hold `out`, compute the report (a finished run of the same inputs is left as is), write report.json
    and the plot, print the table (or the report with --json)."""
    from sublim.io import claim_output

    inputs = [settings.get(k) for k in ("model", "student", "data", "teacher", "control")]
    with claim_output(
        out, f"probe {probe}", _identity(probe, settings, device), inputs, overwrite=overwrite
    ) as claim:
        if claim.state == "complete" and (Path(out) / "report.json").is_file():
            print(f"{out}: this probe run is already complete (same inputs); nothing to do")
            print(f"{out}/report.json\n{out}/{probe}.png")
            return 0
        _write(compute(Path(out)), Path(out), probe, plot, show, json)
        claim.done()
    return 0


def _write(
    report: dict[str, Any],
    out: Path,
    probe: str,
    plot: Callable[[dict[str, Any], Path], None],
    show: Callable[[dict[str, Any]], None],
    as_json: bool,
) -> None:
    from sublim.io import atomic_path, json_safe, write_json

    report = json_safe(report)
    write_json(out / "report.json", report)
    with atomic_path(out / f"{probe}.png") as png:
        plot(report, png)
    if as_json:
        print(json_module.dumps(report, allow_nan=False))
    else:
        show(report)
        print(f"{out}/report.json\n{out}/{probe}.png")


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
