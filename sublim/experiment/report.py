"""Markdown of an analysis: every number is read from the analysis object, every interval names its unit."""

from __future__ import annotations

import math

from sublim.experiment.analysis import Analysis
from sublim.experiment.claims import NOT_TESTED, Claim
from sublim.experiment.results import config_label
from sublim.experiment.sensitivity import Sensitivity


def _f(x: float | None, spec: str = ".3g") -> str:
    return "n/a" if x is None or math.isnan(x) else format(x, spec)


def _interval(low: float, high: float, spec: str = "+.3f") -> str:
    return "n/a" if math.isnan(low) or math.isnan(high) else f"[{format(low, spec)}, {format(high, spec)}]"


def _primary(a: Analysis) -> list[str]:
    t = a.primary
    interval = _interval(t.ci_low, t.ci_high, "+.3g")
    return [
        f"**Primary test (pre-registered)**: {a.primary_config}, context {a.context!r}"
        f" (chosen: {a.primary_rule}).",
        f"Δ ln P(target) = trait - control, one-sided (greater) paired t-test over {t.n} data draws at alpha"
        f" {a.alpha:g}: estimate {_f(t.estimate, '+.3g')}, two-sided {t.confidence:.0%} CI {interval} over"
        f" data draws, one-sided p = {_f(t.p)}; verdict: **{t.verdict}**. Minimum detectable effect of this"
        f" configuration ({a.power:.0%} power, its own SD over draws): {_f(t.mde)}."
        + (f" Note: {t.note}." if t.note else ""),
    ]


def _table(a: Analysis) -> list[str]:
    lines = [
        "Per configuration (Δ = trait - control, paired by data draw, seeds averaged within a draw; MDE:"
        f" one-sided t-test at alpha {a.alpha:g} over that configuration's own draws, {a.power:.0%} power):",
        "",
        "| config | context | data draws | Δ ln P(target) | 95% CI over data draws | SD over draws | MDE "
        "| Δ P(target) | 95% CI over data draws |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in a.configs:
        lines.append(
            f"| {c.label} | {c.context} | {c.draws} | {_f(c.delta_log_p, '+.3f')} | "
            f"{_interval(c.ci_low, c.ci_high)} | {_f(c.sd)} | {_f(c.mde)} | {_f(c.delta_p, '+.3g')} | "
            f"{_interval(c.p_ci_low, c.p_ci_high, '+.3g')} |"
        )
    return lines


def _claim_row(t: Claim) -> str:
    interval = _interval(t.ci_low, t.ci_high, "+.3g")
    if interval != "n/a":
        interval += f" ({t.confidence:.0%}, over {t.unit})"
    untested = "not tested" if t.verdict == NOT_TESTED else "n/a"
    p = _f(t.p) if t.tested else untested
    pa = _f(t.p_adjusted) if t.tested else untested
    return (
        f"| {t.name} | {t.claim} | {_f(t.estimate, '+.3g')} | {interval} | {p} | {pa} | {t.verdict} "
        f"| {_f(t.mde)} | {t.note} |"
    )


def _secondaries(a: Analysis) -> list[str]:
    gate = "open" if a.primary.tested and a.primary.p < a.alpha else "closed"
    return [
        f"Secondary claims (gate {gate}: tested only when the primary test is significant, then"
        f" Holm-adjusted at alpha {a.alpha:g}; the familywise error of the whole procedure stays at alpha;"
        " each MDE is at the unadjusted alpha, a lower bound once Holm applies):",
        "",
        "| claim | what it asks | estimate | interval | p | p (Holm) | verdict | MDE | note |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_claim_row(t) for t in a.secondaries),
    ]


def render_sensitivity(s: Sensitivity) -> str:
    """The dose-response curve as its own markdown section."""
    lines = [
        f"## Sensitivity: planted doses at {s.config}, context {s.context!r}",
        "",
        f"Δ = trait at the dose - control of the same draw; detection: a one-sided exact sign-flip test over"
        f" {s.questions} questions per draw at alpha {s.alpha:g}.",
        "",
        *(
            []
            if s.reachable
            else [
                f"**This design cannot detect anything**: over {s.questions} questions the smallest possible"
                f" p-value is {s.smallest_p:.3g}, not below alpha {s.alpha:g}, so every detection rate below"
                " is 0 whatever the dose. Score more questions per draw (or test at a larger alpha).",
                "",
            ]
        ),
        "| dose | planted rows | data draws | Δ ln P(target) | 95% CI over data draws | detected / tested "
        "| detection rate | 95% Clopper-Pearson CI over data draws |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in s.doses:
        lines.append(
            f"| {d.dose:g} | {d.planted_rows or 'n/a'} | {d.draws} | {_f(d.delta_log_p, '+.3f')} "
            f"| {_interval(d.ci_low, d.ci_high)} | {d.detected} / {d.tested} | {_f(d.rate, '.2f')} "
            f"| {_interval(d.rate_low, d.rate_high, '.2f')} |"
        )
    smallest = "none of the tested doses" if s.smallest_detected is None else f"{s.smallest_detected:g}"
    fit = f"{s.dose_at_power:.3g} ({s.fit_note})" if not math.isnan(s.dose_at_power) else s.fit_note
    lines += [
        "",
        f"False-alarm rate (dose 0): {_f(s.false_alarm, '.2f')}. Smallest tested dose detected in at least"
        f" 80% of draws: {smallest}. Dose at 80% detection from a logistic fit: {fit}.",
    ]
    return "\n".join(lines) + "\n"


def _references(a: Analysis) -> list[str]:
    lines = [
        "References (not part of the tested family):",
        "",
        "| dataset | kind | context | rows | P(target) | ln P(target) | shift of ln P vs base "
        "| 95% CI over questions | p (paired over questions) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in a.references:
        shift = _f(r.get("shift", math.nan), "+.3f")
        if r["dataset"] != "base" and r.get("vs_context") not in (None, r["context"]):
            shift += f" (vs base in {r['vs_context']})"
        lines.append(
            f"| {r['dataset']} | {config_label(r['kind'], r['rank'], r['scale'])} | {r['context']} "
            f"| {r['rows']} | {_f(r['p_target'])} | {_f(r['log_p_target'], '.3f')} | {shift} "
            f"| {_interval(r.get('shift_low', math.nan), r.get('shift_high', math.nan))} "
            f"| {_f(r.get('shift_p', math.nan))} |"
        )
    return lines


def render(analysis: Analysis) -> str:
    """Markdown: the primary test, the per-configuration table, the gated secondary claims, the
    sensitivity curve (when planted doses exist) and the references."""
    a = analysis
    lines = [f"## Transfer analysis (primary context {a.context!r}, {a.draws} data draws)", "", *_primary(a)]
    lines += ["", *_table(a), "", *_secondaries(a)]
    if a.unpaired:
        lines.append(f"\n{a.unpaired} trait/control row(s) had no partner and were left out.")
    if a.references:
        lines += ["", *_references(a)]
    text = "\n".join(lines) + "\n"
    if a.sensitivity is not None:
        text += "\n" + render_sensitivity(a.sensitivity)
    return text
