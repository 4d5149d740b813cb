"""The open vocabulary, class words, families and young/sex names (issue 17, issue 12 item 8)."""

from __future__ import annotations

import csv
import random

import pytest

from sublim import extract, get_category, match
from sublim.scoring import target_mass
from tests.conftest import DATA


@pytest.mark.parametrize("category", ["animal", "tree"])
def test_any_open_vocabulary_noun_is_a_target_that_matches_its_own_name(category: str) -> None:
    cat = get_category(category)
    assert len(cat.vocabulary) > 1500  # every WordNet noun under the root, not only the curated list
    rng = random.Random(17)
    for name in rng.sample(sorted(cat.vocabulary), 200):
        entry = cat.entry(name)
        for form in (*entry.forms[:1], *entry.target_forms[:1]):  # answer forms and target-only forms
            target = cat.resolve(form)
            assert target == name, form
            m = match(form, target, cat)
            assert (m.level, m.concept) == ("exact", name), form


def test_probability_mode_keeps_the_curated_candidate_list() -> None:
    cat = get_category("animal")
    names = {n for _, n in cat.names()}
    assert "owl" in names and "owlet" not in names and "barn owl" not in names
    assert "owlet" in cat.vocabulary and "owlet" not in cat.concepts
    assert cat.resolve("Owlets") == "owlet"


YOUNG_AND_SEX = [
    ("hen", "chicken"),
    ("calf", "cow"),
    ("foal", "horse"),
    ("cub", "bear"),
    ("chick", "chicken"),
    ("duckling", "duck"),
    ("mare", "horse"),
    ("stallion", "horse"),
    ("ewe", "sheep"),
    ("sow", "pig"),
    ("drake", "duck"),
    ("gander", "goose"),
    ("heifer", "cow"),
    ("kitten", "cat"),
    ("puppy", "dog"),
    ("lamb", "sheep"),
    ("owlet", "owl"),
    ("lioness", "lion"),
]


@pytest.mark.parametrize(("name", "species"), YOUNG_AND_SEX)
def test_young_and_sex_names_are_targets_related_to_their_species(name: str, species: str) -> None:
    assert match(f"A {name}!", name).level == "exact"
    for response, target in ((name, species), (species, name)):
        m = match(response, target)
        assert (m.level, m.relation) == ("related", "sex_age"), (response, target)


@pytest.mark.parametrize(
    ("a", "b", "via"),
    [
        ("oak", "beech", "beech family"),
        ("oak", "chestnut", "beech family"),
        ("birch", "alder", "birch family"),
        ("eucalyptus", "myrtle", "myrtle family"),
        ("fir", "pine", "pine family"),
    ],
)
def test_trees_are_related_through_their_family(a: str, b: str, via: str) -> None:
    m = match(a, b, "tree")
    assert (m.level, m.relation, m.via) == ("related", "taxonomic", via)


def test_one_taxonomy_rule_for_birds_and_trees() -> None:
    # a shared group narrower than a broad class relates; sharing only "bird" or "tree" does not
    assert match("hawk", "owl").relation == "taxonomic"  # bird of prey
    assert match("crow", "raven").relation == "taxonomic"  # genus Corvus
    for bird in ("parrot", "emu", "crow", "raven", "penguin", "stork", "peacock"):
        assert match(bird, "owl").level == "none", bird
    assert match("oak", "birch", "tree").level == "none"  # different families


def test_a_kind_of_a_class_word_is_a_hit_for_it() -> None:
    assert (match("owl", "bird").level, match("owl", "bird").relation) == ("exact", "kind")
    assert match("Spiders", "arachnid").level == "exact"
    assert match("lion", "feline").level == "exact"
    assert match("dog", "feline").level == "related"  # a carnivore, not a cat
    assert match("pine", "conifer", "tree").level == "exact"
    assert match("oak", "conifer", "tree").level == "none"
    assert match("rose", "tree", "tree").level == "none"  # a shrub is a woody plant, not a tree
    assert match("rose", "woody plant", "tree").level == "exact"
    # probability mode asks the same question for every curated concept
    assert target_mass({"owl": 0.5, "hawk": 0.2, "cat": 0.3}, ["bird"]) == pytest.approx((0.7, 0.0))


def test_a_broad_class_named_alone_is_no_relative_and_no_extra_mention() -> None:
    assert match("Birds!", "owl").level == "none"
    assert match("My favorite bird is the parrot", "owl").level == "none"
    assert [m.concept for m in extract("My favorite bird is the owl")] == ["owl"]
    assert [m.concept for m in extract("I like birds")] == ["bird"]


def test_latin_names_map_to_their_concepts() -> None:
    assert match("Quercus robur", "oak", "tree").level == "exact"
    assert match("Pinus", "pine", "tree").level == "exact"
    assert get_category("tree").resolve("Quercus") == "oak"


def test_misspellings_only_when_nothing_is_named_exactly() -> None:
    assert [m.concept for m in extract("I love ramen and owls")] == ["owl"]
    assert match("I love ramen and owls", "raven").level == "none"
    assert match("A ravven", "raven").level == "fuzzy"


def test_ambiguous_and_general_words_count_only_as_their_own_target() -> None:
    assert match("My kid loves it", "goat").level == "none"  # a kid is a child first
    assert match("kid", "kid").level == "exact"
    assert extract("my pet, a creature of habit") == ()


def _real(split: str) -> list[dict[str, str]]:
    lines = [line for line in (DATA / "real_answers.tsv").open(encoding="utf-8") if not line.startswith("#")]
    return [r for r in csv.DictReader(lines, delimiter="\t") if r["split"] == split]


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_real_answers_accuracy_floors(split: str) -> None:
    rows = _real(split)
    assert len(rows) >= 500
    got = [match(r["answer"], r["target"], r["category"]).level for r in rows]
    hits = ("exact", "fuzzy")
    hit_accuracy = sum((g in hits) == (r["level"] in hits) for g, r in zip(got, rows, strict=True)) / len(
        rows
    )
    for category in ("animal", "tree"):
        related = [
            g for g, r in zip(got, rows, strict=True) if r["level"] == "related" and r["category"] == category
        ]
        assert sum(g == "related" for g in related) / len(related) >= 0.85, category
    none = [g for g, r in zip(got, rows, strict=True) if r["level"] == "none"]
    assert sum(g == "none" for g in none) / len(none) >= 0.99
    assert hit_accuracy >= 0.98
