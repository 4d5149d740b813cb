"""The English lexicon: every single-word WordNet lemma, irregular inflections and closed-class words; and
the one-word foods that turn a name before them into a dish.

It guards fuzzy matching (a real word such as "bowl" is never a misspelling of "owl") and decides whether a
one-word name is a compound ("sea" + "horse", "bull" + "dog", but not "eleph" + "ant").
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

_SUFFIXES = ("s", "es", "ed", "ing", "er", "ers", "ly", "ies", "ness")


@cache
def lexicon() -> frozenset[str]:
    data = resources.files("sublim.concepts").joinpath("data", "lexicon.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


@cache
def food_words() -> frozenset[str]:
    """One-word foods that are no animal or plant ("pie", "juice"): after a concept's name they make a dish
    of it ("cherry pie"), which names the dish, not the concept (scripts/build_concepts.py)."""
    text = resources.files("sublim.concepts").joinpath("data", "food_words.txt").read_text(encoding="utf-8")
    return frozenset(text.split())


@cache
def english_stem(word: str) -> str | None:
    """The lexicon word `word` is or inflects ("pillows" -> "pillow", "feeling" -> "feel"), else None."""
    lex = lexicon()
    if word in lex:
        return word
    for suf in _SUFFIXES:
        if word.endswith(suf):
            stem = word[: -len(suf)]
            for cand in (stem, stem + "e", stem + "y" if suf == "ies" else ""):
                if cand in lex:
                    return cand
    return None


def is_compound_of(word: str, head: str, min_part: int = 3) -> bool:
    """True when one-word `word` is an English word followed by `head` ("seahorse" = "sea" + "horse")."""
    if word == head or not word.endswith(head) or len(head) < min_part:
        return False
    first = word[: -len(head)].rstrip("-' ")
    return len(first) >= min_part and first in lexicon()


def plural_forms(name: str, irregular: Mapping[str, Iterable[str]] | None = None) -> set[str]:
    """Plurals of a (possibly multi-word) noun: given irregular forms and the English spelling rule."""
    *head, last = name.split(" ")
    forms = set((irregular or {}).get(last, ()))  # "geese"; the regular form stays too ("octopuses")
    if re.search(r"(s|x|z|ch|sh)$", last):
        forms.add(last + "es")
    elif re.search(r"[^aeiou]y$", last):
        forms.add(last[:-1] + "ies")
    else:
        forms.add(last + "s")
    return {" ".join([*head, f]) for f in forms}
