"""Errors a user can cause and fix. The CLI prints their message (no traceback) and exits 2."""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz import process


class SublimError(Exception):
    """Base class for user-facing errors: the message says what to do next."""


def closest(name: str, valid: Iterable[str], limit: int = 3) -> list[str]:
    """The valid names nearest to `name` (for "did you mean" hints)."""
    hits = process.extract(name.lower(), list(valid), limit=limit, score_cutoff=50)
    return [h[0] for h in hits]


class UnknownCategoryError(SublimError, KeyError):
    """A category name that is neither built in nor registered."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        valid = sorted(valid)
        hint = closest(name, valid)
        msg = f"unknown category {name!r}"
        msg += f"; did you mean {', '.join(map(repr, hint))}?" if hint else ""
        msg += f" Valid categories: {', '.join(valid)}. Add your own with a concept file (see README)."
        super().__init__(msg)

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownConceptError(SublimError, KeyError):
    """A target that names no concept of the category."""

    def __init__(self, name: str, category: str, valid: Iterable[str]) -> None:
        hint = closest(name, valid)
        msg = f"unknown {category} concept {name!r}"
        msg += f"; closest valid: {', '.join(map(repr, hint))}" if hint else ""
        msg += f". List them with `sublim concepts {category}` or extend the category with a concept file."
        super().__init__(msg)

    def __str__(self) -> str:
        return str(self.args[0])


class ConceptFileError(SublimError, ValueError):
    """A user concept file that cannot be read as documented."""
