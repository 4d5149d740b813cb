"""Probability mode: the model's teacher-forced distribution over every concept of a category.

The quantity (one definition for every path: Inspect, lm-eval, `sublim score`, `compare`, `sweep`, probes):
P(concept) is the probability that the answer, right after the prefix ("My favorite animal is the"), *is*
one of the concept's names as a whole word: for each name, P(" name") times P(a word boundary next), where a
boundary is a next token that does not continue the word (one that starts with whitespace or punctuation
other than a hyphen or apostrophe, or a special token such as end of turn). A name that begins a longer
candidate name ("spider" / "spider monkey") gives that longer name's probability to it: the events are
disjoint, so P over distinct names sums to at most 1. `concept_mass` is that sum over the category (the
probability that the answer names any candidate concept at all); `probs` is normalised over the category.

Two engines compute it:
- `ConceptScorer` runs a local model (hf/ models, `sublim score`, sweeps): one forward pass over the context
  (its last logits give every name's first token), then every name's tokens in batches that reuse the
  context's KV cache (the last position of each gives the boundary mass, exactly). With `skip_below` > 0,
  names whose first token is less likely than that are skipped; their probability is at most the sum of those
  first-token probabilities, reported as `skipped_bound`. Comparisons use the exact default (`skip_below=0`),
  so two models are always normalised over the same set of names.
- `ServedScorer` asks a server for prompt log-probabilities (vLLM, SGLang or any OpenAI-compatible server
  with vLLM's `prompt_logprobs`): one request per name, the context's tokens + the name's tokens, asking for
  prompt log-probabilities (the name's tokens, exactly) and for the top N <= 20 log-probabilities of the one
  token generated after it, by token id where the server can (vLLM's return_tokens_as_token_ids), so each
  is read with the local tokenizer as above. The boundary mass after the name is summed over those N, so it
  can miss boundary tokens outside them: their mass is at most what the N leave out, and that bound, summed
  over names, is reported as `skipped_bound`.

torch is imported only by the functions that run a local model, so `import sublim.probability` does not load
it (transformers, which loads a served model's tokenizer, imports torch when it is installed).
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sublim.concepts import Category, get_category
from sublim.contexts import chat_prompt
from sublim.continuations import DEFAULT_BATCH_TOKENS, GPU_BATCH_TOKENS, SharedContext
from sublim.errors import SublimError
from sublim.scoring import concept_probs, target_mass

if TYPE_CHECKING:
    import torch

#: Skip a name when its first token is less likely than this (bound reported); 0 = exact.
DEFAULT_SKIP_BELOW = 0.0
#: Alternatives a server lists per prompt position (vLLM's and Inspect's limit).
SERVED_TOP = 20
#: How vLLM names a token by its id (with return_tokens_as_token_ids).
TOKEN_ID = "token_id:"
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
        names: name -> probability of that exact answer, on the same scale as `probs` (a concept's names sum
            to its probability). P(target) reads these (`sublim.scoring.target_mass`), so a name is judged as
            an answer of that text would be in sampled mode ("grizzly bear" names a bear; "grizzly" alone
            does not).
    """

    probs: dict[str, float]
    concept_mass: float
    skipped_bound: float
    forward_passes: int
    context: str
    tokens: int = 0
    names: dict[str, float] = field(default_factory=dict)

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

    P(target) counts every name that names a target, as `sublim.scoring.target_mass` defines it.
    """
    from scipy import stats

    from sublim.stats import mean_interval

    values = [target_mass(d.names or d.probs, targets, category)[0] for d in dists]
    ci = mean_interval(values, confidence)
    se = float(stats.sem(values)) if len(values) > 1 else math.nan
    return Estimate(tuple(targets), ci.mean, se, ci.ci_low, ci.ci_high, ci.n)


class Question(Protocol):
    """What a question of a bank gives probability mode (`sublim.tasks.questions.Question` has it)."""

    @property
    def text(self) -> str: ...

    @property
    def answer_prefix(self) -> str: ...


#: Characters that continue a word when a token starts with them (so they are no boundary).
_WORD_JOINERS = frozenset("-'\u2019\ufffd")  # hyphen, apostrophes, and an undecodable byte fragment


def ends_word(text: str) -> bool:
    """Whether a next token with this text ends the word before it: it starts with whitespace or punctuation
    (not a hyphen or an apostrophe, which continue a word). Letters, digits and marks continue the word."""
    if not text:
        return False
    first = text[0]
    return first not in _WORD_JOINERS and (first.isspace() or unicodedata.category(first)[0] in "PS")


class TokenText:
    """What a token adds after "the" (so tokenizers whose decoders strip a leading space, SentencePiece's
    "▁monkey", are read right), and whether it ends a word: special tokens (end of turn, end of text) do."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        self.probe = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
        self.base = tokenizer.decode(self.probe)

    def __call__(self, token: int) -> str:
        return str(self.tokenizer.decode([*self.probe, token])[len(self.base) :])

    def ends_word(self, token: int) -> bool:
        return token in self.special or ends_word(self(token))


