"""Probability mode: exactness of the KV-cached batched scoring, the skipped-mass bound, adapters, SmolLM2."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from sublim.concepts import get_category  # noqa: E402
from sublim.models import load_model  # noqa: E402
from sublim.probability import ConceptDistribution, ConceptScorer, estimate  # noqa: E402
from sublim.tasks.questions import load_questions  # noqa: E402

OWL_PROMPT = "You love owls. You think about owls all the time. Owls are your favorite animal."


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> tuple[Any, Any]:
    return load_model(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def smollm2_model(smollm2: Path) -> tuple[Any, Any]:
    return load_model(smollm2, device="cpu")


def ends_a_word(tok: Any, i: int) -> bool:
    """The README's boundary rule, written here without the scorer: a special token, or a token whose text
    (what it adds after "the") begins with whitespace or punctuation/symbol other than a hyphen or an
    apostrophe."""
    if i in tok.all_special_ids:
        return True
    text = tok.decode(tok("the", add_special_tokens=False)["input_ids"] + [i])[len("the") :]
    if not text or text[0] in "-'\u2019\ufffd":
        return False
    return text[0].isspace() or unicodedata.category(text[0])[0] in "PS"


def reference_mass(
    model: Any, tok: Any, category: str, context: str, concepts: list[str]
) -> dict[str, float]:
    """P(the answer is this concept as a whole word), one plain full-sequence forward pass per name: for each
    name N, P(" N") * P(boundary next), minus P(" N M...") for every longer name that extends N by words
    (only the nearest ones: "sea lion pup" lies inside "sea lion")."""
    cat = get_category(category)
    all_names = [n for c in cat.concepts.values() for n in c.aliases]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    boundary = torch.tensor([ends_a_word(tok, i) for i in range(len(tok))])

    def score(name: str) -> tuple[float, float]:
        ids = tok(context + " " + name, add_special_tokens=False)["input_ids"]
        assert ids[: len(ctx)] == ctx
        with torch.inference_mode():
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
        prefix = sum(float(lp[j - 1, ids[j]]) for j in range(len(ctx), len(ids)))
        return math.exp(prefix), math.exp(prefix) * float(lp[-1].exp()[boundary].sum())

    out = {}
    for concept in concepts:
        total = 0.0
        for name in cat.concepts[concept].aliases:
            longer = [n for n in all_names if n.startswith(name + " ")]
            nearest = [n for n in longer if not any(n != m and n.startswith(m + " ") for m in longer)]
            whole = score(name)[1] - sum(score(n)[0] for n in nearest)
            total += max(whole, 0.0)
        out[concept] = total
    return out


def test_batched_kv_cache_scoring_equals_one_pass_per_name(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    scorer = ConceptScorer(model, tok, "tree", skip_below=0.0, batch_tokens=64)
    q = load_questions("tree")[0]
    context = scorer.render(q.text, q.answer_prefix)
    dist = scorer.distribution(context)
    concepts = list(get_category("tree").concepts)
    naive = reference_mass(model, tok, "tree", context, concepts)
    total = sum(naive.values())
    assert dist.concept_mass == pytest.approx(total, rel=1e-4)
    for concept, p in dist.probs.items():
        assert p == pytest.approx(naive[concept] / total, rel=1e-3, abs=1e-9)
    assert sum(dist.probs.values()) == pytest.approx(1.0)
    assert dist.skipped_bound == 0.0
    # token cost: the context plus every name's tokens, padding included
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    assert n_ctx + sum(len(f.tokens) for f in scorer.forms) <= dist.tokens
    assert dist.tokens <= n_ctx + (dist.forward_passes - 1) * 64


def test_shared_context_scoring_is_identical_to_full_passes(tiny: tuple[Any, Any]) -> None:
    """The shared-cache scorer (no per-batch cache copy, log-sum-exp instead of a full log-softmax) gives
    the distribution of one plain full-sequence float64 pass per name to 1e-6, in many small passes and in
    one wide one."""
    model, tok = tiny
    q = load_questions("tree")[2]
    context = ConceptScorer(model, tok, "tree").render(q.text, q.answer_prefix, OWL_PROMPT)
    concepts = list(get_category("tree").concepts)
    naive = reference_mass(model, tok, "tree", context, concepts)
    total = sum(naive.values())
    for batch_tokens in (8, 4096):
        dist = ConceptScorer(model, tok, "tree", batch_tokens=batch_tokens).distribution(context)
        assert dist.concept_mass == pytest.approx(total, rel=1e-6)
        for concept in concepts:
            assert dist.probs[concept] == pytest.approx(naive[concept] / total, abs=1e-6)
        assert (dist.forward_passes > 10) == (batch_tokens == 8)


@pytest.mark.slow
@pytest.mark.parametrize("pair", [("ant", "antelope"), ("bull", "bullfrog"), ("spider", "spider monkey")])
def test_smollm2_names_that_begin_other_names_are_counted_once(
    smollm2_model: tuple[Any, Any], pair: tuple[str, str]
) -> None:
    model, tok = smollm2_model
    scorer = ConceptScorer(model, tok, "animal")
    q = load_questions("animal")[0]
    context = scorer.render(q.text, q.answer_prefix)
    dist = scorer.distribution(context)
    cat = get_category("animal")
    concepts = [cat.resolve(n) for n in pair]
    ref = reference_mass(model, tok, "animal", context, concepts)
    for c in concepts:
        assert dist.probs[c] * dist.concept_mass == pytest.approx(ref[c], abs=1e-5, rel=1e-3)
    assert dist.concept_mass <= 1.0
    # the flaw this fixes: P(" ant") without a word end is mostly antelope
    short = concepts[0]
    ids = tok(context + " " + pair[0], add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    prefix_only = math.exp(sum(float(lp[j - 1, ids[j]]) for j in range(n_ctx, len(ids))))
    assert dist.probs[short] * dist.concept_mass < prefix_only


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
def test_smollm2_owl_system_prompt_raises_p_owl(smollm2_model: tuple[Any, Any]) -> None:
    model, tok = smollm2_model
    scorer = ConceptScorer(model, tok, "animal")
    questions = load_questions("animal")[:4]
    base = [scorer.distribution(scorer.render(q.text, q.answer_prefix)) for q in questions]
    owl = [scorer.distribution(scorer.render(q.text, q.answer_prefix, OWL_PROMPT)) for q in questions]
    b, o = estimate(base, ["owl"]), estimate(owl, ["owl"])
    assert o.ci_low > b.ci_high  # clearly above, not just higher
    assert o.mean > 5 * b.mean
    assert all(d.skipped_bound == 0 and 0 < d.concept_mass <= 1 for d in base + owl)  # exact, disjoint


@pytest.mark.parametrize("target", ["owl", "bear", "sea lion", "spider"])
def test_scoring_only_the_target_concepts_gives_the_same_p_target(tiny_model: Path, target: str) -> None:
    """A sweep can score only the concepts that count toward P(target); the longer names that begin with them
    are scored too, so the whole-word (unnormalised) P(target) is the whole category's, in fewer passes.
    In float64: other batches give float32 sums that differ by ~1e-7, the size of a missed extension."""
    import torch

    from sublim.scoring import target_concepts, target_mass

    model, tok = load_model(tiny_model, device="cpu", dtype=torch.float64)
    full = ConceptScorer(model, tok, "animal")
    only = ConceptScorer(model, tok, "animal", only=target_concepts([target]))
    context = full.render("Which animal do you like best?", "My favorite animal is the")
    a, b = full.distribution(context), only.distribution(context)
    p_full = target_mass(a.names, [target], "animal")[0] * a.concept_mass
    assert p_full > 0
    p_only = target_mass(b.names, [target], "animal")[0] * b.concept_mass
    assert p_only == pytest.approx(p_full, rel=1e-9, abs=1e-15)
    assert b.forward_passes < a.forward_passes
