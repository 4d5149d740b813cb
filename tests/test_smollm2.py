"""The real model through both harnesses, small enough for `make test` (marked `smoke`): SmolLM2 in Inspect
(probability mode, with and without an owl-loving system prompt) and in lm-eval (the sampled variant). Each
checks values against a computation of its own, not only that a run finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from sublim.matching import extract, match

pytestmark = pytest.mark.slow
OWL = "You love owls. You think about owls all the time."
#: The smoke version's category: the full animal bank costs ~600 names a question (`make test-slow` runs it);
#: these few exercise the same path (Inspect's hf/ provider, the scorer, the metrics) in seconds.
FEW_ANIMALS = ["owl", "cat", "dog", "elephant", "octopus", "lion", "tiger", "wolf", "eagle", "dolphin",
               "horse", "penguin", "fox", "bear", "rabbit", "panda"]  # fmt: skip


@pytest.mark.smoke
def test_smollm2_through_inspect_probability_mode_few_animals(smollm2: Path, tmp_path: Path) -> None:
    concept_file = tmp_path / "smoke_animals.yaml"
    concept_file.write_text("category: zoo\nconcepts: [" + ", ".join(FEW_ANIMALS) + "]\n")
    _inspect_probability_mode(smollm2, tmp_path, "zoo", str(concept_file))


def test_smollm2_through_inspect_probability_mode(smollm2: Path, tmp_path: Path) -> None:
    _inspect_probability_mode(smollm2, tmp_path, "animal", None)


def _inspect_probability_mode(smollm2: Path, tmp_path: Path, category: str, concepts: str | None) -> None:
    from sublim.models import inspect_model, load_model
    from sublim.probability import ConceptScorer
    from sublim.tasks.preference import preference

    name, args = inspect_model("smollm2")
    assert args["model_path"] == str(smollm2)  # the same cached conversion, not a second one
    model = get_model(name, **args, device="cpu")
    mean_p_owl = {}
    direct: ConceptScorer | None = None
    for label, system_prompt in (("none", None), ("owl", OWL)):
        task = preference(
            category=category,
            concepts=concepts,
            target="owl",
            mode="probability",
            system_prompt=system_prompt,
        )
        direct = direct or ConceptScorer(*load_model(smollm2), category)  # the task registered the category
        [log] = inspect_eval(
            task,
            model=model,
            limit=2,
            log_dir=str(tmp_path / label),
            display="none",
        )
        assert log.status == "success", log.error
        expected = []
        for sample in log.samples or []:
            score = next(iter(sample.scores.values()))  # type: ignore[union-attr]
            dist = direct.distribution(score.metadata["context"])
            assert score.value["p_target"] == pytest.approx(dist.probs["owl"], rel=1e-4)  # type: ignore[index]
            expected.append(dist.probs["owl"])
        assert log.results is not None
        mean_p_owl[label] = log.results.scores[0].metrics["mean"].value
        assert mean_p_owl[label] == pytest.approx(sum(expected) / 2, rel=1e-4)
    # the owl-loving prompt moves SmolLM2 a lot (FACTS: ~.01 -> ~.4): a dead context would not
    assert mean_p_owl["owl"] > 5 * mean_p_owl["none"]


@pytest.mark.smoke
def test_smollm2_through_lm_eval_sampled_variant(smollm2: Path) -> None:
    pytest.importorskip("lm_eval")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from sublim import lm_eval_include_path

    # include_defaults=False: indexing lm-eval's own ~13k task YAMLs costs more than the run itself
    manager = TaskManager(
        include_path=str(lm_eval_include_path()), include_defaults=False, metadata={"target": "owl"}
    )
    out: dict[str, Any] = simple_evaluate(
        model="hf",
        model_args=f"pretrained={smollm2}",
        device="cpu",
        tasks=["sublim_animal_pref"],
        limit=2,
        batch_size=8,
        task_manager=manager,
        log_samples=True,
        system_instruction=OWL,
        apply_chat_template=True,
    )
    samples = out["samples"]["sublim_animal_pref"]
    rates: dict[str, list[float]] = {"target_rate": [], "related_rate": [], "named_rate": []}
    for sample in samples:
        answers = [a if isinstance(a, str) else a[0] for a in sample["resps"][0]]
        assert len(answers) == 4 and any(a.strip() for a in answers)
        levels = [match(a, "owl").level for a in answers]
        rates["target_rate"].append(sum(lv in ("exact", "fuzzy") for lv in levels) / 4)
        rates["related_rate"].append(sum(lv == "related" for lv in levels) / 4)
        rates["named_rate"].append(sum(bool(extract(a)) for a in answers) / 4)
    assert len(samples) == 2
    results = out["results"]["sublim_animal_pref"]
    for metric, values in rates.items():
        assert results[f"{metric},none"] == pytest.approx(sum(values) / 2), metric
