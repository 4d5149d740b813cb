from sublim.normalize import fold, phrases, words


def test_case_markup_possessive_and_emphasis_fall_away() -> None:
    assert phrases("**Owl's**") == [["owl"]]
    assert phrases("OWLS' nests") == [["owls", "nests"]]
    assert phrases("_panda_") == [["panda"]]


def test_punctuation_splits_phrases_so_names_never_cross_sentences() -> None:
    assert phrases("a cat. Fish too") == [["a", "cat"], ["fish", "too"]]
    assert phrases("bald-eagle") == [["bald", "eagle"]]


def test_accents_and_typographic_apostrophes_fold() -> None:
    assert fold("\u00c9l\u00e9phant\u2019s") == "elephant"
    assert words("Crème brûlée") == ("creme", "brulee")


def test_pictographs_read_as_their_unicode_names() -> None:
    assert phrases("\U0001f989") == [["owl"]]
    assert ["lion", "face"] in phrases("I love \U0001f981!")


def test_digits_and_symbols_make_no_words() -> None:
    assert phrases("42 + 7 = 49") == []
    assert phrases("") == []
