"""`analyze`: the whole pre-registered analysis of a sweep's rows.

The primary configuration and context are fixed before any data exists. Given explicitly (`primary`,
`context`), or by this rule: the median LoRA rank of the grid (the lower median when the count is even) at
scale "rank", in the context "default" when the rows have it (the context training saw: students are
trained without a system message, so the chat template's default is what they learned under), else the
first context in the file. The rule reads only the grid's design (ranks, scales, contexts), never an
outcome, so it could be written down before the run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sublim.errors import ConfigError, FieldProblem, SublimError
from sublim.experiment.claims import Claim, procedure
from sublim.experiment.results import (
    ConfigKey,
    Pairs,
    by_draw,
    config_label,
    pair_rows,
    shift_from_base,
    spread,
)
from sublim.experiment.rows import StudentResult, as_result
from sublim.stats import mean_interval, minimum_detectable_shift, nanmean

if TYPE_CHECKING:
    from sublim.experiment.sensitivity import Sensitivity

#: (kind, rank or None, scale or None): a parsed --primary label
Wanted = tuple[str, int | None, str | None]
_RANKED = re.compile(r"(?:lora\s+)?r(\d+)(?:\s*\(\s*([\w-]+)\s*\))?")


@dataclass(frozen=True)
class ConfigDelta:
    """Paired differences (trait at dose 0 - control) of one configuration in one context, over data draws.

    Attributes:
        kind, rank, scale, context: the configuration (rank None and scale "" for full fine-tuning).
        draws: data draws with both sides.
        delta_log_p, ci_low, ci_high: mean Δ ln P(target) and its 95% t-interval over draws.
        sd: SD of the per-draw Δ ln P(target) over draws.
        mde: this configuration's own minimum detectable Δ ln P(target) (one-sided t-test at alpha over its
            draws, `power`); NaN without two draws and spread.
        delta_p, p_ci_low, p_ci_high: the same for Δ P(target).
        mass_trait, mass_control: mean concept_mass of each side (NaN when the sweep did not score it).
        per_draw: draw -> Δ ln P(target), the values the tests use.
    """

    kind: str
    rank: int | None
    scale: str
    context: str
    draws: int
    delta_log_p: float
    ci_low: float
    ci_high: float
    sd: float
    mde: float
    delta_p: float
    p_ci_low: float
    p_ci_high: float
    mass_trait: float
    mass_control: float
    per_draw: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return config_label(self.kind, self.rank, self.scale)


@dataclass(frozen=True)
class Analysis:
    """The whole analysis.

    Attributes:
        context: the primary eval context.
        primary_config: label of the pre-registered configuration ("lora r8 (rank)", "full").
        primary_rule: how it was chosen ("given" or the default rule, in words).
        draws: data draws with at least one pair in the primary context.
        primary: the primary test.
        secondaries: interaction, curvature and context dependence, gated on the primary.
        configs: every configuration in every context, with its own SD and MDE.
        references: mean P(target) / ln P(target) of reference rows (base, prompted, positive) per context,
            and each non-base reference's shift from the base over questions.
        sensitivity: the dose-response curve when the rows hold planted doses, else None.
        unpaired: trait/control rows without a partner (left out); no_outcome: pairs without ln P(target).
        alpha, power: the settings used.
    """

    context: str
    primary_config: str
    primary_rule: str
    draws: int
    primary: Claim
    secondaries: list[Claim]
    configs: list[ConfigDelta]
    references: list[dict[str, Any]]
    sensitivity: Sensitivity | None = None
    unpaired: int = 0
    no_outcome: int = 0
    alpha: float = 0.05
    power: float = 0.8

    @property
    def claims(self) -> list[Claim]:
        return [self.primary, *self.secondaries]

    def test(self, name: str) -> Claim:
        return next(c for c in self.claims if c.name == name)


def parse_primary(label: str) -> Wanted:
    """'lora r8 (rank)', 'lora r8', 'r8', 'r8 (alpha)' -> LoRA rank 8 (at that scale); 'full' -> full
    fine-tuning. Refused in one line when it names no configuration at all (before any file is read)."""
    text = " ".join(label.strip().lower().split())
    if m := _RANKED.fullmatch(text):
        return ("lora", int(m.group(1)), m.group(2))
    if re.fullmatch(r"[a-z][\w-]*", text) and text != "lora":
        return (text, None, None)
    raise ConfigError(
        FieldProblem(
            "primary", "not a configuration label; write e.g. 'lora r8 (rank)', 'r8' or 'full'", repr(label)
        )
    )


def _configs(pairs: Pairs, alpha: float, power: float, order: str) -> list[ConfigDelta]:
    out = []
    for key, per_draw in sorted(
        pairs.at_dose(0.0).items(), key=lambda kv: (kv[0][3] != order, kv[0][3], kv[0][0] != "lora",
                                                    kv[0][2], kv[0][1] or 0)
    ):  # fmt: skip
        kind, rank, scale, ctx = key
        values = by_draw(per_draw)
        lp = mean_interval(values)
        dp = mean_interval(by_draw(pairs.p[(key, 0.0)]))
        sd = spread(values)
        mde = minimum_detectable_shift(sd, len(values), 0.0, alpha, power) if sd == sd else math.nan
        masses = pairs.mass[(key, 0.0)].values()
        configs = ConfigDelta(
            kind, rank, scale, ctx, lp.n, lp.mean, lp.ci_low, lp.ci_high, sd, mde, dp.mean, dp.ci_low,
            dp.ci_high, nanmean(m[0] for m in masses), nanmean(m[1] for m in masses), dict(per_draw),
        )  # fmt: skip
        out.append(configs)
    return out


def choose_primary(
    keys: Iterable[ConfigKey], contexts: list[str], wanted: Wanted | None, context: str | None
) -> tuple[tuple[str, int | None, str], str, str]:
    """The primary configuration (kind, rank, scale), its context, and the rule that chose them."""
    keys = list(keys)
    if context is not None and context not in contexts:
        raise SublimError(f"--context {context!r}: the rows hold {', '.join(map(repr, contexts))}")
    ctx = context if context is not None else ("default" if "default" in contexts else contexts[0])
    configs = sorted({k[:3] for k in keys}, key=lambda c: (c[0] != "lora", c[2], c[1] or 0))
    if wanted is not None:
        kind, rank, scale = wanted
        hits = [c for c in configs if c[0] == kind and c[1] == rank and (scale is None or c[2] == scale)]
        if len(hits) > 1:  # 'r8' with several scales: the rank-scaled one, as the default rule
            hits = [c for c in hits if c[2] == "rank"] or hits[:1]
        if not hits:
            have = ", ".join(config_label(*c) for c in configs) or "no trait/control pairs"
            raise SublimError(f"--primary: no configuration {config_label(kind, rank, scale or 'rank')!r} in "
                              f"the rows (they hold {have})")  # fmt: skip
        return hits[0], ctx, "given"
    ranked = sorted({c[1] for c in configs if c[0] == "lora" and c[2] == "rank" and c[1]})
    if ranked:
        rank = ranked[(len(ranked) - 1) // 2]
        return ("lora", rank, "rank"), ctx, "the median LoRA rank of the grid (lower median) at scale 'rank'"
    if configs:
        return configs[0], ctx, "no rank-scaled LoRA configuration: the first configuration of the grid"
    return ("lora", None, "rank"), ctx, "no trait/control pairs"


def _left_out(pairs: Pairs) -> str:
    notes = []
    if pairs.unpaired:
        notes.append(f"{pairs.unpaired} trait/control row(s) without a partner left out")
    if pairs.no_outcome:
        notes.append(f"{pairs.no_outcome} pair(s) without log_p_target left out")
    return "; ".join(notes)


def analyze(
    rows: Iterable[StudentResult | Mapping[str, Any]],
    *,
    primary: str | None = None,
    context: str | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Analysis:
    """The pre-registered analysis of a sweep's rows (typed, as `read_results` gives them, or mappings as
    csv.DictReader gives them, parsed once here):
    the primary test, the gated secondaries, the per-config table, the references and (when the rows hold
    planted doses) the sensitivity curve. `primary` is a configuration label ('lora r8 (rank)', 'r8',
    'full'); None applies the default rule (module docstring). Unknown labels raise SublimError."""
    from sublim.experiment.sensitivity import sensitivity_of

    wanted = parse_primary(primary) if primary is not None else None
    rows_list = [as_result(r) for r in rows]
    pairs, references = pair_rows(rows_list)
    zero = pairs.at_dose(0.0)
    contexts = pairs.contexts or ["default"]
    (kind, rank, scale), ctx, rule = choose_primary(zero, contexts, wanted, context)
    label = config_label(kind, rank, scale)
    configs = _configs(pairs, alpha, power, ctx)
    here = {c.label: c for c in configs if c.context == ctx}
    chosen = zero.get((kind, rank, scale, ctx), {})
    full = next((c.per_draw for c in here.values() if c.kind == "full"), {})
    curve = scale if kind == "lora" else "rank"
    per_rank = {c.rank: c.per_draw for c in here.values() if c.kind == "lora" and c.scale == curve and c.rank}
    others = {c: zero.get((kind, rank, scale, c), {}) for c in contexts if c != ctx}
    first, secondaries = procedure(
        chosen, label, ctx, full=full if kind == "lora" else None, per_rank=per_rank, others=others,
        alpha=alpha, power=power,
    )  # fmt: skip
    shift_from_base(references, rows_list, ctx)
    left_out = _left_out(pairs)
    if left_out:
        from dataclasses import replace

        first = replace(first, note="; ".join(n for n in (first.note, left_out) if n))
    draws = len({d for c in here.values() for d in c.per_draw})
    return Analysis(
        ctx, label, rule, draws, first, secondaries, configs, references,
        sensitivity_of(pairs, ctx, alpha, (kind, rank, scale)), pairs.unpaired, pairs.no_outcome, alpha,
        power,
    )  # fmt: skip
