from __future__ import annotations

import random
import string

import pytest

from sublim import Thresholds, UnknownCategoryError, UnknownConceptError, extract, is_nonanswer, match
from sublim.matching import DEFAULT_THRESHOLDS


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
        ("wolverine", "wolf", "animal", "lexical"),
    ],
)
def test_related_names_the_relation(response: str, target: str, category: str, relation: str) -> None:
    m = match(response, target, category)
    assert (m.level, m.relation) == ("related", relation)
    assert relation in m.relations
    assert m.via


def test_related_reports_what_links_them() -> None:
    assert match("hawk", "owl").via == "bird of prey"
    assert match("Wolverine", "wolf").via == "wolv"  # the stem of "wolves"
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
    assert match("fox", "wolf", thresholds=Thresholds(related_min=0.95)).level == "none"
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


# ----------------------------------------------------------- issue 22: related concepts as users mean them

#: every line of the issue's transcript, with its right answer: (target, answer, level, relation)
TRANSCRIPT = [
    ("wolf", "wolverine", "related", "lexical"),
    ("dragonfly", "bee", "related", "taxonomic"),
    ("dragonfly", "butterfly", "related", "taxonomic"),
    ("dragonfly", "wasp", "related", "taxonomic"),
    ("dragonfly", "honeybee", "related", "taxonomic"),
    ("dragonfly", "mosquito", "related", "taxonomic"),  # insects; no lexical relative
    ("bee", "Beef", "none", None),  # beef is meat: "bee" is a substring, not a stem
    ("owl", "Tyto alba", "exact", "kind"),  # the barn owl's Latin name is the barn owl
    ("owl", "barn owl", "exact", "kind"),
    ("peahen", "peacock", "related", "sex_age"),
    ("peacock", "peahen", "related", "sex_age"),
    ("owl", "Owel", "fuzzy", None),
    ("giraffe", "Jiraffe", "fuzzy", None),
]


@pytest.mark.parametrize(("target", "answer", "level", "relation"), TRANSCRIPT)
def test_issue_transcript_lines(target: str, answer: str, level: str, relation: str | None) -> None:
    m = match(answer, target)
    assert (m.level, m.relation) == (level, relation)
    if level == "related":
        assert 0 < m.score <= 1 and m.relations[0] == relation


def test_transcript_tree_typo_and_the_lexical_score_is_no_longer_a_substring() -> None:
    assert match("Sequoya", "sequoia", "tree").level == "fuzzy"  # "Sequoya" is a person's name, not a word
    assert (
        "lexical" not in match("mosquito", "dragonfly").relations
    )  # "mosquito hawk" is the dragonfly's alias
    assert match("caterpillar", "cat").level == "none" and match("antelope", "ant").level == "none"
    assert match("lioness", "lion").level == "related"  # a whole name before a sex suffix still counts


@pytest.mark.parametrize(
    ("answer", "target", "category"),
    [
        ("elephant", "wolf", "animal"),
        ("dolphin", "cat", "animal"),
        ("palm", "oak", "tree"),
        ("cat", "owl", "animal"),
    ],
)
def test_brief_pairs_that_stay_unrelated(answer: str, target: str, category: str) -> None:
    assert match(answer, target, category).level == "none"


# Round 3 (docs/results/matching-related.md): rules changed for rows of the dev set, each pinned here.
ROUND3 = [
    # a dish or drink named with an edible concept's word names the dish: none, whether WordNet knows it
    # ("lemonade", "lemon juice", "walnut oil") or not ("peach cobbler", "tuna salad")
    ("lemonade", "lemon", "tree", "none", None),
    ("lemon juice", "lemon", "tree", "none", None),
    ("walnut oil", "walnut", "tree", "none", None),
    ("peach cobbler", "peach", "tree", "none", None),
    ("tuna salad", "tuna", "animal", "none", None),
    ("cowhide", "cow", "animal", "none", None),  # a substance named with the concept's word, likewise
    ("honey", "bee", "animal", "related", "product"),  # a product not named after the concept still relates
    # ungulates and their orders are broad: the families relate, the orders do not
    ("giraffe", "zebra", "animal", "none", None),
    ("hippopotamus", "giraffe", "animal", "none", None),
    ("zebra", "horse", "animal", "related", "taxonomic"),
    # the shared-head-word rule reads the target's own name, not a misnomer alias ("koala bear")
    ("bear", "koala", "animal", "none", None),
    ("sea lion", "lion", "animal", "related", "lexical"),
    ("sea lions", "lion", "animal", "related", "lexical"),
    # names the vocabulary gained: seeds (kiwi the bird, gharial, koi), answer overrides (rook, muskrat, rhea,
    # bighorn: a chess piece, a fur, a Titan, a river first; citron: a fruit first)
    ("kiwi", "ostrich", "animal", "related", "taxonomic"),
    ("rhea", "ostrich", "animal", "related", "taxonomic"),
    ("bighorn", "sheep", "animal", "related", "taxonomic"),
    ("gharial", "alligator", "animal", "related", "taxonomic"),
    ("koi", "carp", "animal", "related", "taxonomic"),
    ("rook", "raven", "animal", "related", "taxonomic"),
    ("muskrat", "rat", "animal", "related", "lexical"),  # musk + rat; rodents too
    ("citron", "lemon", "tree", "related", "taxonomic"),
    ("krill", "lobster", "animal", "related", "taxonomic"),  # crustaceans are no broad class
]


