"""Built-in categories (shipped JSON generated from WordNet) and user concept files.

User file format (YAML or JSON), to add a category or extend one::

    category: animal            # a built-in name extends it; any other name creates a category
    concepts:                   # a list of names, or a mapping name -> options
      axolotl:
        aliases: [mexican walking fish]   # optional other names
        plurals: [axolotls]               # optional; default: English spelling rules
        kind_of: salamander               # optional: an existing concept; places it in the taxonomy
      jackalope: {}
    terms:                      # optional: words that point at a concept without being one
      acorn: {oak: part}        # relation: part | product | lexical | taxonomic | semantic
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sublim.concepts.category import RELATIONS, Category, Concept, build_concept
from sublim.errors import ConceptFileError, UnknownCategoryError, UnknownConceptError
from sublim.normalize import words

BUILTIN = ("animal", "tree")
_registered: dict[str, Category] = {}


@cache
def _builtin(name: str) -> Category:
    data = resources.files("sublim.concepts").joinpath("data")
    raw = json.loads(data.joinpath(f"{name}.json").read_text())
    concepts = {
        n: Concept(
            name=n,
            aliases=tuple(c["aliases"]),
            forms=tuple(c["forms"]),
            paths=tuple(tuple(p) for p in c["paths"]),
            synset=c["synset"],
            gloss=c["gloss"],
            see=tuple(c["see"]),
            kin=tuple(c.get("kin", ())),
            taxa=tuple(c.get("taxa", ())),
        )
        for n, c in raw["concepts"].items()
    }
    terms = {t: tuple((c, r) for c, r in links) for t, links in raw["terms"].items()}
    vocab = json.loads(gzip.decompress(data.joinpath(f"{name}.vocab.json.gz").read_bytes()))
    paths = _paths_from(vocab["nodes"])
    vocabulary = {
        n: Concept(
            name=n,
            aliases=(n,),
            forms=tuple(forms),
            paths=paths(synset),
            synset=synset,
            gloss=gloss,
            kin=tuple(kin),
            taxa=tuple(taxa),
            target_forms=tuple(weak),
        )
        for n, (synset, gloss, forms, weak, taxa, kin) in vocab["entries"].items()
    }
    return Category(
        name,
        concepts,
        terms,
        vocabulary,
        vocab["classes"],
        {t: (n, r) for t, (n, r) in vocab["taxon_names"].items()},
        frozenset(raw.get("edible", ())),
    )


def _paths_from(parents: dict[str, list[str]]) -> Callable[[str], tuple[tuple[str, ...], ...]]:
    """Root-to-node hypernym paths from a node -> parents graph (memoized; shared prefixes)."""

    @cache
    def paths(node: str) -> tuple[tuple[str, ...], ...]:
        ups = parents.get(node, [])
        if not ups:
            return ((node,),)
        return tuple((*p, node) for up in ups for p in paths(up))

    return paths


def category_names() -> list[str]:
    return sorted({*BUILTIN, *_registered})


def get_category(name: str | Category) -> Category:
    """A category by name (registered user categories shadow built-ins)."""
    if isinstance(name, Category):
        return name
    key = name.strip().lower()
    if key in _registered:
        return _registered[key]
    if key in BUILTIN:
        return _builtin(key)
    raise UnknownCategoryError(name, category_names())


def load_concept_file(path: str | Path) -> Category:
    """Read a user concept file and return the category it defines or extends (not registered)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConceptFileError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except OSError as e:
        raise ConceptFileError(f"cannot read concept file {path}: {e.strerror or e}") from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else _read_yaml(text)
    except Exception as e:
        raise ConceptFileError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {e}") from None
    return _category_from_mapping(raw, str(path))


def _read_yaml(text: str) -> Any:
    """YAML with every scalar read as the text written: a concept file holds only names, so YAML 1.1's
    implicit types would only rename concepts (`NO:` as false, `on:` as true, `null:` as None)."""
    import yaml

    return yaml.load(text, Loader=yaml.BaseLoader)


def _name(value: Any) -> str:
    """A name from a concept file as every reader of names reads it (`sublim.normalize.words`): case,
    accents, look-alike letters and invisible characters folded, so "\u043ewl" is the built-in "owl"."""
    return " ".join(words(str(value)))


def register_category(source: str | Path | Category) -> Category:
    """Register a category (or extension) from a concept file or a Category; returns the registered one."""
    cat = source if isinstance(source, Category) else load_concept_file(source)
    _registered[cat.name] = cat
    return cat


