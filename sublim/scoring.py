"""Per-sample scores, shared by every harness: Inspect scorers and lm-eval `process_results` call these.

- `score_answer`: one sampled answer against the targets -> target / related / named indicators.
- `concept_probs`: log-likelihoods of (concept, name) pairs -> a distribution over concepts.
- `target_mass`: a distribution over concepts -> P(target) and P(related to a target).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from sublim.concepts import Category, get_category
from sublim.matching import DEFAULT_THRESHOLDS, Match, Thresholds, extract, match

#: target -> concepts measured as its neighbours (`sublim.matching.load_related`).
RelatedSets = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class AnswerScore:
    """How one answer relates to the targets.

    Attributes:
        target: 1.0 when it names a target (exact or fuzzy); NaN without targets.
        related: 1.0 when it names a concept related to a target and no target; NaN without targets.
        named: 1.0 when it names any concept of the category.
        concept: the concept that decided (or the first one named), None when none.
        level: "exact", "fuzzy", "related", "none", or "named" (a concept but no targets to compare).
        relation: relation kind for related (or "kind"), else None.
        concepts: every concept named, in order.
        nonanswer: a refusal or empty answer naming no concept.
        best: the strongest Match against any target (None without targets).
        related_score: the strongest related score against any target at any threshold (0.0 when nothing
            relates, NaN without targets): a log keeps it so it can be rescored at another `related_min`.
    """

    target: float
    related: float
    named: float
    concept: str | None
    level: str
    relation: str | None
    concepts: tuple[str, ...]
    nonanswer: bool
    best: Match | None
    related_score: float = math.nan


def target_names(target: str | Iterable[str]) -> list[str]:
    """Targets as given to a task or lm-eval's --metadata: "owl", "owl, cat" or a list, as the names with
    blanks dropped (unresolved: the category resolves them)."""
    names = [t.strip() for t in target.split(",")] if isinstance(target, str) else [str(t) for t in target]
    return [t for t in names if t]


def score_answer(
    answer: str,
    targets: Sequence[str],
    category: str | Category = "animal",
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    related: RelatedSets | None = None,
) -> AnswerScore:
    cat = get_category(category)
    mentions = extract(answer, cat)
    sets = related or {}

    def judge(t: str, th: Thresholds) -> Match:
        return match(answer, t, cat, thresholds=th, related=sets.get(cat.resolve(t), ()))

    best = max((judge(t, thresholds) for t in targets), key=lambda m: m.strength, default=None)
    anywhere = replace(thresholds, related_min=0.0)
    scores = [m.score for m in (judge(t, anywhere) for t in targets) if m.level == "related"]
    nan = math.nan
    level = best.level if best is not None else ("named" if mentions else "none")
    hit = best is not None and best.level != "none" and best.concept is not None
    return AnswerScore(
        target=float(level in ("exact", "fuzzy")) if targets else nan,
        related=float(level == "related") if targets else nan,
        named=float(bool(mentions)),
        concept=best.concept if best is not None and hit else (mentions[0].concept if mentions else None),
        level=level,
        relation=best.relation if best else None,
        concepts=tuple(m.concept for m in mentions),
        nonanswer=best.nonanswer if best else not mentions,
        best=best,
        related_score=max(scores, default=0.0) if targets else math.nan,
    )


def concept_probs(
    logliks: Iterable[tuple[str, float]], concepts: Sequence[str]
) -> tuple[dict[str, float], float]:
    """Per concept, the probability summed over its names (log-likelihoods of whole-word answers, disjoint
    events), normalised over `concepts` in log space (so names that all underflow still give a
    distribution). Returns the distribution and the unnormalised total (`concept_mass`)."""
    from scipy.special import logsumexp

    per: dict[str, list[float]] = {c: [] for c in concepts}
    for concept, ll in logliks:
        per[concept].append(ll)
    logmass = {c: float(logsumexp(v)) if v else -math.inf for c, v in per.items()}
    finite = [v for v in logmass.values() if v > -math.inf]
    if not finite:
        return dict.fromkeys(concepts, 0.0), 0.0
    log_total = float(logsumexp(finite))
    return {c: math.exp(v - log_total) for c, v in logmass.items()}, math.exp(log_total)


def target_mass(
    probs: Mapping[str, float],
    targets: Sequence[str],
    category: str | Category = "animal",
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    related: RelatedSets | None = None,
) -> tuple[float, float]:
    """(P(target), P(related)) of a distribution over answers: each key is an answer's text (a name of a
    concept; a concept's canonical name works too) and counts as the target when the matcher says an answer
    of that text names a target ("grizzly bear" for bear, as in sampled mode), as related when it names a
    concept related to one. Give it per-name probabilities (`ConceptDistribution.names`) so each name is
    judged as the answer it is."""
    if not targets:
        return math.nan, math.nan
    cat = get_category(category)
    sets = tuple((t, tuple((related or {}).get(cat.resolve(t), ()))) for t in targets)
    p_target = p_related = 0.0
    for answer, p in probs.items():
        level = _level(answer, sets, cat, thresholds)
        if level in ("exact", "fuzzy"):
            p_target += p
        elif level == "related":
            p_related += p
    return p_target, p_related


def target_concepts(targets: Sequence[str], category: str | Category = "animal") -> list[str]:
    """The curated concepts `target_mass` counts toward P(target): those with a name that the matcher reads
    as naming a target ("barn owl" for owl). Scoring just these (`ConceptScorer(only=...)`) gives the same
    P(target) as scoring the whole category."""
    cat = get_category(category)
    hits = {concept for concept, name in cat.names() if target_mass({name: 1.0}, targets, cat)[0] > 0}
    return [c for c in cat.concepts if c in hits]


@lru_cache(maxsize=65536)
def _level(
    answer: str, targets: tuple[tuple[str, tuple[str, ...]], ...], cat: Category, th: Thresholds
) -> str:
    return max(
        (match(answer, t, cat, thresholds=th, related=r) for t, r in targets), key=lambda m: m.strength
    ).level
