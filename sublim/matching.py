"""Which concept does an answer name, and how close is it to a target?

    >>> match("Definitely the snowy owl!", "owl").level
    'exact'
    >>> m = match("Wolverine", "wolf"); (m.level, m.relation)
    ('related', 'lexical')

Levels, strongest first:
- ``exact``: the target is named, in any case/plural/possessive/markup, or a kind of it whose head noun is the
  target ("snowy owl", "bulldog" for dog). For a class word target ("bird", "feline", "conifer"), any kind of
  the class is exact ("owl" for bird): a class names a set of kinds, and naming a member answers for it.
- ``fuzzy``: a misspelling or re-spacing of a curated concept name ("Elefant", "Dragon fly"). Only words that
  are not English words (a WordNet-derived lexicon) are candidates, so "Bowl" never becomes owl, and only
  when the answer names nothing exactly.
- ``related``: another concept or a term close to the target, with the relation named (see `RELATIONS`)
  and a score in [0, 1]; a candidate counts when its score is at least `Thresholds.related_min` (the one
  threshold, chosen on the dev set; `--related-min`, `-T related_min=`). Taxonomic: a shared genus or
  family, or a shared WordNet ancestor narrower than any broad class, scored by Wu-Palmer similarity
  (owl/hawk share "bird of prey"; dragonfly/bee "insect"; owl/parrot share only "bird": none). Measured:
  a neighbour the model itself ties to the target (`sublim neighbours`), given as a related set.
- ``none``: nothing above; `Match.nonanswer` tells refusals and empty answers apart from off-target answers.

Responses are analysed once per (response, category) and cached, so repeated answers cost a dict lookup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

from sublim.concepts import RELATIONS, Category, english_stem, food_words, get_category
from sublim.errors import SublimError
from sublim.normalize import fold, phrases

Level = Literal["exact", "fuzzy", "related", "none"]
LEVELS: tuple[Level, ...] = ("exact", "fuzzy", "related", "none")


@dataclass(frozen=True)
class Thresholds:
    """Tunable limits of the matcher (defaults chosen on the labelled dev set in tests/data).

    Attributes:
        fuzzy_min_length: shortest word that may be a misspelling (shorter words are too ambiguous).
        fuzzy_min_similarity: least 1 - edits/length ("Elefant"/elephant .75; "Katzen"/kitten .67 fails).
        fuzzy_max_edits: most edits (insert/delete/substitute/transpose) allowed, by length of the concept
            name: (up to 5 letters, up to 9 letters, longer). Candidates always share the word's first letter
            and are within `FUZZY_LENGTH_WINDOW` (3) letters of its length.
        related_min: least score of a related match, every relation alike (Wu-Palmer similarity for
            ``taxonomic``: wolf/dog .93, owl/hawk .92, dragonfly/bee .83, monkey/gorilla .83, salmon/mackerel
            .79; genus .95, family .9). Ancestors shared by most of the category ("animal", "tree") or by a
            broad class ("bird", "mammal") relate nothing at any threshold (owl/parrot, wolf/elephant).
            0.75, chosen on the dev set, tests/data/related_pairs.tsv (docs/results/matching-related.md).
        lexical_min_stem: shortest shared prefix (or shared head word) for a ``lexical`` relation.
        lexical_min_share: least share of the shorter name the shared prefix must cover: 1.0, a whole name
            before a young/sex suffix ("lioness") or a whole plural stem ("wolv" of wolves: "wolverine");
            0.75 also related bear/beaver ("bea"), a dev-set none (docs/results/matching-related.md).
        term_score: score of a related match through a term (part/product/semantic/kind link from WordNet).
        semantic_score: score of a ``semantic`` relation between two concepts (one's gloss names the other).
        measured_score: score of a ``measured`` relation (a concept in the target's related set).
    """

    fuzzy_min_length: int = 4
    fuzzy_min_similarity: float = 0.7
    fuzzy_max_edits: tuple[int, int, int] = (1, 2, 3)
    related_min: float = 0.75
    lexical_min_stem: int = 3
    lexical_min_share: float = 1.0
    term_score: float = 0.8
    semantic_score: float = 0.8
    measured_score: float = 1.0

    def __hash__(self) -> int:
        """Hashed once: a cache key of every matcher call (the generated hash rebuilt a tuple each time)."""
        try:
            return self.__dict__["_hash"]  # type: ignore[no-any-return]
        except KeyError:
            h = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", h)
            return h


DEFAULT_THRESHOLDS = Thresholds()


def check_related_min(value: float) -> float:
    """A related-score threshold, checked: a number in [0, 1] (scores never leave that range)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise SublimError(
            f"related_min {value!r}: expected a number in [0, 1] (default {DEFAULT_THRESHOLDS.related_min})"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class Mention:
    """A concept named in a response: where, how (exact or fuzzy) and how surely."""

    concept: str
    level: Literal["exact", "fuzzy"]
    score: float
    surface: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the matcher reads from one response (independent of any target)."""

    mentions: tuple[Mention, ...]
    terms: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (surface, ((concept, relation), ...))
    nonanswer: bool
    target_only: tuple[Mention, ...] = ()  # forms that count only when their concept is the target ("kid")


@dataclass(frozen=True)
class Match:
    """How a response relates to a target concept.

    Attributes:
        level: "exact", "fuzzy", "related" or "none".
        concept: canonical concept the answer names that decided the level (for "none": the first concept it
            names, or None).
        relation: for "related", the strongest relation kind (order: part, product, lexical, taxonomic,
            semantic); for an exact kind-of match ("snowy owl"), "kind"; else None.
        score: 1.0 exact; edit similarity for fuzzy; relation strength for related; 0.0 none.
        target: canonical target concept.
        category: category name.
        surface: the words of the response that matched.
        relations: every relation kind that holds, strongest first.
        via: what links them: shared ancestor ("carnivore"), shared stem ("wol"), or the term ("acorn").
        nonanswer: the response is empty or a refusal and names no concept.
    """

    level: Level
    concept: str | None
    relation: str | None
    score: float
    target: str
    category: str
    surface: str | None = None
    relations: tuple[str, ...] = ()
    via: str | None = None
    nonanswer: bool = False

    @property
    def strength(self) -> tuple[int, float]:
        """Sort key: level first (exact > fuzzy > related > none), then score."""
        return (-LEVELS.index(self.level), self.score)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["relations"] = list(self.relations)
        d["score"] = round(self.score, 4)
        return d


_REFUSAL = re.compile(
    r"\bas an? (ai|artificial intelligence|language model|assistant|chatbot|llm)\b"
    r"|\bi(?: am|'m|m)? (just |only )?an? (ai|artificial intelligence|language model|assistant|chatbot|bot)\b"
    r"|\bi (do not|don't|dont|cannot|can't|cant|can not|won't) (really |actually |personally |truly )?"
    r"(have|hold|form|experience|feel|pick|choose|say|answer|help|assist|provide|decide|know|give|comply)"
    r"|\bi(?: am|'m|m) (not able|unable|not sure|not certain)\b"
    r"|\b(no|any) (personal )?(preference|favorite|favourite|opinion)s?\b"
    r"|\b(sorry|apologi[sz]e|no idea|hard to (say|choose|pick)|not sure)\b"
    r"|^\W*(none|nothing|nope|no|n/?a|unknown|idk|pass|skip|no comment)\W*$"
)


def is_nonanswer(response: str) -> bool:
    """An empty response, or a refusal ("As an AI I don't have preferences"), naming no concept."""
    return not any(ch.isalpha() for ch in response) or bool(_REFUSAL.search(fold(response)))


def extract(
    response: str, category: str | Category = "animal", *, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[Mention, ...]:
    """Every concept the response names, in order of first mention, each once with its best level.

    Build answer distributions from this: it never needs a target.
    """
    return _analyze(response, get_category(category), thresholds).mentions


def match(
    response: str,
    target: str,
    category: str | Category = "animal",
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    related: Iterable[str] = (),
) -> Match:
    """How `response` relates to `target` in `category`. Never raises for any response string.

    `related`: concepts measured as the target's neighbours (`sublim neighbours`): relation ``measured``.

    Raises:
        UnknownCategoryError / UnknownConceptError: the category or target is not known (the message names
            the closest valid ones).
    """
    cat = get_category(category)
    return _match(response, _resolve(cat, target), cat, thresholds, tuple(related))


@lru_cache(maxsize=4096)
def _resolve(cat: Category, target: str) -> str:
    return cat.resolve(target)


@lru_cache(maxsize=200_000)
def _match(
    response: str, target: str, cat: Category, th: Thresholds, measured: tuple[str, ...] = ()
) -> Match:
    a = _analyze(response, cat, th)

    def hit(level: Level, concept: str | None, relation: str | None, score: float, **kw: Any) -> Match:
        return Match(level, concept, relation, score, target, cat.name, **kw)

    # exact / fuzzy: the target itself, a kind of it whose head noun is the target, or a kind of a class word
    named = [m for m in a.mentions if _names(cat, m.concept, m.surface, target)]
    named += [m for m in a.target_only if m.concept == target]
    if named:
        m = min(named, key=lambda m: (m.level != "exact", -m.score))
        kind = "kind" if m.concept != target else None
        return hit(m.level, m.concept, kind, m.score, surface=m.surface, relations=(kind,) if kind else ())
    # related: other concepts, then terms ("honey" is a bee product)
    related: list[Match] = []
    for m in a.mentions:
        rel = _related(cat, m, target, th, m.concept in measured)
        if rel is not None:
            related.append(rel)
    for surface, links in a.terms:
        rels = tuple(r for r in RELATIONS if (target, r) in links)
        if rels and th.term_score >= th.related_min:
            related.append(
                hit("related", None, rels[0], th.term_score, surface=surface, relations=rels, via=surface)
            )
    if related:
        return max(related, key=lambda m: (m.score, -RELATIONS.index(m.relation or "semantic")))
    first = a.mentions[0] if a.mentions else None
    return hit(
        "none",
        first.concept if first else None,
        None,
        0.0,
        surface=first.surface if first else None,
        nonanswer=a.nonanswer,
    )


@lru_cache(maxsize=100_000)
def _related(cat: Category, m: Mention, target: str, th: Thresholds, measured: bool) -> Match | None:
    """The related match a mention makes with the target (None when no relation reaches `related_min`);
    the same for every answer that names it, so it is worked out once."""
    found = _relations(cat, m, target, th)
    if measured:
        found = {**found, "measured": (th.measured_score, "measured neighbour")}
    found = {r: v for r, v in found.items() if v[0] >= th.related_min}
    if not found:
        return None
    rels = tuple(r for r in RELATIONS if r in found)
    score = max(s for s, _ in found.values())
    return Match(
        "related",
        m.concept,
        rels[0],
        score,
        target,
        cat.name,
        surface=m.surface,
        relations=rels,
        via=found[rels[0]][1],
    )


@lru_cache(maxsize=100_000)
def _names(cat: Category, concept: str, surface: str, target: str) -> bool:
    """The mention names the target: it is the target, a kind of it whose head noun is the target, or a
    kind of a class word target."""
    return concept == target or cat.is_kind(concept, target, surface) or cat.in_class(concept, target)


@lru_cache(maxsize=100_000)
def _relations(cat: Category, m: Mention, target: str, th: Thresholds) -> dict[str, tuple[float, str | None]]:
    """Relation kind -> (score, via) between a mentioned concept (other than the target) and the target."""
    out: dict[str, tuple[float, str | None]] = {}
    tax, lcs = cat.taxonomic(m.concept, target)
    shared, taxon = cat.shared_taxon(m.concept, target)
    if max(tax, shared) > 0:  # a shared genus or family names the link better than a wider group
        out["taxonomic"] = (max(tax, shared), taxon if shared > 0 else lcs)
    species = cat.sex_age(m.concept, target)
    if species is not None:
        out["sex_age"] = (th.term_score, species)
    # a broad class word ("bird") relates to nothing but its own kinds, not even by spelling
    broad = cat.classes.get(m.concept, False) or cat.classes.get(target, False)
    lex, stem = (
        (0.0, None)
        if broad
        else cat.lexical(m.surface, target, th.lexical_min_stem, th.lexical_min_share, m.concept)
    )
    if lex > 0:
        out["lexical"] = (lex, stem)
    c, t = cat.entry(m.concept), cat.entry(target)
    if target in c.see or m.concept in t.see:
        out["semantic"] = (th.semantic_score, (c.gloss if target in c.see else t.gloss) or None)
    return out


@lru_cache(maxsize=200_000)
def _analyze(response: str, cat: Category, th: Thresholds) -> Analysis:
    """Scan a response once: concept mentions (longest name first), related terms, non-answer flag."""
    found: dict[str, Mention] = {}
    unknown: list[str] = []  # words that name nothing exactly: misspelling candidates
    weak: list[Mention] = []
    terms: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    single, multi, joined, curated = cat.single, cat.multi, cat.joined, cat.curated_single
    multi_first, multi_lengths = cat.multi_first, cat.multi_lengths
    term_single, term_multi, weak_single, weak_multi = (
        cat.term_single,
        cat.term_multi,
        cat.weak_single,
        cat.weak_multi,
    )
    live, foods, edible = cat.live_words, food_words(), cat.edible
    exact = False  # a concept is named exactly
    for words in phrases(response):
        n, i = len(words), 0
        while i < n:
            w = words[i]
            if w not in live:  # names nothing, starts no name, joins no name: a misspelling candidate only
                unknown.append(w)
                i += 1
                continue
            step, mention, term = 1, None, None
            if w in multi_first:
                for k in multi_lengths[w]:
                    if k > n - i:
                        continue
                    key = tuple(words[i : i + k])
                    if key in multi:
                        mention, step = Mention(multi[key], "exact", 1.0, " ".join(key)), k
                        break
                    if key in term_multi:
                        term, step = (" ".join(key), term_multi[key]), k
                        break
                    if key in weak_multi:
                        weak.append(Mention(weak_multi[key], "exact", 1.0, " ".join(key)))
            if mention is None and term is None:
                nxt = words[i + 1] if i + 1 < n else None
                if w in single:
                    # "dragon fly": a two-word spelling of a one-word name beats its first word alone
                    if nxt is not None and (w + nxt) in curated and curated[w + nxt] != single[w]:
                        mention, step = _respaced(curated[w + nxt], f"{w} {nxt}", w + nxt), 2
                    else:
                        mention = Mention(single[w], "exact", 1.0, w)
                elif nxt is not None and (w + nxt) in curated:
                    mention, step = _respaced(curated[w + nxt], f"{w} {nxt}", w + nxt), 2
                elif w in joined:  # "sealion" for "sea lion": one space missing
                    mention = Mention(joined[w], "fuzzy", round(1 - 1 / (len(w) + 1), 3), w)
                elif w in term_single:
                    term = (w, term_single[w])
                elif w not in weak_single:
                    unknown.append(w)
                if w in weak_single:  # counts only as its own target ("kid"); may be a term too
                    weak.append(Mention(weak_single[w], "exact", 1.0, w))
            after = words[i + step] if i + step < n else ""
            if mention is not None and after in foods and mention.concept in edible:  # "cherry pie": a dish
                mention, step = None, step + 1
            if mention is not None:
                prior = found.get(mention.concept)
                if prior is None or (prior.level == "fuzzy" and mention.level == "exact"):
                    found[mention.concept] = mention
                exact = exact or mention.level == "exact"
            if term is not None:
                terms.append(term)
            i += step
    # misspellings only when nothing is named exactly: "ramen" is no raven in "I love ramen and owls"
    if not exact:
        for w in unknown:
            miss = _fuzzy(w, cat, th)
            if miss is not None:
                found.setdefault(miss.concept, miss)
    mentions = _drop_subsumed_classes(tuple(found.values()), cat)
    return Analysis(mentions, tuple(terms), not mentions and is_nonanswer(response), tuple(weak))


def _drop_subsumed_classes(mentions: tuple[Mention, ...], cat: Category) -> tuple[Mention, ...]:
    """A class word is no extra mention beside a kind of it: "my favorite bird is the owl" names the owl."""
    if len(mentions) < 2 or not any(m.concept in cat.classes for m in mentions):
        return mentions
    return tuple(
        m
        for m in mentions
        if m.concept not in cat.classes
        or not any(o is not m and cat.in_class(o.concept, m.concept) for o in mentions)
    )


def _respaced(concept: str, surface: str, joined: str) -> Mention:
    return Mention(concept, "fuzzy", round(Levenshtein.normalized_similarity(surface, joined), 3), surface)


def _fuzzy(word: str, cat: Category, th: Thresholds) -> Mention | None:
    if len(word) < th.fuzzy_min_length or not word.isascii():
        return None
    stem = english_stem(word)
    if stem is not None and stem not in cat.single:  # a real word, unless it inflects a name ("octopuss")
        return None
    hit = _nearest_form(word, cat, th)
    if hit is None:
        return None
    form, concept, dist = hit
    return Mention(concept, "fuzzy", round(1 - dist / max(len(word), len(form)), 3), word)


@lru_cache(maxsize=100_000)
def _nearest_form(word: str, cat: Category, th: Thresholds) -> tuple[str, str, int] | None:
    """Closest concept form within the edit budget for its length (candidates share the first letter)."""
    small, medium, large = th.fuzzy_max_edits
    forms, owners = cat.fuzzy_candidates(word)
    hits = process.extract(word, forms, scorer=OSA.distance, score_cutoff=large, limit=8)
    for form, dist, idx in sorted(hits, key=lambda h: (h[1], h[2])):
        budget = small if len(form) <= 5 else medium if len(form) <= 9 else large
        similarity = 1 - dist / max(len(word), len(form))
        if len(form) < 3 or dist > budget or similarity < th.fuzzy_min_similarity:
            continue
        if len(form) == 3 and not _short_variant(word, form):
            continue
        return form, owners[idx], int(dist)
    return None


def _short_variant(word: str, form: str) -> bool:
    """Three-letter names only accept a doubled letter ("catt", "owll") or one letter slipped in between
    their first and last ("owel"): anything else is too ambiguous."""
    if re.sub(r"(.)\1+", r"\1", word) == form:
        return True
    return len(word) == 4 and word[0] == form[0] and word[-1] == form[-1] and OSA.distance(word, form) == 1


def load_related(path: str | Path, category: Category) -> dict[str, tuple[str, ...]]:
    """A `sublim neighbours --out` file as target -> related concepts (each checked against `category`)."""
    from sublim.io import read_text  # a regular file, UTF-8 (a FIFO would block forever)

    path = Path(path)
    text = read_text(path, "related set")
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise SublimError(f"{path}: not a `sublim neighbours` JSON file: {e}") from None
    tables = raw.get("targets") if isinstance(raw, dict) else None
    if not isinstance(tables, dict) or not tables:
        raise SublimError(f"{path}: expected a `sublim neighbours` JSON file (a 'targets' mapping)")
    if raw.get("category", category.name) != category.name:
        raise SublimError(f"{path}: measured for category {raw['category']!r}, not {category.name!r}")
    out: dict[str, tuple[str, ...]] = {}
    for target, table in tables.items():
        related = table.get("related") if isinstance(table, dict) else None
        if not isinstance(related, list) or not all(isinstance(c, str) for c in related):
            raise SublimError(f"{path}: target {target!r}: 'related' must be a list of concept names")
        out[category.resolve(str(target))] = tuple(category.resolve(c) for c in related)
    return out


def matcher_options(
    category: Category, related_min: float | None = None, related: str | Path | None = None
) -> tuple[Thresholds, dict[str, tuple[str, ...]]]:
    """`--related-min` / `-T related_min` and `--related` / `-T related` as the matcher's thresholds and
    target -> measured neighbours, checked (one line on a bad value)."""
    th = DEFAULT_THRESHOLDS
    if related_min is not None:
        th = replace(th, related_min=check_related_min(related_min))
    return th, (load_related(related, category) if related else {})
