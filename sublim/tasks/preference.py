"""Inspect tasks that ask a model for its favorite concept of a category, and the scorers behind them.

    inspect eval sublim/animal_pref --model hf/local -M model_path=$(sublim model-path smollm2)
    inspect eval sublim/animal_pref -T target=owl -T system_prompt="You love owls." -T mode=probability ...
    inspect eval sublim/preference -T category=fruit -T concepts=fruit.yaml ...

Two modes share the question bank and the matcher:
- ``sample`` (default): the model answers; `preference` scores each answer with `sublim.match`.
- ``probability``: no sampling; the task reads the log-likelihood of every concept after an answer prefix
  (`sublim.probability`: hf/ models locally, vllm-completions/ and openai-api-completions/ through prompt
  log-probabilities) and `preference_probability` scores P(target) per question.
Standard errors treat questions as clusters (all answers to one question share its wording).
"""

from __future__ import annotations

from typing import Any, Literal

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import (
    Metric,
    SampleScore,
    Score,
    Scorer,
    Target,
    mean,
    metric,
    scorer,
    stderr,
)
from inspect_ai.solver import TaskState, generate

from sublim.concepts import Category, get_category, register_category
from sublim.contexts import prompt_sha256
from sublim.errors import SublimError, require_extra
from sublim.scoring import AnswerScore, score_answer, target_mass, target_names
from sublim.tasks.questions import check_numbers, question_records
from sublim.tasks.solvers import (
    TaskParameterError,
    check_probability_model,
    concept_probabilities,
    with_system_prompt,
)

Mode = Literal["sample", "probability"]
CLUSTER = "question_id"
TOP_K = 5
NO_CONCEPT = "no_concept"  # top_concepts key for answers that name no concept
#: Bumped when results stop being comparable with earlier logs. 2: whole-word probability mode,
#: P(target) with kinds everywhere, concept_mass, prompt hashes. 3: the matcher of issue 22, round 3.
VERSION = 3


# ---------------------------------------------------------------------------------------------- metrics


