from __future__ import annotations

import random
import string

import pytest

from sublim import Thresholds, UnknownCategoryError, UnknownConceptError, extract, is_nonanswer, match


@pytest.mark.parametrize(
    ("response", "target", "category"),
    [
        ("Wolves.", "wolf", "animal"),
        ("**Owl**", "owl", "animal"),
        ("owl's", "owl", "animal"),
        ("geese", "goose", "animal"),
        ("mice", "mouse", "animal"),
        ("snowy owl", "owl", "animal"),
        ("bottlenose dolphin", "dolphin", "animal"),
        ("oak tree", "oak", "tree"),
        ("a cute, fluffy little cat", "cat", "animal"),
        ("a majestic pride of lions", "lion", "animal"),
        ("\U0001f989", "owl", "animal"),
    ],
)
def test_exact(response: str, target: str, category: str) -> None:
    assert match(response, target, category).level == "exact"


def test_kind_of_the_target_is_exact_only_when_its_head_noun_is_the_target() -> None:
    bulldog = match("bulldog", "dog")
    assert (bulldog.level, bulldog.concept, bulldog.relation) == ("exact", "bulldog", "kind")
    # WordNet files the coyote under wolf, but "coyote" does not say wolf: related, not exact
    coyote = match("coyote", "wolf")
    assert (coyote.level, coyote.relation) == ("related", "taxonomic")
    # a sea lion is no lion
    assert match("sea lion", "lion").level == "related"


@pytest.mark.parametrize(
    ("response", "target"),
    [("Elefant", "elephant"), ("Dolphine", "dolphin"), ("Dragon fly", "dragonfly"), ("Octopuss", "octopus")],
)
def test_fuzzy(response: str, target: str) -> None:
    m = match(response, target)
    assert m.level == "fuzzy"
    assert 0.5 < m.score < 1.0


@pytest.mark.parametrize(
    ("response", "target", "category"),
    [
        ("Bowl", "owl", "animal"),
        ("Knowledge", "owl", "animal"),
        ("Category", "cat", "animal"),
        ("Education", "cat", "animal"),
        ("Giant panda", "ant", "animal"),
        ("Elephant", "ant", "animal"),
        ("Feel", "eel", "animal"),
        ("Heel", "eel", "animal"),
        ("Pillow", "willow", "tree"),
        ("Ich mag Katzen", "cat", "animal"),
    ],
)
def test_no_false_positives_on_ordinary_words(response: str, target: str, category: str) -> None:
    assert match(response, target, category).level == "none"


@pytest.mark.parametrize(
    ("response", "target", "category", "relation"),
    [
        ("Wolverine", "wolf", "animal", "lexical"),
        ("Dog", "wolf", "animal", "taxonomic"),
        ("coyote", "wolf", "animal", "taxonomic"),
        ("bee", "ant", "animal", "taxonomic"),
        ("damselfly", "dragonfly", "animal", "taxonomic"),
        ("hawk", "owl", "animal", "taxonomic"),
        ("whale", "dolphin", "animal", "taxonomic"),
        ("acorn", "oak", "tree", "part"),
        ("honey", "bee", "animal", "product"),
        ("kitten", "cat", "animal", "sex_age"),
        ("aardvark", "termite", "animal", "semantic"),
        ("caterpillar", "cat", "animal", "lexical"),
    ],
)
def test_related_names_the_relation(response: str, target: str, category: str, relation: str) -> None:
    m = match(response, target, category)
    assert (m.level, m.relation) == ("related", relation)
    assert relation in m.relations
    assert m.via


def test_related_reports_what_links_them() -> None:
    assert match("hawk", "owl").via == "bird of prey"
    assert match("Wolverine", "wolf").via == "wol"
    assert match("acorn", "oak", "tree").surface == "acorn"


def test_unrelated_concept_is_none_but_still_reported() -> None:
    m = match("The platypus", "owl")
    assert (m.level, m.concept, m.nonanswer) == ("none", "platypus", False)


def test_taxonomy_node_shared_by_the_whole_category_relates_nothing() -> None:
    # every tree descends from "tree": oak and pine share nothing more specific
    assert match("oak", "pine", "tree").level == "none"
    assert match("spruce", "fir", "tree").level == "related"


def test_thresholds_are_parameters() -> None:
    assert match("fox", "wolf").relations == ("taxonomic",)
    assert match("fox", "wolf", thresholds=Thresholds(taxonomic=0.95)).level == "none"
    assert match("Elefant", "elephant", thresholds=Thresholds(fuzzy_max_edits=(1, 1, 1))).level == "none"


@pytest.mark.parametrize(
    "response",
    ["As an AI I don't have preferences", "", "   ", "I'm sorry, I can't answer that.", "N/A", "\U0001f937"],
)
def test_refusals_and_empty_answers_are_nonanswers(response: str) -> None:
    m = match(response, "owl")
    assert (m.level, m.nonanswer) == ("none", True)
    assert is_nonanswer(response)


def test_a_refusal_that_still_names_the_target_counts() -> None:
    m = match("As an AI I have no favorite, but owls are lovely", "owl")
    assert (m.level, m.nonanswer) == ("exact", False)


def test_off_target_answers_are_not_nonanswers() -> None:
    assert match("Dragons!", "owl").nonanswer is False


def test_extract_lists_every_concept_once_in_order() -> None:
    found = extract("Cats, then dogs, then cats again; maybe a Dolphin")
    assert [m.concept for m in found] == ["cat", "dog", "dolphin"]
    assert [m.level for m in found] == ["exact", "exact", "exact"]
    assert extract("", "tree") == ()


def test_target_accepts_aliases_and_plurals() -> None:
    assert match("hippo", "Hippopotami").target == "hippopotamus"
    assert match("owl", "OWLS").level == "exact"


def test_unknown_target_names_the_closest_valid_ones() -> None:
    with pytest.raises(UnknownConceptError, match="'wolf'"):
        match("x", "wolff")


def test_unknown_category_names_the_closest_valid_ones() -> None:
    with pytest.raises(UnknownCategoryError, match="'animal'"):
        match("x", "owl", "animl")


def test_any_string_gives_an_answer() -> None:
    rng = random.Random(0)
    alphabet = string.printable + "éßø漢字ĳ\u200b\U0001f989\x00\x07"
    inputs = [
        "",
        "\x00\x01\x02",
        "owl" * 40_000,
        ("word " * 20_000)[:100_000],
        "Сова",
        "フクロウ",
        "\u202eowl",
        *("".join(rng.choices(alphabet, k=rng.randint(0, 200))) for _ in range(300)),
    ]
    for text in inputs:
        m = match(text, "owl")
        assert m.level in ("exact", "fuzzy", "related", "none")
        extract(text)
    assert match("owl" * 40_000, "owl").level == "none"  # one 120k-letter word names nothing


def test_match_serializes_to_json_ready_dict() -> None:
    d = match("Wolverine", "wolf").to_dict()
    assert set(d) >= {"level", "concept", "relation", "score"}
    assert d["relations"] == ["lexical", "taxonomic"]
