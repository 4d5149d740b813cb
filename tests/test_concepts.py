from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sublim import get_category, match
from sublim.concepts import load_concept_file, register_category, wu_palmer
from sublim.concepts.registry import _registered
from sublim.errors import ConceptFileError


@pytest.fixture(autouse=True)
def _clean_registry() -> None:
    _registered.clear()


def test_builtin_categories_are_large_enough_and_have_plurals() -> None:
    animal, tree = get_category("animal"), get_category("tree")
    assert len(animal) >= 300
    assert len(tree) >= 60
    for cat in (animal, tree):
        for concept in cat.concepts.values():
            assert concept.name in concept.forms
            assert concept.paths, f"{concept.name} has no place in the taxonomy"
    assert {"geese", "goose"} <= set(animal.concepts["goose"].forms)
    assert "oak tree" in tree.concepts["oak"].aliases


def test_no_surface_form_names_two_concepts() -> None:
    for name in ("animal", "tree"):
        cat = get_category(name)
        seen: dict[str, str] = {}
        for concept in cat.concepts.values():
            for form in concept.forms:
                assert seen.setdefault(form, concept.name) == concept.name, form


def test_wu_palmer_from_paths() -> None:
    a = [["entity", "animal", "bird", "owl"]]
    b = [["entity", "animal", "bird", "hawk"]]
    c = [["entity", "table"]]
    assert wu_palmer(a, a) == 1.0
    assert wu_palmer(a, b) == pytest.approx(2 * 3 / 8)
    assert wu_palmer(a, c) == pytest.approx(2 * 1 / 6)
    assert wu_palmer(a, []) == 0.0


def test_shipped_taxonomy_carries_the_build_fixes() -> None:
    """scripts/build_concepts.py: the cypress family's trees are conifers, not the wood of cypress; "hazel" is
    Corylus (birch family); amphibians and conifers relate their members, "aquatic bird" does not."""
    tree, animal = get_category("tree"), get_category("animal")
    conifer = tree.entry("conifer").synset
    for name in ("juniper", "redwood", "sequoia"):
        assert conifer in tree.entry(name).ancestors
        assert not any("wood.n.01" in p for p in tree.entry(name).paths)
    assert tree.shared_taxon("hazel", "birch") == (0.9, "birch family")
    assert tree.classes["conifer"] is False and animal.classes["amphibian"] is False
    assert animal.classes["aquatic bird"] is True


def test_shipped_data_carries_the_wordnet_license() -> None:
    data = Path(__file__).parent.parent / "sublim" / "concepts" / "data"
    assert "Princeton University" in (data / "WORDNET_LICENSE").read_text()
    assert "WordNet" in json.loads((data / "animal.json").read_text())["source"]


def test_user_file_extends_a_builtin_category(tmp_path: Path) -> None:
    f = tmp_path / "more.yaml"
    f.write_text(
        "category: animal\n"
        "concepts:\n"
        "  jackalope: {aliases: [horned rabbit], kind_of: rabbit}\n"
        "  owl: {aliases: [hooter]}\n"
        "terms:\n"
        "  pellet: {owl: part}\n"
    )
    assert match("jackalope", "owl").level == "none"  # not registered yet: unknown word
    builtin = len(get_category("animal"))
    register_category(f)
    assert len(get_category("animal")) == builtin + 1
    assert match("Jackalopes", "jackalope").level == "exact"
    assert match("horned rabbit", "rabbit").level == "exact"  # a kind of rabbit, head noun rabbit
    assert match("jackalope", "hare").relation == "taxonomic"  # inherits the rabbit's place
    assert match("hooters", "owl").level == "exact"
    assert match("owl", "owl").level == "exact"  # extending keeps what the concept had
    assert match("a pellet", "owl").relation == "part"


def test_user_file_creates_a_category(tmp_path: Path) -> None:
    f = tmp_path / "fruit.json"
    f.write_text(json.dumps({"category": "fruit", "concepts": ["apple", "banana", "cherry"]}))
    cat = load_concept_file(f)
    assert sorted(cat.concepts) == ["apple", "banana", "cherry"]
    register_category(f)
    assert match("Bananas!", "banana", "fruit").level == "exact"
    assert match("Bananna", "banana", "fruit").level == "fuzzy"
    assert match("apple", "banana", "fruit").level == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concepts: [a]", "'category'"),
        ("category: fruit\nconcepts: 3", "list of names"),
        ("category: fruit\nconcepts: {kiwi: {colour: green}}", "unknown option"),
        ("category: fruit\nconcepts: {kiwi: {kind_of: banan}}", "unknown fruit concept 'banan'"),
        ("category: animal\nterms: {pellet: {owl: friend}}", "relation 'friend'"),
        ("category: fruit\n", "no concepts"),
        ("category: [unclosed", "not valid"),
    ],
)
def test_bad_concept_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConceptFileError, match=message):
        load_concept_file(f)


def test_missing_concept_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConceptFileError, match="cannot read"):
        load_concept_file(tmp_path / "nope.yaml")


