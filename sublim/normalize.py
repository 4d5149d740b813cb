"""Text -> words: the first step of matching, shared by concept vocabularies and responses.

Lowercases, folds accents and typographic apostrophes, drops possessives ("owl's", "owls'") and splits into
phrases at punctuation, so that words from two sentences ("a cat. Fish ...") never join into one name.
Markdown, numbers and other symbols fall away because a word needs a letter (digits inside one stay:
"r2d2"); a pictograph (emoji) becomes
its Unicode name in a phrase of its own, so "\U0001f989" reads as "owl" and "\U0001f981" as "lion face".
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})
_POSSESSIVE = re.compile(r"(?<=[^\W\d_])'s\b|(?<=s)'(?!\w)")
# Phrase boundaries: sentence and list punctuation, brackets, quotes, slashes, newlines, emphasis markers.
_BOUNDARY = re.compile(r"[.,;:!?()\[\]{}\"/\\|\n\r\t*_#>~=+<]+")
_WORD = re.compile(r"[^\W_]*[^\W\d_][^\W_]*")  # letters, and digits only inside a word ("r2d2")


def fold(text: str) -> str:
    """Lowercase, strip accents and unify apostrophes (fast path for ASCII)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
        text = "".join(_fold_char(ch) for ch in text if not unicodedata.combining(ch))
    return _POSSESSIVE.sub("", text.lower())


def _fold_char(ch: str) -> str:
    if ch.isascii() or unicodedata.category(ch) != "So":
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
