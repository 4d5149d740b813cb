"""Errors a user can cause and fix. The CLI prints their message (no traceback) and exits 2."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from rapidfuzz import process


class SublimError(Exception):
    """Base class for user-facing errors: the message says what to do next."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message as one short plain line: its first non-empty line, without ANSI codes, cut at
    `limit` characters ("" when the message is empty)."""
    text = _ANSI.sub("", str(error))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line for a user: `Type: first line` (the type alone for an empty message); a
    `SublimError`'s message is written for the user and stands alone. The one home for this formatting: the
    CLI, the executors and the gate call it."""
    first = first_line(error, limit)
    if isinstance(error, SublimError) and first:
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def closest(name: str, valid: Iterable[str], limit: int = 3) -> list[str]:
    """The valid names nearest to `name` (for "did you mean" hints)."""
    hits = process.extract(name.lower(), list(valid), limit=limit, score_cutoff=50)
    return [h[0] for h in hits]


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong with one field of a config dataclass.

    Attributes:
        field: the field at fault ("rank"; "train.epochs" for a field of a nested config).
        text: what is wrong and what to do; it may name other fields as `{name}`, listed in `refs`.
        shown: the value as the message shows it ("0", "'gpu'"), or None to show none.
        lead: the message starts with the field (and value): "rank=0: must be >= 1"; False: `text` alone.
        refs: the fields `text` names as `{name}`, written as the reader knows them (field or flag).
    """

    field: str
    text: str
    shown: str | None = None
    lead: bool = True
    refs: tuple[str, ...] = ()

    def render(self, flag: Callable[[str], str | None] | None = None) -> str:
        """The problem in one line: with field names (`flag` None), or with the flag `flag(field)` gives
        (a field without a flag keeps its name)."""
        text = self.text
        for name in self.refs:
            text = text.replace("{" + name + "}", (flag and flag(name)) or name)
        if not self.lead:
            return text
        cli = flag and flag(self.field)
        if cli:
            return f"{cli}{'' if self.shown is None else ' ' + self.shown}: {text}"
        return f"{self.field}{'' if self.shown is None else '=' + self.shown}: {text}"

    def nested(self, prefix: str) -> FieldProblem:
        """The same problem one config up: `rank` of the `train` settings becomes `train.rank`."""
        refs = tuple(f"{prefix}.{r}" for r in self.refs)
        text = self.text
        for old, new in zip(self.refs, refs, strict=True):
            text = text.replace("{" + old + "}", "{" + new + "}")
        return replace(self, field=f"{prefix}.{self.field}", text=text, refs=refs)


class ConfigError(SublimError, ValueError):
    """Settings a config dataclass (`TrainConfig`, `SweepConfig`, `ImprintConfig`) cannot take, raised when
    it is constructed. The message names the fields ("rank=0: must be >= 1"); the CLI renders the same
    problems with the flags the user typed ("--rank 0: must be >= 1")."""

    def __init__(self, *problems: FieldProblem) -> None:
        self.problems = problems
        super().__init__(self.render())

    @property
    def field(self) -> str:
        """The first field at fault."""
        return self.problems[0].field

    def render(self, flag: Callable[[str], str | None] | None = None) -> str:
        """Every problem, "; "-joined: with field names, or with the flags `flag(field)` gives."""
        return "; ".join(p.render(flag) for p in self.problems)

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> tuple[type[ConfigError], tuple[FieldProblem, ...]]:
        return (ConfigError, self.problems)  # pickled whole (executors send errors between processes)


def raise_problems(problems: Iterable[FieldProblem]) -> None:
    """One ConfigError listing every problem, if there is any."""
    problems = tuple(problems)
    if problems:
        raise ConfigError(*problems)


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


#: what each optional extra provides (import names), for `require_extra`
EXTRAS = {
    "hf": ("torch", "transformers", "accelerate", "peft", "gguf", "matplotlib"),
    "lm-eval": ("lm_eval",),
    "ray": ("ray",),
    "slurm": ("submitit",),
    "served": ("openai",),
}


class MissingExtraError(SublimError, ImportError):
    """A command needs an optional extra that is not installed."""


def require_extra(extra: str, needed_by: str, modules: Iterable[str] | None = None) -> None:
    """Stop with one line naming the extra to install when a module it provides is missing.

    Looks the modules up without importing them (a few milliseconds), so commands call it first and fail
    before any work, instead of with a ModuleNotFoundError traceback halfway through.
    """
    import importlib.util

    missing = []
    for module in modules or EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise MissingExtraError(
            f"{needed_by} needs {', '.join(missing)}, which the core install leaves out: "
            f"pip install 'sublim[{extra}]'"
        )


#: a stop signal's exception (Ctrl-C, SIGTERM) once raised: Python drops one raised inside a finalizer
#: (`__del__`), so a signal landing there would be lost; long loops re-raise it at their next step
_STOPPED: list[BaseException] = []


def stop_requested(error: BaseException) -> None:
    _STOPPED.append(error)


def raise_if_stopped() -> None:
    """Re-raise a stop signal that arrived (and may have been swallowed) since the command began."""
    if _STOPPED:
        raise _STOPPED[-1]