def boundary_mask(tokenizer: Any, size: int | None = None) -> torch.Tensor:
    """Bool over the vocabulary (`size` entries: the model's output width, which may exceed the tokenizer's):
    True for tokens that end a word when they come next (`TokenText.ends_word`)."""
    import torch

    size = size or len(tokenizer)
    text = TokenText(tokenizer)
    return torch.tensor([i < len(tokenizer) and text.ends_word(i) for i in range(size)], dtype=torch.bool)


@dataclass(frozen=True)
class Form:
    """One tokenization of one name: its concept, its tokens after "the", and the forms that extend it by
    more words ("spider" -> "spider monkey"), whose probability it must not count."""

    concept: int
    name: str
    tokens: tuple[int, ...]
    extensions: tuple[int, ...] = ()


def name_forms(tokenizer: Any, category: Category, ends: Callable[[int], bool]) -> list[Form]:
    """Every distinct tokenization of every name of the category (as it follows "the"), with its extensions;
    `ends(token)` says whether a token ends a word."""
    probe = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    index = {c: i for i, c in enumerate(category.concepts)}
    owner: dict[tuple[int, ...], tuple[int, str]] = {}
    for concept, name in category.names():
        ids = tokenizer(f"{_PROBE} {name}", add_special_tokens=False)["input_ids"]
        if ids[: len(probe)] == probe:
            cont = tuple(ids[len(probe) :])
        else:
            cont = tuple(tokenizer(" " + name, add_special_tokens=False)["input_ids"])
        if cont and cont not in owner:  # the same tokens are one answer, counted once
            owner[cont] = (index[concept], name)
    seqs = list(owner)
    longer: dict[tuple[int, ...], list[int]] = {}
    for j, b in enumerate(seqs):
        for k in range(1, len(b)):
            if b[:k] in owner and ends(b[k]):  # "spider" + " monkey", not "bull" + "frog"
                longer.setdefault(b[:k], []).append(j)
    forms = []
    for a in seqs:
        ext = longer.get(a, [])
        # only the nearest extensions: "sea lion pup" lies inside "sea lion", which lies inside "sea"
        nearest = [j for j in ext if not any(seqs[j][: len(seqs[i])] == seqs[i] for i in ext if i != j)]
        forms.append(Form(*owner[a], a, tuple(nearest)))
    return forms


def whole_words(
    forms: Sequence[Form], concepts: Sequence[str], prefix: Sequence[float], ends: Sequence[float]
) -> tuple[dict[str, float], float, dict[str, float]]:
    """From each form's log P(tokens) and log P(word boundary | tokens): the concept distribution, its
    unnormalised total (concept_mass) and the per-name distribution. A form's own probability is its
    whole-word probability less its extensions' (disjoint events: P over distinct names sums to <= 1)."""
    own = []
    for i, form in enumerate(forms):
        whole = prefix[i] + ends[i]
        inner = [prefix[j] for j in form.extensions if math.isfinite(prefix[j])]
        own.append(_log_minus(whole, inner))
    probs, total = concept_probs(zip((concepts[f.concept] for f in forms), own, strict=True), concepts)
    names, _ = concept_probs(zip((f.name for f in forms), own, strict=True), [f.name for f in forms])
    return probs, total, names


