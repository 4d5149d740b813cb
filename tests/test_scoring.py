import math

import pytest

from sublim.scoring import concept_probs, score_answer, target_mass


def test_score_answer_levels() -> None:
    s = score_answer("A hawk, I think", ["owl"])
    assert (s.target, s.related, s.named, s.concept, s.relation) == (0.0, 1.0, 1.0, "hawk", "taxonomic")
    s = score_answer("hawk or owl", ["owl"])
    assert (s.target, s.related, s.concept) == (1.0, 0.0, "owl")
    s = score_answer("As an AI I have no favorite.", ["owl"])
    assert (s.named, s.nonanswer) == (0.0, True)


def test_without_targets_only_named_counts() -> None:
    s = score_answer("cats", [])
    assert math.isnan(s.target) and math.isnan(s.related)
    assert (s.named, s.level, s.concept) == (1.0, "named", "cat")


def test_concept_probs_sums_names_and_normalizes() -> None:
    probs, total = concept_probs(
        [("owl", math.log(0.2)), ("owl", math.log(0.1)), ("cat", math.log(0.1))], ["owl", "cat", "dog"]
    )
    assert total == pytest.approx(0.4)
    assert probs == pytest.approx({"owl": 0.75, "cat": 0.25, "dog": 0.0})


def test_target_mass_counts_kinds_of_the_target_as_the_target() -> None:
    probs = {"bear": 0.3, "polar bear": 0.2, "wolf": 0.1, "owl": 0.4}
    p_target, p_related = target_mass(probs, ["bear"])
    assert p_target == pytest.approx(0.5)  # "polar bear" names a bear
    assert p_related == pytest.approx(0.1)  # wolf: a carnivore like bears
    assert all(math.isnan(x) for x in target_mass(probs, []))


def test_p_target_judges_each_name_as_sampled_mode_judges_that_answer() -> None:
    """One definition: a name's share of P(target) is 1 exactly when the scorer counts an answer of that text
    as the target ("grizzly bear" for bear; "grizzly" alone is not)."""
    from sublim.concepts import get_category
    from sublim.scoring import score_answer, target_mass

    cat = get_category("animal")
    for target in ("bear", "owl", "dog", "wolf", "cat"):
        for _, name in cat.names():
            assert target_mass({name: 1.0}, [target], cat)[0] == score_answer(name, [target], cat).target
    assert target_mass({"grizzly bear": 0.5, "grizzly": 0.5}, ["bear"], cat)[0] == 0.5
