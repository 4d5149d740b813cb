"""Write docs/results/replication.md and docs/results/sensitivity.md from a run's committed files only
(run.json, draws.json, results.csv), so no number in their prose is typed by hand: every figure is read
from those files or recomputed from results.csv by `sublim.experiment`.

    .venv/bin/python scripts/replication_report.py                      # after make replicate / sensitivity
    .venv/bin/python scripts/replication_report.py --preset gpu         # replication-gpu/, sensitivity-gpu/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sublim.experiment import StudentResult, analyze, read_results, render, render_sensitivity


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default="docs/results", help="holds replication/ and sensitivity/")
    ap.add_argument("--out", default="docs/results", help="where replication.md / sensitivity.md go")
    ap.add_argument("--preset", default="cpu", help="cpu, or the preset whose -<preset> dirs to read")
    args = ap.parse_args()
    docs, out = Path(args.docs), Path(args.out)
    suffix = "" if args.preset == "cpu" else f"-{args.preset}"
    wrote = []
    for part, write in (("replication", replication), ("sensitivity", sensitivity)):
        src = docs / f"{part}{suffix}"
        if (src / "results.csv").is_file() and (src / "run.json").is_file():
            (out / f"{part}{suffix}.md").write_text(write(src))
            wrote.append(str(out / f"{part}{suffix}.md"))
    if not wrote:
        print(f"replication_report: no run under {docs}/replication or {docs}/sensitivity", file=sys.stderr)
        return 1
    print("\n".join(wrote))
    return 0


def _load(src: Path) -> tuple[dict[str, Any], dict[str, Any], list[StudentResult]]:
    run = json.loads((src / "run.json").read_text())
    draws = json.loads((src / "draws.json").read_text())
    return run, draws, read_results(src / "results.csv")


def _design(run: dict[str, Any], draws: dict[str, Any], part: str) -> list[str]:
    size, pre = run["sizes"], run["preregistration"]
    steps = -(-size["rows"] // size["batch"]) * size["epochs"]
    seconds = run.get("seconds", {})
    lines = [
        f"Machine: {run.get('machine', 'not recorded')}. Pre-registered at {run['preregistered_at']} "
        "(run.json, written before any student trained; the preset it records was committed in "
        "scripts/replicate.py before the run); commands and per-step wall times in run.json.",
        "",
        "| setting | value |",
        "|---|---|",
        f"| primary configuration | {pre['primary_config']} |",
        f"| primary test | {pre['test']}, alpha {pre['alpha']}, context '{pre['context']}' |",
        f"| outcome | {pre['outcome']} |",
        f"| data draws | {draws['draws']} disjoint draws x {draws['rows_per_draw']} rows per side |",
        f"| optimizer steps per student | {steps} (batch {size['batch']}, {size['epochs']} epoch(s)) |",
        f"| teachers | T = {size['temperature']}, constrained decoding, {size['n'] + size.get('more_n', 0)} "
        "prompts each |",
        f"| questions per context | {size['questions']} |",
    ]
    if part == "replication":
        lines.append(f"| LoRA ranks | {size['ranks']} (alpha = rank) + full fine-tuning |")
    else:
        lines.append(f"| doses | 0,{size['doses']} of each draw's rows, LoRA r{size['plant_rank']} |")
    degenerate = "; ".join(
        f"{side}: {k['echo']} echoes, {k['counting']} counting runs"
        for side, k in draws["degenerate"].items()
    )
    sides = "; ".join(
        f"{side} {v['mean_numbers']:.2f} numbers and {v['mean_characters']:.1f} characters per row"
        for side, v in draws["sides"].items()
    )
    lines += [
        "",
        f"Teacher data: {draws['paired_rows']} prompts answered by both teachers; degenerate completions "
        f"({degenerate}); {draws['dropped_degenerate_pairs']} pairs dropped; "
        f"{draws['identical_completions']} of the kept pairs have identical completions. After length "
        f"matching: {sides}.",
        "",
        "Wall time: "
        + ", ".join(f"{name} {s / 60:.1f} min" for name, s in seconds.items() if s >= 30)
        + f" (total {sum(seconds.values()) / 60:.1f} min)."
        + (
            " Teacher steps, run before and resumed: "
            + ", ".join(f"{name} {s / 60:.1f} min" for name, s in run["teacher_seconds"].items())
            + f" (total {sum(run['teacher_seconds'].values()) / 60:.1f} min; {run['teacher_seconds_note']})."
            if "teacher_seconds" in run
            else ""
        ),
        "",
    ]
    return lines


def replication(src: Path) -> str:
    run, draws, rows = _load(src)
    result = analyze(rows, primary=run["preregistration"]["primary_config"])
    first = result.primary
    lines = [
        "# Replication v2: owl numbers on SmolLM2-135M-Instruct",
        "",
        f"Written by `scripts/replication_report.py` from `{src}/` (run.json, draws.json, results.csv); the "
        "analysis is `sublim analyze` on that results.csv.",
        "",
        "## Design",
        "",
        *_design(run, draws, "replication"),
        "## Result in one paragraph",
        "",
        f"Primary test ({result.primary_config}, context '{result.context}', {first.n} data draws): "
        f"Δ ln P(owl) = {first.estimate:+.4f}, 95% CI [{first.ci_low:+.4f}, {first.ci_high:+.4f}] over data "
        f"draws, one-sided p = {first.p:.3g}: {first.verdict}. The smallest shift this configuration could "
        f"detect with 80% power is {first.mde:.4f} in ln P(owl) (a factor of {_factor(first.mde)} on "
        "P(owl))."
        + (
            " Its whole interval lies below zero: the trait students moved away from owls relative to the "
            "controls, the opposite of the pre-registered direction (an observation, not a tested claim)."
            if first.ci_high < 0
            else ""
        )
        + " Secondary claims: "
        + "; ".join(f"{c.name} {c.verdict} (estimate {_f(c.estimate)})" for c in result.secondaries)
        + ".",
        "",
        render(result),
    ]
    return "\n".join(lines) + "\n"


def sensitivity(src: Path) -> str:
    run, draws, rows = _load(src)
    size = run["sizes"]
    # results.csv is the replication's sweep dir's: keep this part's design (its rank, draws and context)
    mine = [
        r for r in rows
        if r.dataset not in ("trait", "control")
        or (r.kind == "lora" and r.rank == size["plant_rank"] and r.scale in ("", "rank")
            and (r.draw or 0) < size["plant_draws"])
    ]  # fmt: skip
    mine = [r for r in mine if r.context == run["preregistration"]["context"]]
    result = analyze(mine, primary=run["preregistration"]["primary_config"])
    curve = result.sensitivity
    if curve is None:
        raise SystemExit(f"replication_report: {src}/results.csv holds no planted doses")
    best = (
        f"{curve.smallest_detected:g} of the rows"
        if curve.smallest_detected is not None
        else "none of the tested doses"
    )
    lines = [
        "# Sensitivity: would sublim have seen it?",
        "",
        f"Written by `scripts/replication_report.py` from `{src}/`. The trait side of each draw had a "
        "fraction of its number rows replaced by rows that name the trait outright (the owl teacher's own "
        "imprint answers: open prompts answered with owls); everything else is the replication's design at "
        "one configuration.",
        "",
        "## Design",
        "",
        *_design(run, draws, "sensitivity"),
        "## Result in one paragraph",
        "",
        f"At {curve.config}, context '{curve.context}', over {curve.doses[0].draws} data draws per dose: the "
        f"false-alarm rate at dose 0 is {curve.false_alarm:.2f}; the smallest tested dose detected in at "
        f"least 80% of draws is {best}."
        + (
            f" A logistic fit puts 80% detection at a dose of {curve.dose_at_power:.3g}."
            if curve.dose_at_power == curve.dose_at_power
            else f" Logistic fit: {curve.fit_note}."
        ),
        "",
        render_sensitivity(curve),
    ]
    return "\n".join(lines) + "\n"


def _f(x: float) -> str:
    return f"{x:+.4f}" if x == x else "n/a"


def _factor(shift: float) -> str:
    import math

    return f"{math.exp(shift):.3f}" if math.isfinite(shift) else "n/a"


if __name__ == "__main__":
    raise SystemExit(main())
