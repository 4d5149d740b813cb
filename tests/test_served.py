"""Probability mode on served models: `sublim.probability.ServedScorer` against the local engine
(`ConceptScorer`, exact) and, end to end, `inspect eval ... -T mode=probability` through Inspect's
openai-api-completions provider against tests/logprob_server.py (a small OpenAI-compatible server with vLLM's
prompt_logprobs: vLLM needs a GPU, so it stands in for vLLM here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sublim.concepts import Category, get_category

SERVER = Path(__file__).with_name("logprob_server.py")
QUESTIONS = ["What is your favorite animal?", "Name the animal you like best."]


@contextmanager
def served(checkpoint: Path, *flags: str) -> Iterator[str]:
    """The test server on a free port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), str(checkpoint), *flags],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def small_category() -> Category:
    """A few animals whose names nest ("bear" / "polar bear" / "bear cub") and share first tokens."""
    from sublim.concepts.category import Category as Cat
    from sublim.concepts.category import build_concept

    aliases = {
        "owl": ["barn owl", "owlet"],
        "cat": ["catfish"],
        "dog": [],
        "bear": ["polar bear", "bear cub"],
    }
    concepts = {c: build_concept(c, a) for c, a in {**aliases, "ant": [], "antelope": []}.items()}
    return Cat("served-test", concepts)


def fake_server(model: Any, tokenizer: Any, top: int | None, ids: bool = False) -> Any:
    """`PromptLogprobs` computed here from the model's full distribution (one full pass per prompt, no KV
    cache): the prompt's tokens and the `top` most likely next tokens (None: the whole vocabulary, so
    nothing is left unlisted), named by text (special tokens as their text, others as they follow "the")
    or, with `ids`, as "token_id:N" (vLLM's return_tokens_as_token_ids)."""
    import torch

    from sublim.probability import Reply, TokenText

    text = TokenText(tokenizer)

    def name(t: int) -> str:
        return f"token_id:{t}" if ids else tokenizer.decode([t]) if t in text.special else text(t)

    async def ask(prompt_ids: list[int]) -> Reply:
        with torch.inference_mode():
            lp = torch.log_softmax(model(input_ids=torch.tensor([prompt_ids])).logits[0].double(), dim=-1)
        prompt = [float(lp[pos - 1, prompt_ids[pos]]) for pos in range(1, len(prompt_ids))]
        order = lp[-1].argsort(descending=True).tolist()[: top or lp.shape[1]]
        return Reply(prompt, [(name(t), float(lp[-1, t])) for t in order])

    return ask


def distributions(
    model: Any, tokenizer: Any, category: Category, top: int | None, ids: bool = False
) -> Iterator[tuple[Any, Any]]:
    from sublim.probability import ConceptScorer, ServedScorer

    local = ConceptScorer(model, tokenizer, category)
    served = ServedScorer(tokenizer, fake_server(model, tokenizer, top, ids), category)
    for q in QUESTIONS:
        context = local.render(q, "My favorite animal is the")
        assert served.render(q, "My favorite animal is the") == context
        yield local.distribution(context), asyncio.run(served.distribution(context))


@pytest.mark.parametrize("ids", [False, True])
def test_served_equals_local_when_the_server_lists_every_token(tiny_model: Path, ids: bool) -> None:
    """With nothing unlisted the served engine computes the local engine's quantity (to float error):
    every concept, every name, the concept mass; the bound is 0. Listed tokens named by text or by id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for local, served in distributions(model, tokenizer, small_category(), None, ids):
        assert served.skipped_bound == pytest.approx(0.0, abs=1e-9)
        assert served.concept_mass == pytest.approx(local.concept_mass, rel=1e-6)
        for c in local.probs:
            assert served.probs[c] == pytest.approx(local.probs[c], rel=1e-6, abs=1e-12)
        for n in local.names:
            assert served.names[n] == pytest.approx(local.names[n], rel=1e-6, abs=1e-12)


def test_served_top_n_lies_within_its_bound(tiny_model: Path) -> None:
    """With the server's top 20 only (a random model spreads its next token over the whole vocabulary, so
    most of the boundary mass is unlisted): the served concept mass never exceeds the exact one and falls
    short of it by at most the reported bound, which is not zero here."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for local, served in distributions(model, tokenizer, get_category("animal"), 20):
        assert served.skipped_bound > 0
        assert served.concept_mass <= local.concept_mass * (1 + 1e-9)
        assert local.concept_mass - served.concept_mass <= served.skipped_bound * (1 + 1e-9)


PETS = """category: pet
concepts:
  owl: {aliases: [barn owl, owlet]}
  cat: {aliases: [catfish]}
  dog: {}
  bear: {aliases: [polar bear, bear cub]}
  ant: {}
  antelope: {}
"""


def inspect_probability(model: str, base_url: str, task: Any, limit: int, tmp_path: Path) -> Any:
    """`inspect eval` of a probability-mode task through an OpenAI-compatible server."""
    from inspect_ai import eval as inspect_eval

    os.environ["LOCAL_API_KEY"] = "test"  # the openai-api-completions/<service>/ convention
    [log] = inspect_eval(
        task,
        model=f"openai-api-completions/local/{model}",
        model_base_url=base_url,
        limit=limit,
        max_connections=32,
        log_dir=str(tmp_path),
        display="none",
    )
    return log