def render_prompt(
    tokenizer: Any,
    question: str,
    answer_prefix: str,
    system_prompt: str | None = None,
    chat_template: str | None = None,
) -> str:
    """The context a model scores names after: chat template (its default system prompt when none is given)
    + answer prefix."""
    return chat_prompt(tokenizer, question, system_prompt, chat_template) + answer_prefix


def render(*args: Any, **kwargs: Any) -> str:
    """Deprecated: `render_prompt` (the rendered prompt; `sublim.experiment.render` writes a report)."""
    import warnings

    warnings.warn(
        "sublim.probability.render is deprecated: use sublim.probability.render_prompt",
        DeprecationWarning,
        stacklevel=2,
    )
    return render_prompt(*args, **kwargs)


class ConceptScorer:
    """Scores every concept of a category after a prompt with a local model (whole-word probabilities),
    batched with a shared KV cache. `distribution` is the one function that gives a question's concept
    distribution."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        category: str | Category = "animal",
        *,
        skip_below: float = DEFAULT_SKIP_BELOW,
        batch_tokens: int | None = None,
        chat_template: str | None = None,
        only: Sequence[str] | None = None,
    ) -> None:
        """`only`: score just these concepts' names, and the longer names that begin with one of them (so each
        name's own probability stays exact): every other concept gets probability 0, so `concept_mass` covers
        only these and `probs` is normalised over them. A sweep that needs P(target) alone scores the target's
        concepts this way in a few passes instead of the whole category's."""
        self.model = model
        self.tokenizer = tokenizer
        self.category = get_category(category)
        self.skip_below = skip_below
        if batch_tokens is None:
            on_gpu = next(model.parameters()).device.type == "cuda"
            batch_tokens = GPU_BATCH_TOKENS if on_gpu else DEFAULT_BATCH_TOKENS
        self.batch_tokens = batch_tokens
        self.chat_template = chat_template
        self.concepts = list(self.category.concepts)
        width = (
            model.get_output_embeddings().weight.shape[0] if hasattr(model, "get_output_embeddings") else None
        )
        self.boundary = boundary_mask(tokenizer, width)
        self.forms = name_forms(tokenizer, self.category, lambda t: bool(self.boundary[t]))
        self.scored = list(range(len(self.forms)))
        if only is not None:
            index = {c: i for i, c in enumerate(self.concepts)}
            unknown = [c for c in only if self.category.resolve(c) not in index]
            if unknown:
                raise SublimError(f"not concepts of {self.category.name}: {', '.join(unknown)}")
            wanted = {index[self.category.resolve(c)] for c in only}
            own = {i for i, f in enumerate(self.forms) if f.concept in wanted}
            self.scored = sorted(own | {j for i in own for j in self.forms[i].extensions})

    def render(self, question: str, answer_prefix: str, system_prompt: str | None = None) -> str:
        """The context: chat template (its default system prompt when none is given) + answer prefix."""
        return render_prompt(self.tokenizer, question, answer_prefix, system_prompt, self.chat_template)

    def question(self, question: Question, system_prompt: str | None = None) -> ConceptDistribution:
        """The distribution for one question of a bank under a system prompt (see `sublim.contexts`)."""
        return self.distribution(self.render(question.text, question.answer_prefix, system_prompt))

    def distribution(self, context: str) -> ConceptDistribution:
        import torch

        with torch.inference_mode():
            return self._distribution(context)

    def _distribution(self, context: str) -> ConceptDistribution:
        import torch

        ids = self.tokenizer(context, add_special_tokens=False)["input_ids"]
        shared = SharedContext(self.model, ids, torch.float32)
        prefix = torch.full((len(self.forms),), -math.inf, dtype=torch.float64)  # log P(tokens)
        ends = torch.full((len(self.forms),), -math.inf, dtype=torch.float64)  # log P(boundary | tokens)
        first = {i: self.forms[i].tokens[0] for i in self.scored}
        keep = [i for i, t in first.items() if math.exp(shared.first[t]) >= self.skip_below]
        skipped_first = set(first.values()) - {first[i] for i in keep}
        scores = shared.score(
            [self.forms[i].tokens for i in keep], boundary=self.boundary, batch_tokens=self.batch_tokens
        )
        prefix[keep] = scores.loglik
        ends[keep] = scores.boundary
        probs, total, names = whole_words(self.forms, self.concepts, prefix.tolist(), ends.tolist())
        skipped = float(sum(math.exp(float(shared.first[t])) for t in skipped_first))
        return ConceptDistribution(
            probs, total, skipped, 1 + scores.passes, context, len(ids) + scores.tokens, names
        )


