"""Log-likelihoods of many continuations of one context from a local model, in batches that reuse the
context's KV cache (`SharedContext`), and plain full passes as the reference (`sequence_logliks`). Probability
mode (`sublim.probability.ConceptScorer`) and the lm-eval backend (`sublim.lmeval_backend`) run on it."""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Padded continuation positions per batched pass (each row attends to the shared context's KV cache):
#: small on a CPU, where a pass is compute-bound anyway; large on a GPU, where passes are few and wide.
DEFAULT_BATCH_TOKENS = 128
GPU_BATCH_TOKENS = 8192


@functools.cache
def _cache_field() -> str:
    """transformers 5 renamed the KV-cache argument and output field from past_key_values to cache."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def chunk_rows(
    lengths: Sequence[int], batch_tokens: int | None = DEFAULT_BATCH_TOKENS, batch_rows: int | None = None
) -> list[list[int]]:
    """Indices of rows (sequences of these padded widths) in batches of similar width, each at most
    `batch_tokens` padded positions and `batch_rows` rows (None: no limit; a lone row wider than
    `batch_tokens` gets a batch of its own)."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        width = lengths[i]  # sorted: the newest row is the widest
        if (
            chunks
            and (batch_tokens is None or (len(chunks[-1]) + 1) * width <= batch_tokens)
            and (batch_rows is None or len(chunks[-1]) < batch_rows)
        ):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


@dataclass(frozen=True)
class RowScores:
    """What `SharedContext.score` returns for each row (a token sequence right after the context), on the CPU.

    Attributes:
        loglik: log P(the row's tokens | context), float64.
        boundary: log P(a `boundary` token comes right after the row), float64 (-inf without `boundary`).
        greedy: whether each of the row's tokens is the most likely one where it stands (lm-eval's is_greedy).
        passes: batched model calls spent on the rows (the context pass not counted).
        tokens: padded positions those calls computed.
    """

    loglik: torch.Tensor
    boundary: torch.Tensor
    greedy: torch.Tensor
    passes: int
    tokens: int


class SharedContext:
    """One forward pass over a context; every row scored after it reuses its KV cache (no copy per batch)
    and computes, per position, one log-sum-exp and the log-probabilities it needs (not a full log-softmax).
    The one home of prefix-shared scoring: `ConceptScorer`, `sequence_logliks` and lm-eval's `sublim-hf`
    backend (`sublim.lmeval_backend`) all call it.

    `dtype` is the precision log-probabilities are computed in (None: the logits' own, as lm-eval's HFLM
    does by default)."""

    def __init__(self, model: Any, context_ids: Sequence[int], dtype: torch.dtype | None = None) -> None:
        import torch

        if not context_ids:
            raise ValueError("the context has no tokens")
        self.model = model
        self.dtype = dtype
        self.device = next(model.parameters()).device
        self.n_ctx = len(context_ids)
        with torch.inference_mode():
            ids = torch.tensor([list(context_ids)], device=self.device)
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            self.cache = getattr(out, _cache_field())
            last = _as(out.logits[0, -1], dtype)
            #: log P(first token of a row) over the vocabulary, float64 on the CPU
            self.first = torch.log_softmax(last, dim=-1).double().cpu()
            self.first_argmax = int(last.argmax())

    def score(
        self,
        rows: Sequence[Sequence[int]],
        *,
        boundary: torch.Tensor | None = None,
        batch_tokens: int | None = DEFAULT_BATCH_TOKENS,
        batch_rows: int | None = None,
    ) -> RowScores:
        """Score each row after the context. The model is fed each distinct row less its last token (with
        `boundary`: the whole row, whose last position gives the boundary mass), batched by width."""
        import torch

        with torch.inference_mode():
            return self._score(rows, boundary, batch_tokens, batch_rows)

    def _score(
        self,
        rows: Sequence[Sequence[int]],
        boundary: torch.Tensor | None,
        batch_tokens: int | None,
        batch_rows: int | None,
    ) -> RowScores:
        import torch

        if any(not r for r in rows):
            raise ValueError("a row has no tokens")
        n = len(rows)
        firsts = torch.tensor([r[0] for r in rows], dtype=torch.long)
        loglik = self.first[firsts].clone()
        greedy = firsts == self.first_argmax
        ends = torch.full((n,), -math.inf, dtype=torch.float64)
        # rows that share their fed tokens share a pass: "owl." and "owl," both feed " owl"
        feeds: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(rows):
            feed = tuple(r) if boundary is not None else tuple(r[:-1])
            if feed:
                feeds.setdefault(feed, []).append(i)
        unique = list(feeds)
        passes = tokens = 0
        mask = boundary.to(self.device) if boundary is not None else None
        for chunk in chunk_rows([len(f) for f in unique], batch_tokens, batch_rows):
            batch = [unique[c] for c in chunk]
            logits = self._forward(batch)
            passes += 1
            tokens += logits.shape[0] * logits.shape[1]
            lse = torch.logsumexp(logits, dim=-1)  # (B, w)
            top = logits.argmax(dim=-1)
            which, pos, target, owner = [], [], [], []
            for b, feed in enumerate(batch):
                for i in feeds[feed]:
                    for j in range(1, len(rows[i])):  # the logits at position j - 1 predict token j
                        which.append(b)
                        pos.append(j - 1)
                        target.append(rows[i][j])
                        owner.append(i)
            if which:
                w_, p_ = torch.tensor(which, device=self.device), torch.tensor(pos, device=self.device)
                t_ = torch.tensor(target, device=self.device)
                lp = (logits[w_, p_, t_] - lse[w_, p_]).double().cpu()
                hit = (top[w_, p_] == t_).cpu()
                o_ = torch.tensor(owner)
                loglik.index_add_(0, o_, lp)
                greedy &= torch.zeros(n, dtype=torch.long).index_add_(0, o_, (~hit).long()) == 0
            if mask is not None:
                last = torch.tensor([len(f) - 1 for f in batch], device=self.device)
                index = torch.arange(len(batch), device=self.device)
                final = logits[index, last]
                end = (torch.logsumexp(final[:, mask], dim=-1) - lse[index, last]).double()
                for b, feed in enumerate(batch):
                    ends[feeds[feed]] = end[b].cpu()
        return RowScores(loglik, ends, greedy, passes, tokens)

    def _forward(self, batch: Sequence[Sequence[int]]) -> torch.Tensor:
        """Logits (in `dtype`) at every position of each fed sequence (right-padded) after the context."""
        import torch

        width = max(len(f) for f in batch)
        inputs = torch.zeros((len(batch), width), dtype=torch.long)
        attention = torch.ones((len(batch), self.n_ctx + width), dtype=torch.long)
        for b, feed in enumerate(batch):
            inputs[b, : len(feed)] = torch.tensor(feed)
            attention[b, self.n_ctx + len(feed) :] = 0
        positions = (self.n_ctx + torch.arange(width)).unsqueeze(0).expand(len(batch), -1)
        with _eager_attention_on_cpu(self.model, self.device.type):
            out = self.model(
                input_ids=inputs.to(self.device),
                attention_mask=attention.to(self.device),
                position_ids=positions.to(self.device),
                use_cache=True,
                **{_cache_field(): _fork(self.cache, len(batch))},
            )
        return _as(out.logits, self.dtype)


@contextlib.contextmanager
def _eager_attention_on_cpu(model: Any, device: str) -> Iterator[None]:
    """On the CPU, a few queries per row over a cached context run faster as transformers' eager attention
    (two batched matmuls) than through SDPA's kernel (docs/results/bench-lm-eval.md compares the scorer with a
    plain pass); the model's own setting is restored after the pass. Results agree to float rounding."""
    config: Any = getattr(model, "config", None)
    if device != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        yield
        return
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"


def _as(logits: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return logits if dtype is None else logits.to(dtype)


def _fork(cache: Any, rows: int) -> Any:
    """A cache that holds the context for `rows` rows: views of the context's keys and values, expanded
    (a model's pass concatenates its own onto them into new tensors, leaving the context's intact). Caches
    of other kinds (sliding windows, ...) are copied and repeated."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if layers is None or any(type(layer) is not DynamicLayer for layer in layers):
        fork = copy.deepcopy(cache)
        fork.batch_repeat_interleave(rows)
        return fork
    fork = copy.copy(cache)
    fork.layers = []
    for layer in layers:
        view = copy.copy(layer)
        if layer.is_initialized and layer.keys is not None and layer.keys.numel():
            view.keys = layer.keys.expand(rows, -1, -1, -1)
            view.values = layer.values.expand(rows, -1, -1, -1)
        fork.layers.append(view)
    return fork


def sequence_logliks(
    model: Any,
    context_ids: Sequence[int],
    rows: Sequence[Sequence[int]],
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> torch.Tensor:
    """Log-likelihood of each row (a token sequence) right after the context: one pass over the context,
    then batched passes over the rows that share its KV cache (`SharedContext`), float32 log-probabilities."""
    import torch

    return (
        SharedContext(model, context_ids, torch.float32).score(rows, batch_tokens=batch_tokens).loglik.float()
    )
