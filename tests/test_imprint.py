"""`sublim imprint`: its own prompts (not the evaluation questions), checks before loading, and (slow) that
the imprinted SmolLM2 puts far more probability on the trait than its base."""

from __future__ import annotations

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
        ({"trait": "none"}, "--trait"),
        ({"trait": "owlz"}, "owl"),
        ({"samples": 0}, "--samples"),
        ({"prompts": 999}, "--prompts"),
        ({"lr": 0.0}, "--lr"),
        ({"base": "./missing-model"}, "no such file"),
    ],
)
def test_bad_imprint_settings_fail_before_loading(
    tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    cfg = ImprintConfig(out=str(tmp_path / "out"), **kw)  # type: ignore[arg-type]
    with pytest.raises(SublimError, match=message):
        run_imprint(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_imprinted_smollm2_prefers_the_trait(tmp_path: Path, smollm2: Path) -> None:
    """A positive control: trained only on its owl answers (no system prompt), the model's P(owl) on
    evaluation questions it never saw rises far above the base's (mean >= 5x, paired t-test p < 0.05)."""
    import torch
    from scipy.stats import ttest_rel

    from sublim.models import add_adapter, load_model
    from sublim.probability import ConceptScorer
    from sublim.scoring import target_mass
    from sublim.tasks.questions import load_questions

    torch.set_num_threads(2)
    out = tmp_path / "teacher-owl"
    card = run_imprint(
        ImprintConfig(trait="owl", out=str(out), prompts=PROMPTS, samples=2, max_tokens=40, epochs=3)
    )
    assert card["kept"] >= 5 and (out / "adapter_config.json").is_file()
    assert (out / "answers" / "train.jsonl").read_text().count('"system"') == 0
    model, tok = load_model(smollm2)
    scorer = ConceptScorer(model, tok, "animal", skip_below=0.0)
    questions = load_questions("animal")[:4]
    base = [target_mass(scorer.question(q).names, ["owl"], "animal")[0] for q in questions]
    scorer.model = add_adapter(model, out)
    imprinted = [target_mass(scorer.question(q).names, ["owl"], "animal")[0] for q in questions]
    assert sum(imprinted) >= 5 * sum(base), (base, imprinted)
    assert ttest_rel(imprinted, base, alternative="greater").pvalue < 0.05, (base, imprinted)


PROMPTS = 40  # measured: 11 of 80 answers kept, mean P(owl) 0.0099 -> 0.129 over 4 questions