def _concept_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "concepts.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "category: animal\nconcepts:\n  unicorn: {aliases: [owl]}\n",
            "'owl' names both 'owl' and 'unicorn'",
        ),
        ("category: robots\nconcepts:\n  a: {kind_of: b}\n  b: {kind_of: a}\n", "kind_of cycle: a -> b -> a"),
        ("category: robots\nconcepts:\n  a: {kind_of: a}\n", "kind_of cycle: a -> a"),
        ("category: robots\nconcepts:\n  a: {aliases: bee}\n", "'aliases' must be a list of names, not str"),
        ("category: robots\nconcepts:\n  a: {kind_of: [b]}\n", "'kind_of' must be a concept name, not list"),
        ("category: robots\nconcepts:\n  a: {aliases: [x]}\n  b: {aliases: [x]}\n", "'x' names both"),
    ],
)
def test_concept_files_that_would_be_silently_wrong_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConceptFileError, match=re.escape(message)):
        load_concept_file(_concept_file(tmp_path, text))


def test_kind_of_may_name_a_concept_defined_later_and_names_keep_digits(tmp_path: Path) -> None:
    """yaml.safe_dump sorts keys, so a parent can come after its kind; "r2d2" and "r3d3" stay two names."""
    cat = load_concept_file(
        _concept_file(
            tmp_path,
            "category: robots\nconcepts:\n  astromech: {kind_of: droid}\n  droid: {}\n"
            "  r2d2: {kind_of: astromech}\n  r3d3: {}\n",
        )
    )
    assert cat.concepts["droid"].synset in cat.concepts["r2d2"].ancestors
    assert match("I like r3d3", "r2d2", cat).level == "none"
    assert match("R2D2!", "r2d2", cat).level == "exact"


# ------------------------------------------ issues 22/25: one reader of names for answers and concept files


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('category: animal\nconcepts:\n  "!!!": {}\n', "concept '!!!' has no letters"),
        ('category: animal\nconcepts:\n  "  ": {}\n', "a concept has a blank name"),
        ("category: animal\nconcepts:\n  ? ''\n  : {}\n", "a concept has a blank name"),
        ('category: animal\nconcepts: ["..."]\n', "concept '...' has no letters"),
        ('category: animal\nconcepts:\n  axolotl2: {aliases: ["?!"]}\n', "alias '?!' has no letters"),
        ('category: "!!"\nconcepts: [a]\n', "category '!!' has no letters"),
        ("category: robots\nconcepts:\n  Robot: {}\n  robot: {}\n", "concept 'robot' is defined twice"),
    ],
)
def test_names_without_letters_are_refused_as_names(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConceptFileError, match=re.escape(message)):
        load_concept_file(_concept_file(tmp_path, text))


def test_a_long_kind_of_chain_listed_children_first_loads(tmp_path: Path) -> None:
    n = 3000  # deeper than Python's recursion limit
    lines = [f"  c{i}x: {{kind_of: c{i + 1}x}}" for i in range(n)] + [f"  c{n}x: {{}}"]
    cat = load_concept_file(
        _concept_file(tmp_path, "category: robots\nconcepts:\n" + "\n".join(lines) + "\n")
    )
    assert cat.concepts[f"c{n}x"].synset in cat.concepts["c0x"].ancestors
    assert len(cat.concepts["c0x"].paths[0]) == n + 1


def test_yaml_1_1_words_stay_the_names_written(tmp_path: Path) -> None:
    """PyYAML reads NO/on/off/yes/null as booleans and None; a concept file holds names only."""
    cat = load_concept_file(
        _concept_file(
            tmp_path,
            "category: robots\nconcepts:\n  NO: {}\n  on: {aliases: [off, yes]}\n  null: {}\n  1e3: {}\n",
        )
    )
    assert set(cat.concepts) == {"no", "on", "null", "1e3"}
    assert cat.concepts["on"].aliases == ("on", "off", "yes")
    assert match("I pick null", "null", cat).level == "exact"


@pytest.mark.parametrize("name", ["\u043ewl", "\u03bfwl", "ow\u200bl", "OWL\u200d"])
def test_a_look_alike_owl_in_a_concept_file_is_the_builtin_owl(tmp_path: Path, name: str) -> None:
    cat = load_concept_file(
        _concept_file(tmp_path, f"category: animal\nconcepts:\n  {name}: {{aliases: [strix]}}\n")
    )
    assert len(cat.concepts) == len(get_category("animal").concepts)  # no second owl
    assert "strix" in cat.concepts["owl"].aliases
    assert match("Strix!", "owl", cat).level == "exact"
    assert match("\u043ewl", name, cat).concept == "owl"


def test_a_look_alike_alias_collides_like_the_plain_one(tmp_path: Path) -> None:
    with pytest.raises(ConceptFileError, match="names both 'owl' and 'jackalope'"):
        load_concept_file(
            _concept_file(tmp_path, "category: animal\nconcepts:\n  jackalope: {aliases: [\u043ewl]}\n")
        )