def _category_from_mapping(raw: Any, where: str) -> Category:
    if not isinstance(raw, dict) or not isinstance(raw.get("category"), str) or not raw["category"].strip():
        raise ConceptFileError(
            f"{where}: expected a mapping with a 'category' name (see the README's format)"
        )
    name = _name(raw["category"])
    if not name:
        raise ConceptFileError(f"{where}: category {raw['category']!r} has no letters")
    try:
        base: Category | None = get_category(name)
    except UnknownCategoryError:
        base = None
    concepts: dict[str, Concept] = dict(base.concepts) if base else {}
    entries = raw.get("concepts") or {}
    if isinstance(entries, list):
        entries = {str(e): {} for e in entries}
    if not isinstance(entries, dict):
        raise ConceptFileError(f"{where}: 'concepts' must be a list of names or a mapping name -> options")
    checked: dict[str, dict[str, Any]] = {}
    for given, opts in entries.items():
        opts = opts or {}
        if given is None or not str(given).strip():
            raise ConceptFileError(f"{where}: a concept has a blank name; give every concept a name")
        cname = _name(given)
        if not cname:
            raise ConceptFileError(
                f"{where}: concept {str(given)!r} has no letters: a concept name needs a letter (a-z or any "
                "alphabet)"
            )
        if not isinstance(opts, dict):
            raise ConceptFileError(f"{where}: concept {cname!r}: options must be a mapping")
        _check_options(cname, opts, where)
        if cname in checked:
            raise ConceptFileError(f"{where}: concept {cname!r} is defined twice ({str(given)!r})")
        checked[cname] = opts
    for cname in _parents_first(checked, concepts, where):
        opts = checked[cname]
        paths: list[tuple[str, ...]] = []
        synset = f"user:{name}:{cname}"
        if opts.get("kind_of"):
            parent = _lookup(concepts, str(opts["kind_of"]), name, where)
            paths = [(*p, synset) for p in parent.paths] or [(parent.synset or parent.name, synset)]
        prior = concepts.get(cname)
        aliases = [_names_one(a, cname, "alias", where) for a in opts.get("aliases", [])]
        plurals = (
            [_names_one(p, cname, "plural", where) for p in opts["plurals"]] if "plurals" in opts else None
        )
        new = build_concept(cname, aliases, plurals, paths, synset, str(opts.get("gloss", "")))
        if prior is not None:  # extending a concept keeps what it had
            new = Concept(
                name=cname,
                aliases=tuple(dict.fromkeys([*prior.aliases, *new.aliases])),
                forms=tuple(dict.fromkeys([*prior.forms, *new.forms])),
                paths=tuple(paths) or prior.paths,
                synset=synset if paths else prior.synset,
                gloss=new.gloss or prior.gloss,
                see=prior.see,
            )
        concepts[cname] = new
    _refuse_collisions(concepts, set(checked), where)
    if not concepts:
        raise ConceptFileError(f"{where}: category {name!r} has no concepts")
    terms = dict(base.terms) if base else {}
    for term, links in (raw.get("terms") or {}).items():
        if not isinstance(links, dict):
            raise ConceptFileError(f"{where}: term {term!r}: expected a mapping concept -> relation")
        pairs = []
        for cname, rel in links.items():
            if rel not in RELATIONS:
                raise ConceptFileError(f"{where}: term {term!r}: relation {rel!r} is not one of {RELATIONS}")
            pairs.append((_lookup(concepts, str(cname), name, where).name, str(rel)))
        terms[_names_one(term, str(term), "term", where)] = tuple(pairs)
    if base is not None:  # an extended built-in keeps its open vocabulary and class words
        return dataclasses.replace(base, concepts=concepts, terms=terms)
    return Category(name, concepts, terms)


def _names_one(value: Any, owner: str, what: str, where: str) -> str:
    name = _name(value)
    if not name:
        raise ConceptFileError(f"{where}: {owner!r}: {what} {str(value)!r} has no letters")
    return name


def _lookup(concepts: dict[str, Concept], name: str, category: str, where: str) -> Concept:
    key = _name(name)
    if key in concepts:
        return concepts[key]
    for c in concepts.values():
        if key in c.forms:
            return c
    raise ConceptFileError(f"{where}: {UnknownConceptError(name, category, concepts)}")


_OPTION_TYPES = {"aliases": "a list of names", "plurals": "a list of names", "kind_of": "a concept name",
                 "gloss": "a string"}  # fmt: skip


def _check_options(cname: str, opts: dict[str, Any], where: str) -> None:
    """Known options only, each of the documented type (the message names the key and the type)."""
    unknown = set(opts) - set(_OPTION_TYPES)
    if unknown:
        raise ConceptFileError(
            f"{where}: concept {cname!r}: unknown option(s) {sorted(unknown)}; "
            f"valid: {', '.join(_OPTION_TYPES)}"
        )
    for key, value in opts.items():
        listy = key in ("aliases", "plurals")
        ok = (
            isinstance(value, list)
            and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value)
            if listy
            else isinstance(value, str)
        )
        if not ok:
            raise ConceptFileError(
                f"{where}: concept {cname!r}: {key!r} must be {_OPTION_TYPES[key]}, "
                f"not {type(value).__name__}"
            )


def _parents_first(entries: dict[str, dict[str, Any]], known: dict[str, Concept], where: str) -> list[str]:
    """The file's concepts ordered so that each comes after the concept it is a kind of (a file may name a
    parent defined further down, as yaml.safe_dump's sorted keys do); a kind_of cycle is refused as one.
    Iterative, so a chain of any length listed children first is fine."""
    order: list[str] = []
    done: set[str] = set()
    for start in entries:
        trail: list[str] = []
        on_trail: set[str] = set()
        c: str | None = start
        while c is not None and c not in done:
            if c in on_trail:
                cycle = [*trail[trail.index(c) :], c]
                raise ConceptFileError(f"{where}: kind_of cycle: {' -> '.join(cycle)}")
            trail.append(c)
            on_trail.add(c)
            parent = _name(entries[c].get("kind_of") or "")
            c = parent if parent in entries else None
        for node in reversed(trail):
            done.add(node)
            order.append(node)
    return order


def _refuse_collisions(concepts: dict[str, Concept], defined: set[str], where: str) -> None:
    """A name or alias of a concept this file defines may not be a name or alias of another concept: it
    would take over the other's answers (an alias `owl` on a new concept made target owl resolve to it)."""
    owners: dict[tuple[str, ...], str] = {}
    for c in sorted(concepts, key=lambda c: c in defined):  # others first: the file's concepts collide
        for alias in (c, *concepts[c].aliases):
            key = words(alias)
            other = owners.setdefault(key, c)
            if other != c:
                raise ConceptFileError(
                    f"{where}: {alias!r} names both {other!r} and {c!r}; give it to one concept only"
                )
