"""Probability mode: the model's teacher-forced distribution over every concept of a category.

For each question the context is the chat prompt (system prompt or the template's default, the question,
the generation prompt) followed by an assistant answer prefix ("My favorite animal is the"). Each concept's
log-likelihood is the sum over all tokens of " <name>" (leading space), summed over its names (aliases);
the distribution is normalized over the category's concepts.

Cost: one forward pass over the context, whose last logits already give every one-token name and the first
token of every longer name; then the remaining tokens of longer names in batches that reuse the context's
KV cache (one more pass for a typical vocabulary). Longer names whose first token has probability below
`skip_below` are skipped; their total probability is at most the sum of those first-token probabilities,
reported as `skipped_bound` (relative to the unnormalized concept mass, so a user sees what was left out).

torch and transformers are imported here only: `import sublim` never loads them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

from sublim.concepts import Category, get_category
from sublim.contexts import chat_prompt
from sublim.scoring import concept_probs, target_mass

#: Skip a multi-token name when its first token is less likely than this (bound reported).
DEFAULT_SKIP_BELOW = 1e-4
#: Padded continuation positions per batched pass (each row also repeats the context's KV cache).
DEFAULT_BATCH_TOKENS = 128
#: transformers 5 renamed the KV-cache argument and output field from past_key_values to cache.
_CACHE = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
#: Word the answer prefix ends with, used to tokenize names as they follow it ("the owl").
_PROBE = "the"


@dataclass(frozen=True)
class ConceptDistribution:
    """One question's distribution over a category's concepts.

    Attributes:
        probs: concept -> probability, normalized over the category's concepts (sums to 1).
        concept_mass: unnormalized probability the model puts on naming any concept right after the prefix.
        skipped_bound: upper bound on the unnormalized probability of skipped names (compare with
            `concept_mass`: the normalized probabilities can be off by at most skipped_bound / concept_mass).
        forward_passes: model calls spent on this question.
        context: the exact text the model saw (chat template applied), for the record.
        tokens: token positions the model computed: the context plus every padded continuation position.
    """

    probs: dict[str, float]
    concept_mass: float
    skipped_bound: float
    forward_passes: int
    context: str
    tokens: int = 0

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda kv: -kv[1])[:k]


@dataclass(frozen=True)
class Estimate:
    """P(targets) averaged over questions, with a 95% t-interval over questions (each its own cluster)."""

    targets: tuple[str, ...]
    mean: float
    stderr: float
    ci_low: float
    ci_high: float
    n_questions: int


def estimate(
    dists: Sequence[ConceptDistribution],
    targets: Sequence[str],
    category: str | Category = "animal",
    confidence: float = 0.95,
) -> Estimate:
    """Mean over questions of P(target) with a t-interval (scipy); NaN interval for one question.

    P(target) counts every concept that names a target, as `sublim.scoring.target_mass` defines it.
    """
    from scipy import stats

    from sublim.stats import mean_interval

    values = [target_mass(d.probs, targets, category)[0] for d in dists]
    ci = mean_interval(values, confidence)
    se = float(stats.sem(values)) if len(values) > 1 else math.nan
    return Estimate(tuple(targets), ci.mean, se, ci.ci_low, ci.ci_high, ci.n)


class ConceptScorer:
    """Scores every concept of a category after a prompt, batched with a shared KV cache."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        category: str | Category = "animal",
        *,
        skip_below: float = DEFAULT_SKIP_BELOW,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        chat_template: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.category = get_category(category)
        self.skip_below = skip_below
        self.batch_tokens = batch_tokens
        self.chat_template = chat_template
        self.concepts = list(self.category.concepts)
        self.forms = self._tokenize_names()

    def _tokenize_names(self) -> list[tuple[int, tuple[int, ...]]]:
        """(concept index, token ids of " name") for every distinct tokenization of every name."""
        tok = self.tokenizer
        probe = tok(_PROBE, add_special_tokens=False)["input_ids"]
        index = {c: i for i, c in enumerate(self.concepts)}
        seen: set[tuple[int, tuple[int, ...]]] = set()
        forms = []
        for concept, name in self.category.names():
            ids = tok(f"{_PROBE} {name}", add_special_tokens=False)["input_ids"]
            if ids[: len(probe)] == probe:
                cont = ids[len(probe) :]
            else:
                cont = tok(" " + name, add_special_tokens=False)["input_ids"]
            key = (index[concept], tuple(cont))
            if cont and key not in seen:
                seen.add(key)
                forms.append(key)
        return forms

    def render(self, question: str, answer_prefix: str, system_prompt: str | None = None) -> str:
        """The context: chat template (its default system prompt when none is given) + answer prefix."""
        return chat_prompt(self.tokenizer, question, system_prompt, self.chat_template) + answer_prefix

    @torch.inference_mode()
    def distribution(self, context: str) -> ConceptDistribution:
        device = next(self.model.parameters()).device
        ids = self.tokenizer(context, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        n_ctx = ids.shape[1]
        out = self.model(input_ids=ids, use_cache=True)
        passes = 1
        first_lp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        loglik = torch.full((len(self.forms),), -math.inf)
        keep: list[int] = []
        skipped_first: set[int] = set()
        for i, (_, toks) in enumerate(self.forms):
            lp0 = float(first_lp[toks[0]])
            if len(toks) == 1:
                loglik[i] = lp0
            elif math.exp(lp0) >= self.skip_below:
                loglik[i] = lp0
                keep.append(i)
            else:
                skipped_first.add(toks[0])
        tokens = n_ctx
        for chunk in self._chunks(keep):
            rows = [self.forms[i][1] for i in chunk]
            loglik[chunk] += continuation_loglik(self.model, rows, getattr(out, _CACHE), n_ctx, device)
            passes += 1
            tokens += len(rows) * max(len(r) - 1 for r in rows)
        scored = [(self.concepts[ci], float(ll)) for (ci, _), ll in zip(self.forms, loglik, strict=True)]
        probs, total = concept_probs(scored, self.concepts)
        skipped = float(sum(math.exp(float(first_lp[t])) for t in skipped_first))
        return ConceptDistribution(probs, total, skipped, passes, context, tokens)

    def _chunks(self, keep: list[int]) -> list[list[int]]:
        return [
            [keep[i] for i in c] for c in chunk_rows([len(self.forms[i][1]) for i in keep], self.batch_tokens)
        ]


def chunk_rows(lengths: Sequence[int], batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[list[int]]:
    """Indices of rows (token sequences of these lengths) in batches of similar length, each at most
    `batch_tokens` padded continuation positions (a row's first token needs none: the context scores it)."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        width = lengths[i] - 1  # sorted: the newest row is the widest
        if chunks and (len(chunks[-1]) + 1) * width <= batch_tokens:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def continuation_loglik(
    model: Any, rows: Sequence[Sequence[int]], cache: Any, n_ctx: int, device: Any
) -> torch.Tensor:
    """Sum of log-probs of tokens 2..k of each row, given the context's KV cache (`n_ctx` tokens); the
    first token of each row is scored by the context pass's last logits."""
    width = max(len(r) - 1 for r in rows)
    inputs = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, toks in enumerate(rows):
        k = len(toks) - 1
        inputs[r, :k] = torch.tensor(toks[:-1])
        targets[r, :k] = torch.tensor(toks[1:])
        mask[r, :k] = 1
    batch_cache = copy.deepcopy(cache)
    batch_cache.batch_repeat_interleave(len(rows))
    attention = torch.cat([torch.ones((len(rows), n_ctx), dtype=torch.long), mask], dim=1)
    positions = (n_ctx + torch.arange(width)).unsqueeze(0).expand(len(rows), -1)
    out = model(
        input_ids=inputs.to(device),
        attention_mask=attention.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        **{_CACHE: batch_cache},
    )
    lp = (
        torch.log_softmax(out.logits.float(), dim=-1).gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
    )
    return (lp * mask.to(device)).sum(dim=1).cpu()


@torch.inference_mode()
def sequence_logliks(
    model: Any,
    context_ids: Sequence[int],
    rows: Sequence[Sequence[int]],
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> torch.Tensor:
    """Log-likelihood of each row (a token sequence) right after the context: one pass over the context,
    then batched passes over the rows' remaining tokens that share its KV cache."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(context_ids)], device=device)
    out = model(input_ids=ids, use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()
    loglik = first[torch.tensor([r[0] for r in rows])].clone()
    longer = [i for i, r in enumerate(rows) if len(r) > 1]
    for chunk in chunk_rows([len(rows[i]) for i in longer], batch_tokens):
        index = [longer[i] for i in chunk]
        loglik[index] += continuation_loglik(
            model, [rows[i] for i in index], getattr(out, _CACHE), ids.shape[1], device
        )
    return loglik