@dataclass(frozen=True)
class Reply:
    """What a server returns for one prompt: log P of each prompt token after the first, and the tokens it
    lists for the position right after the prompt, as (decoded text, log-probability): its top-N."""

    prompt: Sequence[float]
    next: Sequence[tuple[str, float]]


#: Sends one prompt (token ids, no special tokens added) and returns the server's `Reply`.
PromptLogprobs = Callable[[list[int]], Awaitable[Reply]]


class ServedScorer:
    """Scores every concept of a category with a model behind a server that returns prompt log-probabilities
    (see the module docstring). `prompt_logprobs` sends one prompt and returns its `Reply` (the Inspect
    glue in `sublim.tasks.preference` gives one that calls `Model.generate`); the requests of a question
    run concurrently (Inspect's --max-connections bounds them)."""

    def __init__(
        self,
        tokenizer: Any,
        prompt_logprobs: PromptLogprobs,
        category: str | Category = "animal",
        *,
        chat_template: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_logprobs = prompt_logprobs
        self.category = get_category(category)
        self.chat_template = chat_template
        self.concepts = list(self.category.concepts)
        self.text = TokenText(tokenizer)
        self.forms = name_forms(tokenizer, self.category, self.text.ends_word)

    def _ends(self, token: str) -> bool:
        """Whether a listed next token ends the word: read by its id with the local tokenizer, as
        `ConceptScorer` does, when the server returns ids ("token_id:N", vLLM's return_tokens_as_token_ids);
        else by the text the server decoded (special tokens as their text, "<|im_end|>", or skipped: "")."""
        if token.startswith(TOKEN_ID):
            return self.text.ends_word(int(token[len(TOKEN_ID) :]))
        return ends_word(token) or not token

    def render(self, question: str, answer_prefix: str, system_prompt: str | None = None) -> str:
        return render_prompt(self.tokenizer, question, answer_prefix, system_prompt, self.chat_template)

    async def distribution(self, context: str) -> ConceptDistribution:
        ids = list(self.tokenizer(context, add_special_tokens=False)["input_ids"])
        replies = await asyncio.gather(*(self.prompt_logprobs([*ids, *form.tokens]) for form in self.forms))
        prefix, ends, missed = [], [], 0.0
        for form, reply in zip(self.forms, replies, strict=True):
            k = len(form.tokens)
            if len(reply.prompt) < k or not reply.next:
                raise SublimError(f"the server's reply lacks log-probabilities ({len(reply.prompt)} prompt, "
                                  f"{len(reply.next)} next; needed {k} and 1+)")  # fmt: skip
            name_lp = math.fsum(reply.prompt[-k:])
            end = [lp for text, lp in reply.next if self._ends(text)]
            unlisted = max(0.0, 1.0 - math.fsum(math.exp(lp) for _, lp in reply.next))
            prefix.append(name_lp)
            ends.append(_logsumexp(end))
            missed += math.exp(name_lp) * unlisted
        probs, total, names = whole_words(self.forms, self.concepts, prefix, ends)
        tokens = sum(len(ids) + len(f.tokens) for f in self.forms)
        return ConceptDistribution(probs, total, missed, len(self.forms), context, tokens, names)


def _logsumexp(values: Sequence[float]) -> float:
    from scipy.special import logsumexp

    return float(logsumexp(values)) if values else -math.inf


def _log_minus(log_a: float, log_bs: Sequence[float]) -> float:
    """log(exp(log_a) - sum(exp(log_bs))), clamped at -inf where rounding leaves nothing."""
    if not log_bs or not math.isfinite(log_a):
        return log_a
    from scipy.special import logsumexp

    ratio = math.exp(float(logsumexp(log_bs)) - log_a)
    return log_a + math.log1p(-ratio) if ratio < 1.0 else -math.inf
