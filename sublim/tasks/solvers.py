"""Inspect solvers of the preference tasks: the system prompt, and probability mode's concept distribution
(hf/ models scored locally, served models through prompt log-probabilities), with the checks that refuse a
model probability mode cannot score. Task parameters that fail raise `TaskParameterError`."""

from __future__ import annotations

from typing import Any

from inspect_ai._util.error import PrerequisiteError
from inspect_ai.model import ChatMessageSystem, GenerateConfig, ModelOutput, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from sublim.contexts import prompt_sha256
from sublim.errors import SublimError


class TaskParameterError(SublimError, PrerequisiteError, ValueError):
    """A task parameter (-T) with a value the task cannot use. A PrerequisiteError, so `inspect eval` shows
    the message alone (no traceback) and exits 1; `sublim` prints it as its own one-line error."""

    def __init__(self, message: str) -> None:
        from rich.markup import escape

        Exception.__init__(self, message)
        self.message = escape(message)  # Inspect renders it as rich markup


@solver
def with_system_prompt(system_prompt: str | None = None) -> Solver:
    """Put the system prompt first, verbatim (None: no system message, so the chat template's default)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if system_prompt is not None:
            state.messages.insert(0, ChatMessageSystem(content=system_prompt))
        return state

    return solve


@solver
def concept_probabilities(
    category: str = "animal",
    system_prompt: str | None = None,
    skip_below: float | None = None,
    tokenizer: str | None = None,
) -> Solver:
    """Probability mode: the model's distribution over every concept after the answer prefix.

    hf/ models: the model and tokenizer Inspect's Hugging Face provider loaded score every name locally
    (`sublim.probability.ConceptScorer`). Served models (`vllm-completions/`, `openai-api-completions/`):
    prompt log-probabilities through `Model.generate` (`sublim.probability.ServedScorer`), with the
    model's tokenizer loaded here (`tokenizer`, default the model's name). Other providers are refused.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        from sublim.probability import ServedScorer

        scorer = _concept_scorer(category, skip_below, tokenizer)
        context = scorer.render(state.metadata["question"], state.metadata["answer_prefix"], system_prompt)
        if isinstance(scorer, ServedScorer):
            dist = await scorer.distribution(context)
        else:
            dist = scorer.distribution(context)
        state.metadata["sublim_distribution"] = {
            "probs": dist.probs,
            "names": dist.names,
            "concept_mass": dist.concept_mass,
            "skipped_bound": dist.skipped_bound,
            "forward_passes": dist.forward_passes,
            "context": dist.context,
            "prompt_sha256": prompt_sha256(dist.context),
        }
        best = dist.top(1)[0][0]
        state.output = ModelOutput.from_content(str(state.model), f"{state.metadata['answer_prefix']} {best}")
        return state

    return solve


#: Inspect providers that send pre-tokenized prompts to /v1/completions and parse vLLM's prompt_logprobs.
SERVED_PROVIDERS = ("vllm-completions", "openai-api-completions")
_SCORERS: dict[tuple[int, str, float | None, str | None], Any] = {}


def _is_hf(api: Any) -> bool:
    """Inspect's hf/ provider: it keeps the model and tokenizer it loaded as `model` and `tokenizer`
    (attributes, not documented API; tests/test_tasks.py fails if they change)."""
    return hasattr(getattr(api, "model", None), "forward") and getattr(api, "tokenizer", None) is not None


def _provider(model: Any) -> str:
    return str(model).split("/", 1)[0]


def _concept_scorer(category: str, skip_below: float | None, tokenizer: str | None) -> Any:
    model = get_model()
    key = (id(model.api), category, skip_below, tokenizer)
    if key in _SCORERS:
        return _SCORERS[key]
    if _is_hf(model.api):
        from sublim.probability import DEFAULT_SKIP_BELOW, ConceptScorer

        api: Any = model.api
        _SCORERS[key] = ConceptScorer(
            api.model,
            api.tokenizer,
            category,
            skip_below=DEFAULT_SKIP_BELOW if skip_below is None else skip_below,
            chat_template=getattr(api, "chat_template", None),
        )
    elif _provider(model) in SERVED_PROVIDERS:
        from sublim.models import load_tokenizer
        from sublim.probability import ServedScorer

        _SCORERS[key] = ServedScorer(
            load_tokenizer(_tokenizer(model, tokenizer)), _server_logprobs(model), category
        )
    else:
        raise SublimError(_unsupported(model))
    return _SCORERS[key]


def _tokenizer(model: Any, tokenizer: str | None) -> str:
    """A served model's tokenizer: `-T tokenizer`, else the model's name (less the service prefix of
    openai-api-completions/<service>/<model>)."""
    if tokenizer:
        return tokenizer
    name = str(model.name)
    return name.split("/", 1)[-1] if _provider(model) == "openai-api-completions" and "/" in name else name


def _unsupported(model: Any) -> str:
    hint = (
        f"use --model vllm-completions/{model.name} (the same vLLM server, raw prompts)"
        if _provider(model) == "vllm"
        else "use mode=sample, --model hf/..., or a vLLM/SGLang server through openai-api-completions/"
    )
    return f"-T mode=probability needs prompt log-probabilities, which {model} does not give: {hint}"


def _server_logprobs(model: Any) -> Any:
    """`sublim.probability.PromptLogprobs` through Inspect: a pre-tokenized prompt to /v1/completions with
    GenerateConfig(prompt_logprobs=1) and the top log-probabilities of one generated token, named by token id
    where the server can (vLLM), else by text with special tokens not skipped."""
    from inspect_ai.model import ChatMessageUser

    from sublim.probability import SERVED_TOP, Reply

    config = GenerateConfig(
        prompt_logprobs=1,
        logprobs=True,
        top_logprobs=SERVED_TOP,
        max_tokens=1,
        temperature=0.0,
        extra_body={"skip_special_tokens": False, "return_tokens_as_token_ids": True},
    )

    async def ask(ids: list[int]) -> Reply:
        message = ChatMessageUser(content="", metadata={"prompt_token_ids": ids})
        out = await model.generate([message], config=config)
        choice = out.choices[0] if out.choices else None
        if choice is None or choice.prompt_logprobs is None or choice.logprobs is None:
            raise SublimError(
                f"{model} returned no prompt log-probabilities: -T mode=probability needs a server with "
                "vLLM's prompt_logprobs (vLLM, SGLang)"
            )
        after = choice.logprobs.content[0]
        listed = [(t.token, t.logprob) for t in after.top_logprobs or []] or [(after.token, after.logprob)]
        return Reply([c.logprob for c in choice.prompt_logprobs.content], listed)

    return ask


def check_probability_model(tokenizer: str | None) -> None:
    """Probability mode needs an hf/ model or a server with prompt log-probabilities: refuse any other
    provider up front, and load a served model's tokenizer (so a bad one fails here). Inspect sets the active
    model before it builds tasks (a private function; tests/test_bad_inputs.py fails if it moves); outside an
    eval there is none and the solver's own check remains."""
    from inspect_ai.model._model import active_model

    model = active_model()
    if model is None or _is_hf(model.api):
        return
    if _provider(model) not in SERVED_PROVIDERS:
        raise TaskParameterError(_unsupported(model))
    from sublim.models import load_tokenizer

    try:
        load_tokenizer(_tokenizer(model, tokenizer))
    except SublimError as e:
        raise TaskParameterError(f"-T tokenizer (the served model's tokenizer): {e}") from None
