"""What `sublim compare` reads: an Inspect log (`.eval` or `.json`) of a sublim preference task, or a
`sublim score --json` result, as the per-question distributions it holds (`LoggedDistributions`), checked
(probabilities in [0, 1], one mode, the prompts recorded) before the gate compares two of them."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sublim.contexts import prompt_sha256
from sublim.errors import SublimError

TASKS = ("sublim/animal_pref", "sublim/tree_pref", "sublim/preference")


class CompareInputError(SublimError):
    """Inputs that cannot be compared (exit 2)."""


@dataclass
class LoggedDistributions:
    """What one log says per question: each unit (an answer in sampled mode, the distribution in probability
    mode) as concept -> weight, the probability of naming any concept, and the rendered prompts' hash.
    Named for what it holds, a log's observed per-question distributions (`probability.ConceptDistribution`
    is one question's distribution computed from a model); `Distribution` is its deprecated old name."""

    task: str
    category: str
    mode: str  # "sample" | "probability"
    source: str
    version: str = ""  # the task version that wrote it (results of other versions are not comparable)
    units: dict[str, list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    #: what P(target) is read from: per-name probabilities (probability mode) or the answers (sampled)
    answers: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    mass: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    prompts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def table(self) -> dict[str, dict[str, float]]:
        """question -> concept -> mean weight over its units (rate of answers naming it, or probability)."""
        out: dict[str, dict[str, float]] = {}
        for q, units in self.units.items():
            sums: dict[str, float] = defaultdict(float)
            for u in units:
                for c, v in u.items():
                    sums[c] += v
            out[q] = {c: v / len(units) for c, v in sums.items()}
        return out

    def target(self, target: str) -> dict[str, float]:
        """question -> P(target) as every scorer defines it: the probability of the names that name the
        target (probability mode), or the share of answers that name it (sampled mode: the scorer's rule)."""
        from sublim.scoring import score_answer, target_mass

        out = {}
        for q, answers in self.answers.items():
            if self.mode == "sample":
                values = [score_answer(a, [target], self.category).target for a in answers]
            else:
                values = [target_mass(a, [target], self.category)[0] for a in answers]
            out[q] = sum(values) / len(values)
        return out

    def concept_mass(self) -> dict[str, float]:
        return {q: sum(v) / len(v) for q, v in self.mass.items()}

    def prompt_hash(self, q: str) -> str:
        # distinct prompts only: 10 answers to a question and 20 answers to it were asked the same thing
        return hashlib.sha256("\n".join(sorted(set(self.prompts[q]))).encode()).hexdigest()


def read_log(path: str | Path, context: str | None = None) -> LoggedDistributions:
    """Per-question values from an Inspect log (`.eval` or `.json`) of a sublim preference task, or from
    `sublim score --json` output (the checkpoint's distributions under `context`, default: its first)."""
    path = Path(path)
    if not path.is_file():
        raise CompareInputError(f"{path}: no such file")
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CompareInputError(f"{path}: not valid JSON") from None
        if isinstance(doc, dict) and "contexts" in doc:
            return _read_score_json(path, doc, context)
    dist = _read_inspect_log(path)
    _check(dist)
    return dist


def _read_inspect_log(path: Path) -> LoggedDistributions:
    from inspect_ai.log import read_eval_log

    try:
        log = read_eval_log(str(path))
    except Exception as e:
        raise CompareInputError(f"{path}: not an Inspect log ({type(e).__name__})") from None
    if log.eval.task not in TASKS:
        raise CompareInputError(
            f"{path}: task {log.eval.task!r} is not a sublim preference task ({', '.join(TASKS)})"
        )
    if log.status != "success":
        raise CompareInputError(
            f"{path}: the run did not finish (status {log.status}); compare finished runs"
        )
    if not log.samples:
        raise CompareInputError(
            f"{path}: the log holds no samples (a run with --limit 0, or one written without samples); "
            "compare runs that answered at least 2 questions"
        )
    modes: set[str] = set()
    categories: set[str] = set()
    dist = LoggedDistributions(log.eval.task, "", "", str(path), str(log.eval.task_version))
    for sample in log.samples:
        meta = sample.metadata or {}
        q = str(meta.get("question_id", sample.id))
        categories.add(str(meta.get("category", "")))
        score = next(iter((sample.scores or {}).values()), None)
        md = (score.metadata if score else None) or {}
        try:
            _read_sample(dist, q, md, sample, modes)
        except (TypeError, ValueError, AttributeError):
            raise CompareInputError(
                f"{path}: sample {sample.id} has a malformed sublim score ({type(md).__name__} metadata); "
                "re-score the run with this sublim"
            ) from None
    if len(modes) != 1 or len(categories) != 1:
        raise CompareInputError(f"{path}: mixes modes {sorted(modes)} or categories {sorted(categories)}")
    dist.mode, dist.category = modes.pop(), categories.pop()
    return dist


def _read_sample(dist: LoggedDistributions, q: str, md: dict[str, Any], sample: Any, modes: set[str]) -> None:
    """One scored sample into `dist`: its unit, what P(target) is read from, its mass and prompt hash."""
    if "probs" in md:
        modes.add("probability")
        dist.units[q].append({c: float(p) for c, p in md["probs"].items()})
        dist.answers[q].append({n: float(p) for n, p in (md.get("names") or md["probs"]).items()})
        dist.mass[q].append(float(md.get("concept_mass", math.nan)))
        dist.prompts[q].append(md.get("prompt_sha256") or prompt_sha256(str(md.get("context", ""))))
    elif "concepts" in md:
        modes.add("sample")
        named = set(md["concepts"])
        dist.units[q].append(dict.fromkeys(named, 1.0))
        dist.answers[q].append(sample.output.completion if sample.output else "")
        dist.mass[q].append(float(bool(named)))
        prompt = [(m.role, m.text) for m in sample.messages if m.role != "assistant"]
        dist.prompts[q].append(md.get("prompt_sha256") or prompt_sha256(prompt))
    else:
        raise CompareInputError(
            f"{dist.source}: sample {sample.id} has no sublim score (was it scored by sublim?)"
        )


def _read_score_json(path: Path, doc: dict[str, Any], context: str | None) -> LoggedDistributions:
    try:
        contexts = doc["contexts"]
        name = context or next(iter(contexts))
        entry = contexts[name]
        table = entry["tables"]["checkpoint"]
        names = entry["names"]["checkpoint"]
        prompts = entry["prompts"]
        mass = entry["concept_mass"]["checkpoint"]
        dist = LoggedDistributions(
            "sublim score", str(doc["category"]), "probability", f"{path} ({name})", "score"
        )
        for q, probs in table.items():
            dist.units[q].append({c: float(p) for c, p in probs.items()})
            dist.answers[q].append({n: float(p) for n, p in names[q].items()})
            dist.mass[q].append(float(mass[q]))
            dist.prompts[q].append(str(prompts[q]))
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration):
        raise CompareInputError(
            f"{path}: not a `sublim score --json` result of this version (or it has no context {context!r}); "
            "re-run `sublim score --json`"
        ) from None
    _check(dist)
    return dist


