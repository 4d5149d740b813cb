"""lm-eval model backend `sublim-hf`: lm-eval's HF backend whose log-likelihood requests share their context.

lm-eval's `hf` scores every (context, continuation) request as its own full sequence, so a multiple-choice
question recomputes its context once per choice (1,908 times for `sublim_animal_pref_lp`). `sublim-hf` groups
the requests by context tokens and scores each group with `sublim.probability.SharedContext`: one pass over
the context, then batched passes over the continuations on its KV cache. The log-likelihoods and is-greedy
flags are HFLM's (same tokens, same positions; float rounding apart). Generation, rolling log-likelihood,
loading (dtype, device, `peft=`, `gguf_file=`, ...) and batch-size detection are HFLM's own.

Registering: `sublim lm-eval --model sublim-hf ...` registers it; plain lm-eval users run
`python -m sublim.lmeval run --model sublim-hf --include_path ... ...` (lm-eval's CLI with the
backend registered) or `import sublim.lmeval_backend` before `lm_eval.simple_evaluate(model="sublim-hf")`.
(`--include_path` registers tasks only, never models.)

What it cannot do is refused in one line: encoder-decoder models, prompt-learning PEFT adapters (prompt,
prefix or P-tuning: their virtual tokens sit in front of the context, not in its KV cache).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm  # type: ignore[import-untyped]

from sublim.continuations import SharedContext
from sublim.errors import SublimError

#: The name `--model` takes.
NAME = "sublim-hf"
#: PEFT methods whose virtual tokens the shared KV cache cannot hold.
_PROMPT_LEARNING = frozenset({"PROMPT_TUNING", "MULTITASK_PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "CPT"})

#: A request as HFLM's `_loglikelihood_tokens` takes it: ((context, continuation), context ids, cont ids).
Request = tuple[tuple[str, str] | None, list[int], list[int]]


class UnsupportedModelError(SublimError):
    """A model or adapter whose log-likelihoods a shared context cannot give exactly."""


class SublimHFLM(HFLM):  # type: ignore[misc]  # lm-eval is untyped
    """HFLM with prefix-shared log-likelihoods. `batch_size` (an int or `auto`) caps the continuations per
    batched pass; `auto` detects it as HFLM does for the longest request."""

    def __init__(self, pretrained: Any, **kwargs: Any) -> None:
        from sublim.models import check_lm_eval_model

        check_lm_eval_model({"pretrained": pretrained, **kwargs})  # no checkpoint code, by any route
        refuse_before_loading(kwargs)
        super().__init__(pretrained, **kwargs)
        if self.backend != "causal":
            raise UnsupportedModelError(
                f"--model {NAME}: {pretrained} is an encoder-decoder model; use --model hf for it"
            )
        for config in (getattr(self.model, "peft_config", None) or {}).values():
            if getattr(config, "is_prompt_learning", False):
                raise UnsupportedModelError(_prompt_learning(str(config.peft_type)))
        self._share = True

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """HFLM's own: each rolling window has a context of its own, so there is nothing to share."""
        self._share = False
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)  # type: ignore[no-any-return]
        finally:
            self._share = True

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        if not self._share:
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)  # type: ignore[no-any-return]
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        # what would not fit the model's window: HFLM truncates it from the left, so HFLM scores it
        long = [i for i, (_, ctx, cont) in enumerate(requests) if len(ctx) + len(cont) > self.max_length + 1]
        if long:
            scored = super()._loglikelihood_tokens([requests[i] for i in long], True, override_bs)
            for i, answer in zip(long, scored, strict=True):
                results[i] = answer
        skip = set(long)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (_, ctx, _cont) in enumerate(requests):
            if i not in skip:
                groups.setdefault(tuple(ctx), []).append(i)
        rows = self._rows_per_pass([requests[i] for i in range(len(requests)) if i not in skip], override_bs)
        bar = tqdm(total=len(requests) - len(long), disable=disable_tqdm or self.rank != 0, desc=f"{NAME}")
        with torch.autocast(
            device_type=self.device.type,
            dtype=self.mixed_precision_dtype,
            enabled=self.mixed_precision_dtype is not None,
        ):
            for context, index in groups.items():
                shared = SharedContext(self.model, context, self.softmax_dtype)
                scores = shared.score([requests[i][2] for i in index], batch_tokens=None, batch_rows=rows)
                for k, i in enumerate(index):
                    answer = (float(scores.loglik[k]), bool(scores.greedy[k]))
                    results[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
                bar.update(len(index))
        bar.close()
        return [r for r in results if r is not None]

    def _rows_per_pass(self, requests: Sequence[Request], override_bs: int | None) -> int:
        """Continuations per batched pass: the batch size, or for `auto` HFLM's detection on the longest
        request (a whole sequence: an upper bound on what a continuation pass on the cache needs)."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        if override_bs is not None:
            return override_bs
        if not requests:
            return 1
        longest = max(range(len(requests)), key=lambda i: len(requests[i][1]) + len(requests[i][2]))
        size = int(self._detect_batch_size(list(requests), longest))
        print(f"{NAME}: detected batch size {size} (continuations per pass)")
        return size


if __name__ != "__main__":  # run as `python -m`, main() imports this module by name, which registers it once
    register_model(NAME)(SublimHFLM)


def _prompt_learning(kind: str) -> str:
    return f"--model {NAME}: a {kind} adapter puts virtual tokens before the context; use --model hf for it"


def refuse_before_loading(kwargs: dict[str, Any]) -> None:
    """What can be refused from the arguments alone, before any weights load."""
    if str(kwargs.get("backend", "default")) == "seq2seq":
        raise UnsupportedModelError(f"--model {NAME} scores decoder-only models; use --model hf for seq2seq")
    peft = kwargs.get("peft")
    config = Path(str(peft)) / "adapter_config.json" if peft else None
    if config is not None and config.is_file():
        kind = str(json.loads(config.read_text()).get("peft_type", "")).upper()
        if kind in _PROMPT_LEARNING:
            raise UnsupportedModelError(_prompt_learning(kind))