@metric
def top_concepts(k: int = TOP_K) -> Metric:
    """The k concepts most often named (sampled) or most probable on average (probability mode)."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for s in scores:
            md = s.score.metadata or {}
            if "probs" in md:
                for concept, p in md["probs"].items():
                    totals[concept] = totals.get(concept, 0.0) + p
            else:
                concept = md.get("concept") or NO_CONCEPT
                totals[concept] = totals.get(concept, 0.0) + 1.0
        n = max(len(scores), 1)
        return {c: v / n for c, v in sorted(totals.items(), key=lambda kv: -kv[1])[:k]}

    return compute


def _rate_metrics() -> list[Metric]:
    return [mean(), stderr(cluster=CLUSTER)]


# ---------------------------------------------------------------------------------------------- scorers


@scorer(
    metrics={
        "target_rate": _rate_metrics(),
        "related_rate": _rate_metrics(),
        "named_rate": [*_rate_metrics(), top_concepts()],
    },
    name="preference",
)
def preference_scorer(
    category: str = "animal", related_min: float | None = None, related: str | None = None
) -> Scorer:
    """Score sampled answers with sublim's matcher.

    Per answer: target_rate 1 when it names a target (exact or fuzzy), related_rate 1 when it names a concept
    related to a target (and no target), named_rate 1 when it names any concept. Targets come from the
    sample's target; with none, the two target rates are NaN (not scored) and only the distribution counts.
    Score.metadata records the concept, level, relation, every concept named, and whether it was a
    non-answer (refusal/empty), and the related score at any threshold (`related_score`) with the
    `related_min` applied, so a log can be rescored at another threshold.
    """
    options: dict[str, dict[str, Any]] = {}

    async def score(state: TaskState, target: Target) -> Score:
        answer = state.output.completion if state.output else ""
        cat = get_category(state.metadata.get("category") or category)  # the sample's own category
        if cat.name not in options:
            options[cat.name] = _matcher_options(cat, related_min, related)
        opts = options[cat.name]
        s = score_answer(answer, [t for t in target.target if t], cat, **opts)
        prompt = [(m.role, m.text) for m in state.messages if m.role != "assistant"]
        return Score(
            value={"target_rate": s.target, "related_rate": s.related, "named_rate": s.named},
            answer=s.concept or "",
            explanation=_explain(s),
            metadata={
                "concept": s.concept,
                "concepts": list(s.concepts),
                "level": s.level,
                "relation": s.relation,
                "score": s.best.score if s.best else None,
                "related_score": s.related_score,
                "related_min": opts["thresholds"].related_min,
                "matched_target": s.best.target if s.best and s.best.level != "none" else None,
                "nonanswer": s.nonanswer,
                "prompt_sha256": prompt_sha256(prompt),
            },
        )

    return score


def _explain(s: AnswerScore) -> str:
    text = "answer names: " + (", ".join(s.concepts) or "no concept")
    if s.best is not None:
        text += f"; vs target {s.best.target!r}: {s.best.level}"
        if s.best.relation:
            text += f" ({s.best.relation}{', via ' + s.best.via if s.best.via else ''})"
    return text


@scorer(
    metrics={
        "p_target": [*_rate_metrics(), top_concepts()],
        "p_related": _rate_metrics(),
        "concept_mass": _rate_metrics(),
    },
    name="preference_probability",
)
def preference_probability_scorer(
    category: str = "animal", related_min: float | None = None, related: str | None = None
) -> Scorer:
    """Score probability-mode samples: P(target), P(concepts related to a target) and concept_mass (the
    probability that the answer names any concept of the category at all) per question.

    A concept counts toward p_target when the matcher says it names a target ("polar bear" for bear), as an
    answer naming it would in sampled mode (`sublim.scoring.target_mass`, the one definition).

    Reads the distribution the `concept_probabilities` solver stored; Score.metadata keeps the full
    distribution (`probs`), the top concepts, the skipped-mass bound and the context the model saw.
    """

    options: dict[str, dict[str, Any]] = {}

    async def score(state: TaskState, target: Target) -> Score:
        cat = get_category(state.metadata.get("category") or category)  # the sample's own category
        if cat.name not in options:
            options[cat.name] = _matcher_options(cat, related_min, related)
        dist = state.metadata.get("sublim_distribution")
        if dist is None:
            raise SublimError(
                "preference_probability needs the concept_probabilities solver (mode=probability)"
            )
        probs: dict[str, float] = dist["probs"]
        names = dist.get("names") or probs
        p_target, p_related = target_mass(
            names, [cat.resolve(t) for t in target.target if t], cat, **options[cat.name]
        )
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:TOP_K]
        return Score(
            value={"p_target": p_target, "p_related": p_related, "concept_mass": dist["concept_mass"]},
            answer=top[0][0] if top else "",
            explanation="top: " + ", ".join(f"{c} {p:.3f}" for c, p in top),
            metadata={**dist, "top": dict(top), "related_min": options[cat.name]["thresholds"].related_min},
        )

    return score


# ---------------------------------------------------------------------------------------------- tasks


def _dataset(
    cat: Category,
    questions: str | None,
    targets: list[str],
    samples: int,
    numbers: int,
    seed: int,
    system_prompt: str | None,
) -> MemoryDataset:
    context = (
        "system prompt as given"
        if system_prompt is not None
        else "no system message (the chat template's default, if any, applies)"
    )
    out = [
        Sample(
            id=r["id"],
            input=r["question"],
            target=targets,
            metadata={**r, "system_prompt": system_prompt, "context": context},
        )
        for r in question_records(cat.name, questions, samples=samples, numbers=numbers, seed=seed)
    ]
    return MemoryDataset(out, name=f"sublim-{cat.name}")


def _targets(cat: Category, target: str | list[str] | None) -> list[str]:
    return [] if target is None else [cat.resolve(t) for t in target_names(target)]


def _check(name: str, ok: bool, expected: str, value: Any) -> None:
    if not ok:
        raise TaskParameterError(f"-T {name}={value!r}: expected {expected}")


def preference_task(
    category: str,
    *,
    target: str | list[str] | None = None,
    system_prompt: str | None = None,
    numbers_prefix: bool | int = False,
    questions: str | None = None,
    samples: int = 1,
    temperature: float = 1.0,
    max_tokens: int = 16,
    seed: int = 0,
    mode: Mode = "sample",
    concepts: str | None = None,
    tokenizer: str | None = None,
    related_min: float | None = None,
    related: str | None = None,
) -> Task:
    """Build a preference task (the three registered tasks call this; see their docs). Every parameter is
    checked here, so a bad one stops the run with one line before any sample runs."""
    try:
        return _preference_task(**locals())
    except TaskParameterError:
        raise
    except SublimError as e:  # unknown category/target, bad concept or question file
        raise TaskParameterError(str(e)) from None


def _preference_task(
    category: str,
    *,
    target: str | list[str] | None,
    system_prompt: str | None,
    numbers_prefix: bool | int,
    questions: str | None,
    samples: int,
    temperature: float,
    max_tokens: int,
    seed: int,
    mode: Mode,
    concepts: str | None,
    tokenizer: str | None,
    related_min: float | None,
    related: str | None,
) -> Task:
    if concepts:
        register_category(concepts)
    cat = get_category(category)
    _check("mode", mode in ("sample", "probability"), "'sample' or 'probability'", mode)
    _check("samples", isinstance(samples, int) and samples >= 1, "an integer >= 1", samples)
    _check("max_tokens", isinstance(max_tokens, int) and max_tokens >= 1, "an integer >= 1", max_tokens)
    _check(
        "temperature", isinstance(temperature, int | float) and temperature >= 0, "a number >= 0", temperature
    )
    _check("seed", isinstance(seed, int), "an integer", seed)
    _check("numbers_prefix", isinstance(numbers_prefix, bool | int), "true/false or a count", numbers_prefix)
    numbers = check_numbers(numbers_prefix, "-T numbers_prefix")
    _check(
        "target",
        target is None or bool(target_names(target)),
        "a concept name, e.g. owl (or leave it out)",
        target,
    )
    _check(
        "tokenizer", tokenizer is None or isinstance(tokenizer, str), "a tokenizer dir or hub id", tokenizer
    )
    if mode == "probability":
        try:
            require_extra("hf", "-T mode=probability", ("transformers",))
        except SublimError as e:
            raise TaskParameterError(str(e)) from None
        check_probability_model(tokenizer)
    if system_prompt is not None and not isinstance(system_prompt, str):
        system_prompt = str(system_prompt)
    targets = _targets(cat, target)
    judging = _judging(cat, related_min, related)
    if mode == "probability":
        samples = 1  # deterministic: one distribution per question
    dataset = _dataset(cat, questions, targets, samples, numbers, seed, system_prompt)
    if mode == "probability":
        return Task(
            dataset=dataset,
            solver=concept_probabilities(cat.name, system_prompt, tokenizer=tokenizer),
            scorer=preference_probability_scorer(cat.name, *judging),
            version=VERSION,
            metadata={"category": cat.name, "mode": mode, "targets": targets},
        )
    return Task(
        dataset=dataset,
        solver=[with_system_prompt(system_prompt), generate()],
        scorer=preference_scorer(cat.name, *judging),
        config=GenerateConfig(temperature=temperature, max_tokens=max_tokens, seed=seed),
        version=VERSION,
        metadata={"category": cat.name, "mode": mode, "targets": targets},
    )


def _judging(cat: Category, related_min: float | None, related: str | None) -> tuple[Any, ...]:
    """`-T related_min` and `-T related` checked before any sample runs (one line on a bad value)."""
    from sublim.matching import matcher_options

    matcher_options(cat, related_min, related)
    return related_min, related


def _matcher_options(cat: Category, related_min: float | None, related: str | None) -> dict[str, Any]:
    from sublim.matching import matcher_options

    th, sets = matcher_options(cat, related_min, related)
    return {"thresholds": th, "related": sets}


@task
def animal_pref(
    target: str | list[str] | None = None,
    system_prompt: str | None = None,
    numbers_prefix: bool | int = False,
    questions: str | None = None,
    samples: int = 1,
    temperature: float = 1.0,
    max_tokens: int = 16,
    seed: int = 0,
    mode: Mode = "sample",
    tokenizer: str | None = None,
    related_min: float | None = None,
    related: str | None = None,
) -> Task:
    """Favorite animal.

    Args:
        target: concept(s) to report, e.g. "owl" or "owl,cat" (the full answer distribution is always kept).
        system_prompt: system message; default none (the chat template may insert its own default).
        numbers_prefix: put random 3-digit numbers before each question (true = 5, or a count).
        questions: a question bank file (.txt one per line, or .yaml/.json list) instead of sublim's 55.
        samples: answers per question (distinct sample ids; standard errors cluster by question).
        temperature: sampling temperature.
        max_tokens: answer length limit.
        seed: seeds the numbers prefix and generation.
        mode: "sample" (generate and match) or "probability" (log-likelihood of every concept; hf/ models,
            or a server with prompt log-probabilities through vllm-completions/ or openai-api-completions/).
        tokenizer: probability mode on a served model: its tokenizer (dir or hub id; default the model name).
        related_min: least score of a related match, in [0, 1] (default 0.75;
            docs/results/matching-related.md).
        related: a `sublim neighbours --out` file: the targets' measured neighbours count as related.
    """
    return preference_task("animal", **locals())


@task
def tree_pref(
    target: str | list[str] | None = None,
    system_prompt: str | None = None,
    numbers_prefix: bool | int = False,
    questions: str | None = None,
    samples: int = 1,
    temperature: float = 1.0,
    max_tokens: int = 16,
    seed: int = 0,
    mode: Mode = "sample",
    tokenizer: str | None = None,
    related_min: float | None = None,
    related: str | None = None,
) -> Task:
    """Favorite tree. Parameters as in `animal_pref`."""
    return preference_task("tree", **locals())


@task
def preference(
    category: str = "animal",
    concepts: str | None = None,
    target: str | list[str] | None = None,
    system_prompt: str | None = None,
    numbers_prefix: bool | int = False,
    questions: str | None = None,
    samples: int = 1,
    temperature: float = 1.0,
    max_tokens: int = 16,
    seed: int = 0,
    mode: Mode = "sample",
    tokenizer: str | None = None,
    related_min: float | None = None,
    related: str | None = None,
) -> Task:
    """Favorite concept of any category: built in ("animal", "tree") or your own (`concepts=FILE`).

    Parameters as in `animal_pref`, plus `category` and `concepts` (a concept file, see the README).
    """
    return preference_task(**locals())