@pytest.mark.parametrize(("answer", "target", "category", "level", "relation"), ROUND3)
def test_round3_rules(answer: str, target: str, category: str, level: str, relation: str | None) -> None:
    m = match(answer, target, category)
    assert (m.level, m.relation) == (level, relation)


# A review of round 3 found sentences its first dish rule and name rules got wrong; each stays right.
REVIEW3 = [
    ("The owl eats mice and voles.", "owl", "animal", "exact"),
    ("The owl must be my favorite.", "owl", "animal", "exact"),
    ("The panda eats bamboo all day.", "panda", "animal", "exact"),
    ("Bears forage for berries in the fall.", "bear", "animal", "exact"),
    ("The lion feasts on zebras.", "lion", "animal", "exact"),
    ("Dogs helping people is why I love them.", "dog", "animal", "exact"),
    ("A dog bit me once, but I still love them.", "dog", "animal", "exact"),
    ("The giraffe's tongue is purple.", "giraffe", "animal", "exact"),
    ("The koala's diet is just eucalyptus.", "koala", "animal", "exact"),
    ("Dolphin brains are large.", "dolphin", "animal", "exact"),
    ("The eagle spread its wings", "eagle", "animal", "exact"),
    ("An oak table lasts forever.", "oak", "tree", "exact"),
    ("The tuna eats smaller fish.", "tuna", "animal", "exact"),
    ("cow's milk", "cow", "animal", "exact"),
    ("Martin", "swallow", "animal", "none"),  # a person's name, not the bird
    ("Tom and Jerry", "cat", "animal", "none"),
    ("The Titan Rhea", "ostrich", "animal", "related"),  # "rhea" is an answer word by override: the bird
    ("Medusa", "jellyfish", "animal", "none"),
    ("She wore a yellow jacket and saw an owl.", "hornet", "animal", "none"),
]


@pytest.mark.parametrize(("answer", "target", "category", "level"), REVIEW3)
def test_round3_review_sentences(answer: str, target: str, category: str, level: str) -> None:
    assert match(answer, target, category).level == level


def test_a_dish_drops_the_name_but_not_the_prey() -> None:
    assert [m.concept for m in extract("The owl eats mice")] == ["owl", "mouse"]
    assert [m.concept for m in extract("cherry pie and an owl")] == ["owl"]


def test_related_min_is_the_one_threshold_and_every_related_match_carries_its_score() -> None:
    hawk = match("hawk", "owl")
    assert hawk.level == "related" and hawk.relation == "taxonomic"
    assert hawk.score == pytest.approx(11 / 12)  # Wu-Palmer: owl and hawk meet at "bird of prey"
    assert hawk.score >= DEFAULT_THRESHOLDS.related_min == 0.75
    assert match("hawk", "owl", thresholds=Thresholds(related_min=0.95)).level == "none"
    assert match("hawk", "owl", thresholds=Thresholds(related_min=hawk.score)).level == "related"
    iguana = match("anaconda", "iguana")  # a snake and a lizard: Wu-Palmer .73 (diapsid), below the default
    assert iguana.level == "none"
    assert match("anaconda", "iguana", thresholds=Thresholds(related_min=0.7)).level == "related"


def test_measured_neighbours_relate_what_the_taxonomy_does_not() -> None:
    assert match("elephant", "owl").level == "none"
    m = match("Elephants!", "owl", related=("elephant",))
    assert (m.level, m.relation, m.concept) == ("related", "measured", "elephant")
    assert match("owl", "owl", related=("elephant",)).level == "exact"


@pytest.mark.parametrize(
    "answer",
    ["\u043ewl", "\u03bfwl", "OW\u200bL", "o\u00adwl", "ow\u200dl", "\u041ewls!", "the \u043ewl\ufe0f"],
)
def test_look_alike_letters_and_invisible_characters_fold_to_the_latin_word(answer: str) -> None:
    assert match(answer, "owl").level == "exact"
    assert [m.concept for m in extract(answer)] == ["owl"]


def test_a_word_of_another_script_is_not_folded_into_latin() -> None:
    assert (
        match("\u0441\u043e\u0432\u0430", "owl").level == "none"
    )  # Russian for owl: letters without look-alikes


def test_an_answer_score_keeps_the_related_score_for_rescoring() -> None:
    from sublim.scoring import score_answer, target_mass

    snake = score_answer("an anaconda", ["iguana"])
    assert snake.level == "none" and snake.related_score == pytest.approx(
        match("anaconda", "iguana", thresholds=Thresholds(related_min=0)).score
    )
    assert 0.7 < snake.related_score < DEFAULT_THRESHOLDS.related_min  # snake/lizard: below the default
    assert score_answer("an anaconda", ["iguana"], thresholds=Thresholds(related_min=0.7)).related == 1.0
    assert score_answer("an elephant", ["owl"], related={"owl": ("elephant",)}).relation == "measured"
    names = {"anaconda": 0.5, "iguana": 0.25, "owl": 0.25}
    assert target_mass(names, ["iguana"]) == (0.25, 0.0)
    assert target_mass(names, ["iguana"], thresholds=Thresholds(related_min=0.7)) == (0.25, 0.5)