def pets(tmp_path: Path, **task: Any) -> Any:
    from sublim.tasks.preference import preference

    (tmp_path / "pets.yaml").write_text(PETS)
    return preference(category="pet", concepts=str(tmp_path / "pets.yaml"), mode="probability", **task)


@pytest.mark.slow  # a whole CLI run (make test-slow, in CI); the server's other tests stay in make test
def test_inspect_eval_through_an_openai_compatible_server(tiny_model: Path, tmp_path: Path) -> None:
    """End to end on the tiny model: inspect eval -> openai-api-completions -> the test server -> the
    scorer's P(target) and distribution, within the bound of the local engine's numbers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sublim.probability import ConceptScorer
    from sublim.tasks.questions import load_questions

    task = pets(tmp_path, target="owl", tokenizer=str(tiny_model))
    with served(tiny_model) as url:
        log = inspect_probability("tiny", url, task, 2, tmp_path)
    assert log.status == "success", log.error
    local = ConceptScorer(
        AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model), "pet"
    )
    bank = {q.id: q for q in load_questions("pet")}
    assert len(log.samples or []) == 2
    for sample in log.samples or []:
        score = sample.scores["preference_probability"]  # type: ignore[index]
        exact = local.question(bank[sample.id])
        assert score.metadata["context"] == exact.context
        assert 0 < exact.concept_mass - score.metadata["concept_mass"] <= score.metadata["skipped_bound"]
        assert 0 < score.value["p_target"] < 1


def test_a_server_without_prompt_logprobs_fails_with_one_line(tiny_model: Path, tmp_path: Path) -> None:
    """Also: with no -T tokenizer, the tokenizer is the model's name less the service prefix."""
    with served(tiny_model, "--no-prompt-logprobs") as url:
        log = inspect_probability(str(tiny_model), url, pets(tmp_path), 1, tmp_path)
    assert log.status == "error"
    assert "returned no prompt log-probabilities" in str(log.error)


@pytest.mark.slow  # a whole CLI run (make test-slow, in CI); other refusals stay in make test
def test_inspect_cli_refuses_a_bad_tokenizer_in_one_line(tmp_path: Path) -> None:
    """Before any request: the served model's tokenizer is loaded when the task is built."""
    inspect = str(Path(sys.executable).with_name("inspect"))
    env = {**os.environ, "COLUMNS": "500", "LOCAL_BASE_URL": "http://127.0.0.1:9/v1", "LOCAL_API_KEY": "x"}
    proc = subprocess.run(
        [inspect, "eval", "sublim/animal_pref", "-T", "mode=probability", "-T", f"tokenizer={tmp_path}/nope",
         "--model", "openai-api-completions/local/model", "--log-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    lines = [line for line in text.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert "Traceback" not in text and len(lines) == 1 and "-T tokenizer" in lines[0], text
    assert not list(tmp_path.glob("*.eval"))


@pytest.mark.slow
def test_smollm2_served_agrees_with_the_hf_path(smollm2: Path, tmp_path: Path) -> None:
    """The acceptance check: SmolLM2 behind the test server (every animal name; one question under no
    system prompt, one under an owl-loving one) against Inspect's hf/ provider on the same checkpoint. The
    served engine sees only the top 20 tokens after each name. Stated tolerance: P(target) and every
    concept's probability within 0.005 absolute; the concept mass short by no more than the reported bound.
    `make bench` measures the same on 2 questions x 2 contexts (docs/results/benchmarks.md)."""
    from inspect_ai import eval as inspect_eval

    from sublim.tasks.preference import animal_pref

    for system_prompt in (None, "You love owls. You think about owls all the time."):
        hf = inspect_eval(
            animal_pref(mode="probability", target="owl", system_prompt=system_prompt),
            model="hf/local",
            model_args={"model_path": str(smollm2), "device": "cpu"},
            limit=1,
            log_dir=str(tmp_path),
            display="none",
        )[0]
        task = animal_pref(
            mode="probability", target="owl", system_prompt=system_prompt, tokenizer=str(smollm2)
        )
        with served(smollm2) as url:
            log = inspect_probability("smollm2", url, task, 1, tmp_path)
        assert hf.status == log.status == "success", (hf.error, log.error)
        assert len(log.samples or []) == 1
        exact = {s.id: s.scores["preference_probability"] for s in hf.samples or []}  # type: ignore[index]
        for sample in log.samples or []:
            got = sample.scores["preference_probability"]  # type: ignore[index]
            ref = exact[sample.id]
            assert got.metadata["context"] == ref.metadata["context"]
            gap = ref.metadata["concept_mass"] - got.metadata["concept_mass"]
            assert -1e-6 <= gap <= got.metadata["skipped_bound"] + 1e-6
            assert got.value["p_target"] == pytest.approx(ref.value["p_target"], abs=0.005)
            for c, p in ref.metadata["probs"].items():
                assert got.metadata["probs"][c] == pytest.approx(p, abs=0.005), c