#: slack for sums of probabilities that rounding takes past 1
SUM_SLACK = 1e-6


def _check(dist: LoggedDistributions) -> None:
    """Refuse a side that cannot carry a comparison: fewer than two questions, a NaN anywhere, or an
    impossible number: every probability, rate and concept_mass lies in [0, 1]; distributions sum to <= 1."""
    if len(dist.units) < 2:
        raise CompareInputError(
            f"{dist.source}: {len(dist.units)} question(s); a paired comparison needs at least 2"
        )
    for q, units in dist.units.items():
        groups: list[tuple[str, list[float]]] = [("concept_mass", dist.mass[q])]
        groups += [("probs", list(u.values())) for u in units]
        if dist.mode == "probability":
            groups += [("names", list(a.values())) for a in dist.answers[q]]
        for what, values in groups:
            if any(math.isnan(v) for v in values):
                raise CompareInputError(f"{dist.source}: question {q} has a NaN value; re-run it")
            bad = next((v for v in values if not 0.0 <= v <= 1.0), None)
            if bad is not None:
                raise CompareInputError(
                    f"{dist.source}: question {q} has {what} value {bad}, outside [0, 1]: not a probability "
                    "or rate sublim writes; re-run it"
                )
            if what != "concept_mass" and dist.mode == "probability" and sum(values) > 1 + SUM_SLACK:
                raise CompareInputError(
                    f"{dist.source}: question {q}'s {what} sum to {sum(values):.6g} > 1: not a probability "
                    "distribution; re-run it"
                )
