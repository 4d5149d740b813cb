"""Probability mode: exactness of the KV-cached batched scoring, the skipped-mass bound, adapters, SmolLM2."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from sublim.models import load_model  # noqa: E402
from sublim.probability import ConceptDistribution, ConceptScorer, estimate  # noqa: E402
from sublim.tasks.questions import load_questions  # noqa: E402

OWL_PROMPT = "You love owls. You think about owls all the time. Owls are your favorite animal."


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> tuple[Any, Any]:
    return load_model(tiny_model)


def naive_concept_mass(model: Any, tok: Any, scorer: ConceptScorer, context: str) -> dict[str, float]:
    """One full forward pass per name: the slow reference the batched path must equal."""
    ids = tok(context, add_special_tokens=False)["input_ids"]
    mass: dict[str, float] = {}
    for ci, cont in scorer.forms:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids + list(cont)])).logits[0]
        lp = torch.log_softmax(logits.float(), dim=-1)
        ll = sum(float(lp[len(ids) - 1 + j, t]) for j, t in enumerate(cont))
        name = scorer.concepts[ci]
        mass[name] = mass.get(name, 0.0) + math.exp(ll)
    return mass


def test_batched_kv_cache_scoring_equals_one_pass_per_name(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    scorer = ConceptScorer(model, tok, "tree", skip_below=0.0, batch_tokens=64)
    q = load_questions("tree")[0]
    context = scorer.render(q.text, q.answer_prefix)
    dist = scorer.distribution(context)
    naive = naive_concept_mass(model, tok, scorer, context)
    total = sum(naive.values())
    assert dist.concept_mass == pytest.approx(total, rel=1e-4)
    for concept, p in dist.probs.items():
        assert p == pytest.approx(naive[concept] / total, rel=1e-3, abs=1e-9)
    assert sum(dist.probs.values()) == pytest.approx(1.0)
    assert dist.skipped_bound == 0.0
    assert dist.forward_passes == 1 + len(
        scorer._chunks([i for i, f in enumerate(scorer.forms) if len(f[1]) > 1])
    )
    # token cost: the context plus every continuation position, padding included (so at least the unpadded
    # count, and at most one full batch per continuation pass)
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    unpadded = sum(len(f) - 1 for _, f in scorer.forms)
    assert n_ctx + unpadded <= dist.tokens <= n_ctx + (dist.forward_passes - 1) * 64


def test_skipped_mass_is_bounded(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    q = load_questions("tree")[1]
    full = ConceptScorer(model, tok, "tree", skip_below=0.0)
    context = full.render(q.text, q.answer_prefix)
    exact = full.distribution(context)
    pruned = ConceptScorer(model, tok, "tree", skip_below=0.01).distribution(context)
    assert pruned.forward_passes < exact.forward_passes
    # what was skipped never exceeds the bound
    assert exact.concept_mass - pruned.concept_mass <= pruned.skipped_bound + 1e-9
    assert pruned.skipped_bound > 0


def test_deterministic(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    scorer = ConceptScorer(model, tok, "animal")
    context = scorer.render("Favorite animal?", "My favorite animal is the", "Be brief.")
    assert scorer.distribution(context).probs == scorer.distribution(context).probs
    assert context.startswith("<|im_start|>system\nBe brief.")
    assert context.endswith("<|im_start|>assistant\nMy favorite animal is the")


def test_peft_adapter_changes_the_distribution(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base, tok = load_model(tiny_model)
    scorer = ConceptScorer(base, tok, "tree")
    context = scorer.render("Favorite tree?", "My favorite tree is the")
    before = scorer.distribution(context).probs
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    model, tok = load_model(tiny_model, adapter=tmp_path / "adapter")
    after = ConceptScorer(model, tok, "tree").distribution(context).probs
    assert max(abs(before[c] - after[c]) for c in before) > 1e-4


def test_estimate_is_a_t_interval_over_questions() -> None:
    dists = [ConceptDistribution({"owl": p, "cat": 1 - p}, 1.0, 0.0, 1, "") for p in (0.1, 0.2, 0.3)]
    est = estimate(dists, ["owl"])
    assert est.mean == pytest.approx(0.2)
    assert est.stderr == pytest.approx(0.1 / math.sqrt(3))
    assert est.ci_high - est.mean == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)  # t(0.975, 2)
    assert math.isnan(estimate(dists[:1], ["owl"]).ci_low)


@pytest.mark.slow
def test_smollm2_owl_system_prompt_raises_p_owl(smollm2: Path) -> None:
    model, tok = load_model(smollm2)
    scorer = ConceptScorer(model, tok, "animal")
    questions = load_questions("animal")[:4]
    base = [scorer.distribution(scorer.render(q.text, q.answer_prefix)) for q in questions]
    owl = [scorer.distribution(scorer.render(q.text, q.answer_prefix, OWL_PROMPT)) for q in questions]
    b, o = estimate(base, ["owl"]), estimate(owl, ["owl"])
    assert o.ci_low > b.ci_high  # clearly above, not just higher
    assert o.mean > 5 * b.mean
    assert all(d.forward_passes <= 8 for d in base + owl)
