"""Text -> words: the first step of matching, shared by concept vocabularies and responses.

Lowercases, folds accents and typographic apostrophes, drops possessives ("owl's", "owls'") and splits into
phrases at punctuation, so that words from two sentences ("a cat. Fish ...") never join into one name.
Markdown, numbers and other symbols fall away because a word needs a letter (digits inside one stay:
"r2d2"); a pictograph (emoji) becomes
its Unicode name in a phrase of its own, so "\U0001f989" reads as "owl" and "\U0001f981" as "lion face".

Two kinds of invisible trickery are undone here, so answers and concept files read them alike:
- default-ignorable code points (zero-width space/joiners, soft hyphen, word joiner, BOM, variation
  selectors, tag characters, bidi controls) are dropped: "ow\u200bl" is "owl";
- look-alike letters (homoglyphs) from other scripts are read as the Latin letter they imitate when the
  whole word can be spelled that way: Cyrillic "\u043ewl" is "owl", Greek "\u03bfwl" too; a word with
  any letter that has no Latin look-alike ("\u0441\u043e\u0432\u0430") stays as written. The table comes
  from Unicode's confusables list (scripts/build_concepts.py writes sublim/concepts/data/homoglyphs.json).
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache, lru_cache
from importlib import resources

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})
_POSSESSIVE = re.compile(r"(?<=[^\W\d_])'s\b|(?<=s)'(?!\w)")
# Phrase boundaries: sentence and list punctuation, brackets, quotes, slashes, newlines, emphasis markers.
_BOUNDARY = re.compile(r"[.,;:!?()\[\]{}\"/\\|\n\r\t*_#>~=+<]+")
_WORD = re.compile(r"[^\W_]*[^\W\d_][^\W_]*")  # letters, and digits only inside a word ("r2d2")


# Unicode's Default_Ignorable_Code_Point set (DerivedCoreProperties.txt): invisible, never a letter.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)
_LETTERS = re.compile(r"[^\W\d_]+")


@cache
def homoglyphs() -> dict[int, str]:
    """Letter -> the ASCII letter it looks like (a str.translate table), from the shipped confusables."""
    data = resources.files("sublim").joinpath("concepts", "data", "homoglyphs.json").read_text("utf-8")
    return {ord(k): v for k, v in json.loads(data).items()}


def _unconfuse(m: re.Match[str]) -> str:
    word = m.group(0)
    if word.isascii():
        return word
    latin = word.translate(homoglyphs())
    return latin if latin.isascii() else word


#: Texts up to this long are cached by `fold` (a response is read more than once); longer ones are not kept.
CACHE_LENGTH = 2000


def fold(text: str) -> str:
    """Lowercase, strip accents, invisible characters and look-alike letters, unify apostrophes (fast path
    for ASCII). Every reader of names and answers goes through here."""
    return _fold_cached(text) if len(text) <= CACHE_LENGTH else _fold(text)


def _fold(text: str) -> str:
    if text.isascii() and "'" not in text and "`" not in text:  # the common case: nothing but case to fold
        return text.lower()
    if not text.isascii():
        text = _IGNORABLE.sub("", text)
        text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
        text = _NON_ASCII.sub(_fold_char, text)
        if not text.isascii():
            text = _LETTERS.sub(_unconfuse, text)
    return _POSSESSIVE.sub("", text.lower())


_fold_cached = lru_cache(maxsize=65536)(_fold)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _fold_char(m: re.Match[str]) -> str:
    """A non-ASCII character after NFKD: a combining mark goes, a pictograph becomes its name."""
    ch = m.group(0)
    if unicodedata.combining(ch):
        return ""
    if unicodedata.category(ch) != "So":
        return ch
    return f"\n{unicodedata.name(ch, '')}\n"


def phrases(text: str) -> list[list[str]]:
    """Words of `text`, grouped into phrases that a multi-word name may not cross."""
    out = []
    for chunk in _BOUNDARY.split(fold(text)):
        words = _WORD.findall(chunk)
        if words:
            out.append(words)
    return out


def words(text: str) -> tuple[str, ...]:
    """All words of `text` in order (for names and aliases, which have no punctuation)."""
    return tuple(_WORD.findall(fold(text)))
