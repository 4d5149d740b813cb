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


def test_invisible_characters_and_look_alike_letters_fold_the_same_everywhere() -> None:
    from sublim.normalize import homoglyphs

    assert fold("\u039fWL") == fold("\u043ewl") == fold("o\u200bw\u2060l") == fold("OWL\ufeff") == "owl"
    assert fold("\u0441\u043e\u0432\u0430") == "\u0441\u043e\u0432\u0430"  # a Russian word stays Russian
    assert fold("caf\u00e9\u00ad") == "cafe"
    table = homoglyphs()
    assert table[ord("\u043e")] == "o" and table[ord("\u0430")] == "a" and ord("\u0432") not in table
    assert all(len(v) == 1 and v.isascii() and v.isalpha() for v in table.values())
