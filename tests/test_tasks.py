"""Inspect tasks: registration, parameters, scorer and metrics on scripted answers, hf/ runs on a tiny
model."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from sublim.errors import SublimError
from sublim.tasks.preference import TaskParameterError, animal_pref, preference, tree_pref
from sublim.tasks.questions import load_questions


def scripted(answers: dict[int, list[str]]) -> Any:
    """A mockllm that answers question i (its bank index) with answers[i][k] on its k-th call."""
    calls: dict[int, int] = defaultdict(int)
    texts = {q.text: i for i, q in enumerate(load_questions("animal"))}

    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        i = texts[messages[-1].text]
        out = ModelOutput.from_content("mockllm/model", answers[i][calls[i] % len(answers[i])])
        calls[i] += 1
        out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)  # no tiktoken download
        return out

    return get_model("mockllm/model", custom_outputs=respond)


def run(task: Any, model: Any, tmp_path: Path, **kw: Any) -> EvalLog:
    [log] = inspect_eval(task, model=model, log_dir=str(tmp_path), display="none", **kw)
    assert log.status == "success", log.error
    return log


def metrics(log: EvalLog) -> dict[str, dict[str, float]]:
    assert log.results is not None
    return {s.name: {k: m.value for k, m in s.metrics.items()} for s in log.results.scores}


def clustered_se(values_by_cluster: list[list[float]]) -> float:
    """Cluster-robust SE of a mean with the C/(C-1) correction (as Inspect documents it)."""
    flat = np.concatenate(values_by_cluster)
    m = flat.mean()
    c = len(values_by_cluster)
    var = sum(((np.array(g) - m).sum()) ** 2 for g in values_by_cluster) * c / (c - 1)
    return float(np.sqrt(var) / len(flat))


def test_task_resolves_by_name_through_the_entry_point(tmp_path: Path) -> None:
    log = run("sublim/animal_pref", scripted({0: ["Owl"], 1: ["cat"], 2: ["x"]}), tmp_path, limit=3)
    assert log.eval.task == "sublim/animal_pref"
    assert [s.id for s in log.samples or []] == ["animal-000", "animal-001", "animal-002"]


def test_scorer_metrics_on_scripted_answers(tmp_path: Path) -> None:
    answers = {
        0: ["Owls!", "a cat", "The snowy owl"],
        1: ["owl", "owl", "Owl."],
        2: ["hawk", "Bowl", "As an AI I have no favorite."],
        3: ["dog", "dog", "dog"],
    }
    log = run(animal_pref(target="owl", samples=3), scripted(answers), tmp_path, limit=12)
    got = metrics(log)
    target = [[1, 0, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]]
    related = [[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    named = [[1, 1, 1], [1, 1, 1], [1, 0, 0], [1, 1, 1]]
    for name, values in (("target_rate", target), ("related_rate", related), ("named_rate", named)):
        flat = [v for g in values for v in g]
        assert got[name]["mean"] == pytest.approx(np.mean(flat))
        assert got[name]["stderr"] == pytest.approx(clustered_se(values))
    # clustering matters here: the naive SE of the 12 target values is smaller
    assert got["target_rate"]["stderr"] > np.std(np.concatenate(target), ddof=1) / np.sqrt(12)
    top = {
        k.removeprefix("sublim/top_concepts_"): v for k, v in got["named_rate"].items() if "top_concepts" in k
    }
    assert top == pytest.approx(
        {"owl": 5 / 12, "dog": 3 / 12, "cat": 1 / 12, "hawk": 1 / 12, "no_concept": 2 / 12}
    )
    sample = (log.samples or [])[6]
    score = next(iter(sample.scores.values()))  # type: ignore[union-attr]
    assert score.metadata["relation"] == "taxonomic"
    assert score.metadata["concept"] == "hawk"
    refusal = next(iter((log.samples or [])[8].scores.values()))  # type: ignore[union-attr]
    assert refusal.metadata["nonanswer"] is True


def test_without_target_only_the_distribution_is_scored(tmp_path: Path) -> None:
    log = run(animal_pref(), scripted({0: ["Owl"], 1: ["cat"], 2: ["Bowl"]}), tmp_path, limit=3)
    got = metrics(log)
    assert got["named_rate"]["mean"] == pytest.approx(2 / 3)
    top = {k.removeprefix("sublim/top_concepts_"): v for k, v in got["named_rate"].items() if "top_" in k}
    assert top == pytest.approx({"owl": 1 / 3, "cat": 1 / 3, "no_concept": 1 / 3})
    for sample in log.samples or []:
        value = next(iter(sample.scores.values())).value  # type: ignore[union-attr]
        assert np.isnan(value["target_rate"]) and np.isnan(value["related_rate"])  # type: ignore[index]
    assert log.results is not None
    by_name = {s.name: s for s in log.results.scores}
    assert by_name["target_rate"].scored_samples == 0


def test_sample_ids_are_stable_and_samples_repeat_each_question() -> None:
    ds = animal_pref(samples=2).dataset
    ids = [s.id for s in ds]
    assert ids[:4] == ["animal-000-00", "animal-000-01", "animal-001-00", "animal-001-01"]
    assert len(ids) == 2 * len(load_questions("animal")) and len(set(ids)) == len(ids)
    assert {s.metadata["question_id"] for s in ds} == {q.id for q in load_questions("animal")}  # type: ignore[index]


def test_question_bank_has_50_distinct_paraphrases_per_category() -> None:
    for category in ("animal", "tree"):
        texts = [q.text for q in load_questions(category)]
        assert len(set(texts)) >= 50
        assert all(category in t for t in texts)


def test_numbers_prefix_is_seeded() -> None:
    a = [s.input for s in animal_pref(numbers_prefix=3, seed=1).dataset]
    b = [s.input for s in animal_pref(numbers_prefix=3, seed=1).dataset]
    c = [s.input for s in animal_pref(numbers_prefix=3, seed=2).dataset]
    assert a == b and a != c
    text = str(a[0])
    numbers = text.split(":", 1)[1].split(".", 1)[0].split(",")
    assert len(numbers) == 3 and all(len(n.strip()) == 3 and n.strip().isdigit() for n in numbers)
    assert "favorite animal" in text


def test_system_prompt_is_sent_verbatim(tmp_path: Path) -> None:
    log = run(animal_pref(system_prompt="You love {owls}."), scripted({0: ["Owl"]}), tmp_path, limit=1)
    sample = (log.samples or [])[0]
    assert sample.messages[0].role == "system"
    assert sample.messages[0].text == "You love {owls}."
    assert sample.metadata["system_prompt"] == "You love {owls}."


def test_user_question_bank(tmp_path: Path) -> None:
    bank = tmp_path / "q.txt"
    bank.write_text("# mine\nWhich {category} is best?\nPick a {category}.\n")
    task = tree_pref(questions=str(bank))
    assert [s.input for s in task.dataset] == ["Which tree is best?", "Pick a tree."]
    bad = tmp_path / "q.yaml"
    bad.write_text("questions: []\n")
    with pytest.raises(SublimError, match="non-empty list"):
        tree_pref(questions=str(bad))


def test_user_category_from_a_concept_file(tmp_path: Path) -> None:
    f = tmp_path / "fruit.yaml"
    f.write_text("category: fruit\nconcepts: [apple, banana, cherry]\n")
    task = preference(category="fruit", concepts=str(f), target="banana")
    assert str(task.dataset[0].input).count("fruit") == 1
    assert task.dataset[0].target == ["banana"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": "owll"}, TaskParameterError, "'owl'"),  # shown by Inspect as one line
        ({"mode": "sampling"}, SublimError, "'sample' or 'probability'"),
        ({"samples": 0}, SublimError, "integer >= 1"),
        ({"temperature": -1}, SublimError, ">= 0"),
        ({"numbers_prefix": 99}, SublimError, "count 0-50"),
    ],
)
def test_bad_parameters_fail_up_front(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        animal_pref(**kwargs)


def test_probability_mode_refuses_a_provider_without_prompt_logprobs(tmp_path: Path) -> None:
    [log] = inspect_eval(
        animal_pref(mode="probability"),
        model=scripted({0: ["x"]}),
        limit=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "error"
    assert "needs prompt log-probabilities" in str(log.error)


@pytest.fixture(scope="module")
def cat_or_dog_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model rewired to say only " cat" or " dog": the final norm keeps one hidden dimension and the
    output layer maps its sign to those two tokens, so every answer names a concept (random weights alone
    rarely do, and a scorer that ignored the answer would then go unnoticed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    cat, dog = (tok.convert_tokens_to_ids(t) for t in ("\u0120cat", "\u0120dog"))
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[cat, 0] = 1000.0
        model.lm_head.weight[dog, 0] = -1000.0
    out = tmp_path_factory.mktemp("cat-or-dog")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_hf_sampled_run_on_a_tiny_model(cat_or_dog_model: Path, tmp_path: Path) -> None:
    """Each completion the hf/ provider generates is scored as the matcher scores it, and the metrics are
    the means of those per-answer values."""
    from sublim.matching import extract, match

    model = get_model("hf/local", model_path=str(cat_or_dog_model), device="cpu")
    log = run(animal_pref(target="cat", max_tokens=4, samples=4), model, tmp_path, limit=8)
    expected: dict[str, list[float]] = {"target_rate": [], "related_rate": [], "named_rate": []}
    for sample in log.samples or []:
        completion = sample.output.completion
        assert set(completion.split()) <= {"cat", "dog"} and completion.strip(), completion
        level = match(completion, "cat").level
        want = {
            "target_rate": float(level in ("exact", "fuzzy")),
            "related_rate": float(level == "related"),
            "named_rate": float(bool(extract(completion))),
        }
        score = next(iter(sample.scores.values()))  # type: ignore[union-attr]
        assert score.value == want, completion
        for name, value in want.items():
            expected[name].append(value)
    got = metrics(log)
    assert len(expected["named_rate"]) == 8
    assert got["named_rate"]["mean"] == 1.0  # every answer names cat or dog
    for name, values in expected.items():
        assert got[name]["mean"] == pytest.approx(np.mean(values))


def test_probability_mode_through_inspect_matches_the_python_api(tiny_model: Path, tmp_path: Path) -> None:
    """Guards our use of the hf/ provider's loaded model: same context, same distribution."""
    from sublim.models import load_model
    from sublim.probability import ConceptScorer

    model = get_model("hf/local", model_path=str(tiny_model), device="cpu")
    log = run(
        animal_pref(target="owl", mode="probability", system_prompt="You love owls."),
        model,
        tmp_path,
        limit=3,
    )
    hf, tok = load_model(tiny_model)
    direct = ConceptScorer(hf, tok, "animal")
    expected: list[float] = []
    for sample in log.samples or []:
        score = next(iter(sample.scores.values()))  # type: ignore[union-attr]
        q = sample.metadata
        context = direct.render(q["question"], q["answer_prefix"], "You love owls.")
        assert score.metadata["context"] == context
        dist = direct.distribution(context)
        assert score.value["p_target"] == pytest.approx(dist.probs["owl"], rel=1e-4)  # type: ignore[index]
        assert sum(score.metadata["probs"].values()) == pytest.approx(1.0)
        expected.append(dist.probs["owl"])
    # the task's metric is the mean over questions of the directly computed P(owl)
    assert len(expected) == 3
    assert json.loads(json.dumps(metrics(log)))["p_target"]["mean"] == pytest.approx(
        np.mean(expected), rel=1e-4
    )


def test_tasks_run_inside_an_eval_set(tmp_path: Path) -> None:
    from inspect_ai import eval_set

    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        out = ModelOutput.from_content("mockllm/model", "Oak" if "tree" in messages[-1].text else "Owl")
        out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)
        return out

    ok, logs = eval_set(
        ["sublim/tree_pref", "sublim/animal_pref"],
        model=get_model("mockllm/model", custom_outputs=respond),
        log_dir=str(tmp_path),
        limit=2,
        display="none",
    )
    assert ok
    assert sorted(log.eval.task for log in logs) == ["sublim/animal_pref", "sublim/tree_pref"]
    for log in logs:
        named = metrics(log)["named_rate"]
        concept = "oak" if log.eval.task == "sublim/tree_pref" else "owl"
        assert named["mean"] == 1.0 and named[f"sublim/top_concepts_{concept}"] == 1.0
