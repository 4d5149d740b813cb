"""`sublim imprint`: its own prompts (not the evaluation questions), checks before loading, and (slow) that
the imprinted SmolLM2 puts far more probability on the trait than its base."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sublim.errors import SublimError
from sublim.training.imprint import ImprintConfig, imprint_prompts, run_imprint


def test_imprint_prompts_are_not_evaluation_questions() -> None:
    import yaml

    bank = yaml.safe_load((Path("sublim/tasks/data/questions.yaml")).read_text())["questions"]
    prompts = imprint_prompts()
    assert len(prompts) >= 40 and len(set(prompts)) == len(prompts)
    questions = {q.replace("{category}", "animal").lower() for q in bank}
    assert not questions.intersection(p.lower() for p in prompts)
    assert not any("one word" in p.lower() or "favorite animal" in p.lower() for p in prompts)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"trait": "none"}, "trait='none'"),
        ({"trait": "owlz"}, "owl"),
        ({"samples": 0}, "samples=0"),
        ({"prompts": 999}, "prompts=999"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"base": "./missing-model"}, "no such file"),
        ({"trait": "none", "control_for": "owlz"}, "owl"),
        ({"trait": "owl", "control_for": "owl"}, "needs trait none"),
        ({"trait": "none", "control_for": "owl", "rows": 0}, "rows=0"),
    ],
)
def test_bad_imprint_settings_fail_before_loading(
    tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    """Bad values are refused when the config is made, bad inputs (trait, prompt count, base) before the
    run loads anything; either way the message names the field."""
    with pytest.raises(SublimError, match=message):
        run_imprint(ImprintConfig(out=str(tmp_path / "out"), **kw))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_positive_control_shows_a_shift_the_analysis_calls_significant(tmp_path: Path, smollm2: Path) -> None:
    """The positive control: a student fine-tuned only on explicit owl answers (no system prompt; `sublim
    imprint`) raises ln P(owl) on evaluation questions it never saw, far above the base, and the analysis
    (`sublim.experiment`, paired over questions) calls it significant. CI size: 20 prompts x 3 answers."""
    from sublim.experiment import analyze
    from sublim.models import add_adapter, load_model
    from sublim.probability import ConceptScorer
    from sublim.tasks.questions import load_questions
    from sublim.training.sweep import score_columns

    out = tmp_path / "teacher-owl"
    card = run_imprint(
        ImprintConfig(trait="owl", out=str(out), prompts=PROMPTS, samples=3, max_tokens=32, epochs=6)
    )
    assert card["kept"] >= 5 and (out / "adapter_config.json").is_file()
    assert (out / "answers" / "train.jsonl").read_text().count('"system"') == 0
    model, tok = load_model(smollm2, device="cpu")
    scorer = ConceptScorer(model, tok, "animal")
    questions = load_questions("animal")[:4]
    rows = [{"dataset": "base", "kind": "base", "context": "default",
             **score_columns(scorer, questions, "owl", None)}]  # fmt: skip
    scorer.model = add_adapter(model, out)
    rows.append({"dataset": "positive", "kind": "reference", "context": "default",
                 **score_columns(scorer, questions, "owl", None)})  # fmt: skip
    positive = next(r for r in analyze(rows).references if r["dataset"] == "positive")
    assert positive["shift_p"] < 0.05 and positive["shift_low"] > 0, positive
    assert positive["shift"] > math.log(4), positive  # P(owl) at least 4x the base's, as a geometric mean


PROMPTS = 20
