"""A category of concepts (animals, trees, ...): names, surface forms, taxonomy and related terms.

A `Category` is immutable: extending one (a user file) builds a new object, so caches keyed on a category
never go stale. The relation logic that only needs the vocabulary (taxonomy, lexical stems) lives here;
reading responses lives in `sublim.matching`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from sublim.concepts.lexicon import is_compound_of, plural_forms
from sublim.errors import UnknownConceptError
from sublim.normalize import words

#: Share of a category's concepts a taxonomy node must cover to be too generic to relate two of them.
GENERIC_SHARE = 0.8
#: First letters that spell the same sound: a misspelling may swap one for another ("jiraffe", "kangaru").
SAME_SOUND = {"g": "j", "j": "g", "c": "ks", "k": "c", "s": "cz", "z": "s"}
#: Fuzzy matching considers forms at most this many letters longer or shorter than the word.
FUZZY_LENGTH_WINDOW = 3
#: Similarity of two concepts in one genus / one family (WordNet member holonyms), on the Wu-Palmer scale:
#: trees hang directly under "tree" in WordNet's hypernyms, so their families are only seen this way.
GENUS_SIMILARITY = 0.95
FAMILY_SIMILARITY = 0.9
#: Relation kinds a related match can name, strongest evidence first. ``sex_age``: a young or sex name of the
#: same species ("kitten"/cat, "hen"/chicken, "owlet"/owl).
#: What may follow a whole name for the longer word to share its stem ("lioness", "duckling").
STEM_SUFFIXES = frozenset(
    {"", "s", "es", "let", "ling", "ess", "et", "ette", "kin", "y", "ie", "lings", "lets"}
)
#: ``measured``: in the target's related set measured from a model (`sublim neighbours`).
RELATIONS = ("sex_age", "part", "product", "lexical", "taxonomic", "semantic", "measured")


def wu_palmer(paths_a: Sequence[Sequence[str]], paths_b: Sequence[Sequence[str]]) -> float:
    """Wu-Palmer similarity from root-to-node hypernym paths: 2*depth(lcs) / (depth(a) + depth(b)).

    The best pair of paths counts. Agrees with nltk's `wup_similarity` to within 0.05 on the shipped data
    (checked by scripts/build_concepts.py). 0.0 when either side has no taxonomy.
    """
    best = 0.0
    for pa in paths_a:
        for pb in paths_b:
            common = 0
            for x, y in zip(pa, pb, strict=False):
                if x != y:
                    break
                common += 1
            if pa and pb:
                best = max(best, 2 * common / (len(pa) + len(pb)))
    return best


#: word -> concept, and words (a multi-word name) -> concept: the name index's two shapes
_Words = dict[str, str]
_Phrases = dict[tuple[str, ...], str]


@dataclass(frozen=True)
class Concept:
    """One concept of a category.

    Attributes:
        name: canonical name (lowercase), e.g. "polar bear".
        aliases: other names that denote it ("hippo" for hippopotamus), canonical name first.
        forms: every surface form matched exactly: aliases and their plurals.
        paths: hypernym paths from the taxonomy root to this concept (WordNet synset ids); empty when the
            concept has no place in a taxonomy (a user concept without `kind_of`).
        synset: the concept's own node id in `paths` ("owl.n.01", or "user:<name>").
        gloss: a short definition, for people reading reports.
        see: other concepts its gloss names ("kitten" -> cat): semantic neighbours.
        kin: for a young or sex name ("kitten", "hen"), the species it names ("domestic cat", "chicken").
        taxa: WordNet genus and family nodes it belongs to ("quercus.n.01", "fagaceae.n.01").
        target_forms: forms recognised only when this concept is the target: words whose usual sense is
            something else ("kid" is a child more often than a young goat) or too general ("animal").
    """

    name: str
    aliases: tuple[str, ...]
    forms: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...] = ()
    synset: str = ""
    gloss: str = ""
    see: tuple[str, ...] = ()
    kin: tuple[str, ...] = ()
    taxa: tuple[str, ...] = ()
    target_forms: tuple[str, ...] = ()

    @cached_property
    def ancestors(self) -> frozenset[str]:
        return frozenset(node for p in self.paths for node in p[:-1])

    @cached_property
    def plural_stems(self) -> tuple[str, ...]:
        """Stems of its plurals that are not a name: "wolves" -> "wolv" (f to v before "-es")."""
        stems = (f[:-2] for f in self.forms if f.endswith("ves") and " " not in f and f not in self.aliases)
        return tuple(dict.fromkeys(st for st in stems if len(st) >= 4 and st not in self.aliases))


@dataclass(frozen=True, eq=False)
class Category:
    """Concepts of one category plus the indexes the matcher reads (built once, on construction).

    Two vocabularies:
    - `concepts`, the curated candidate list: the common names probability mode scores (one log-likelihood per
      name, so its cost grows with `names()`), listed by `sublim concepts`;
    - `vocabulary`, the open vocabulary: every other WordNet noun under the category's root (kinds, breeds,
      young and sex names, Latin names). Its entries are valid targets and are recognised in answers, but
      probability mode never scores them. `entry(name)` reads either.

    Attributes:
        name: category name ("animal").
        concepts: canonical name -> Concept (the curated candidate list).
        terms: words that point at concepts without being one: form -> ((concept, relation), ...).
        vocabulary: open-vocabulary entries that are not curated concepts: name -> Concept.
        classes: class words ("bird", "feline", "conifer") -> broad. A kind of a class counts as the class;
            a broad class (biological class rank or above) is too wide to relate two of its members.
        taxon_names: genus/family node -> (readable name, rank), e.g. ("beech family", "family").
        edible: concepts that are also a food ("tuna", "cherry"): before a food word ("cherry pie") the
            answer names a dish, not the concept.
    """

    name: str
    concepts: Mapping[str, Concept]
    terms: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    vocabulary: Mapping[str, Concept] = field(default_factory=dict, repr=False)
    classes: Mapping[str, bool] = field(default_factory=dict, repr=False)
    taxon_names: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    edible: frozenset[str] = frozenset()
    # indexes (derived)
    single: dict[str, str] = field(init=False, repr=False)
    curated_single: dict[str, str] = field(init=False, repr=False)
    weak_single: dict[str, str] = field(init=False, repr=False)
    weak_multi: dict[tuple[str, ...], str] = field(init=False, repr=False)
    multi_lengths: dict[str, tuple[int, ...]] = field(init=False, repr=False)
    blockers: frozenset[str] = field(init=False, repr=False)
    multi: dict[tuple[str, ...], str] = field(init=False, repr=False)
    multi_first: frozenset[str] = field(init=False, repr=False)
    max_words: int = field(init=False, repr=False)
    joined: dict[str, str] = field(init=False, repr=False)
    term_single: dict[str, tuple[tuple[str, str], ...]] = field(init=False, repr=False)
    term_multi: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = field(init=False, repr=False)
    fuzzy_buckets: dict[tuple[str, int], tuple[tuple[str, ...], tuple[str, ...]]] = field(
        init=False, repr=False
    )
    generic: frozenset[str] = field(init=False, repr=False)
    live_words: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        single, multi, joined, curated_single, weak_single, weak_multi = self._name_index()
        term_single, term_multi = self._term_index(single, multi)
        # every word a scan of an answer must look at: a name, a term, the first word of a multi-word name or
        # term, a joined spelling, or the start of a curated name ("dragon" of "dragon fly"); any other word
        # is only a misspelling candidate
        starts = {f[:k] for f in curated_single for k in range(1, len(f))}
        live = {*single, *joined, *term_single, *weak_single, *starts}
        live.update(k[0] for k in [*multi, *term_multi, *weak_multi])
        object.__setattr__(self, "live_words", frozenset(live))
        fuzzy = {**{k: v for k, v in joined.items() if k not in curated_single}, **curated_single}
        set_ = object.__setattr__
        set_(self, "single", single)
        set_(self, "curated_single", curated_single)
        set_(self, "weak_single", weak_single)
        set_(self, "weak_multi", weak_multi)
        set_(self, "multi", multi)
        lengths: dict[str, set[int]] = {}
        for k in [*multi, *term_multi, *weak_multi]:
            lengths.setdefault(k[0], set()).add(len(k))
        set_(self, "multi_lengths", {w: tuple(sorted(n, reverse=True)) for w, n in lengths.items()})
        set_(self, "multi_first", frozenset(lengths))
        set_(self, "max_words", max([len(k) for k in [*multi, *term_multi, *weak_multi]], default=1))
        set_(self, "joined", {k: v for k, v in joined.items() if k not in single})
        set_(self, "term_single", term_single)
        set_(self, "term_multi", term_multi)
        # fuzzy candidates bucketed by (first letter, length): misspellings keep the first letter and the
        # length within a few letters, so each lookup scores a few dozen forms, not thousands
        buckets: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for form, owner in fuzzy.items():
            for n in range(len(form) - FUZZY_LENGTH_WINDOW, len(form) + FUZZY_LENGTH_WINDOW + 1):
                buckets.setdefault((form[0], n), []).append((form, owner))
        set_(
            self,
            "fuzzy_buckets",
            {k: (tuple(f for f, _ in v), tuple(o for _, o in v)) for k, v in buckets.items()},
        )
        self._taxonomy_blockers()

    def _name_index(self) -> tuple[_Words, _Phrases, _Words, _Words, _Words, _Phrases]:
        """Word(s) -> concept for every curated name (single words, multi-word names, their joined spellings),
        then the open vocabulary's exact forms, and its target forms as weak entries."""
        single: dict[str, str] = {}
        multi: dict[tuple[str, ...], str] = {}
        joined: dict[str, str] = {}
        for c in self.concepts.values():
            for form in c.forms:
                toks = words(form)
                if len(toks) == 1:
                    single.setdefault(toks[0], c.name)
                elif toks:
                    multi.setdefault(toks, c.name)
                    joined.setdefault("".join(toks), c.name)
        curated_single = dict(single)
        # the open vocabulary: exact forms only (misspellings and re-spacings stay with curated names)
        weak_single: dict[str, str] = {}
        weak_multi: dict[tuple[str, ...], str] = {}
        for c in self.vocabulary.values():
            for form in c.forms:
                toks = words(form)
                if len(toks) == 1:
                    single.setdefault(toks[0], c.name)
                elif toks:
                    multi.setdefault(toks, c.name)
            for form in c.target_forms:
                toks = words(form)
                if len(toks) == 1 and toks[0] not in single:
                    weak_single.setdefault(toks[0], c.name)
                elif len(toks) > 1 and toks not in multi:
                    weak_multi.setdefault(toks, c.name)
        return single, multi, joined, curated_single, weak_single, weak_multi

    def _term_index(
        self, single: dict[str, str], multi: dict[tuple[str, ...], str]
    ) -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[tuple[str, ...], tuple[tuple[str, str], ...]]]:
        """Relation terms by word(s); a kind compounded on its concept's name ("honeybee", "sheepdog") is
        added to `single` as that concept instead."""
        for form, links in self.terms.items():
            toks = words(form)
            if len(toks) != 1 or toks[0] in single:
                continue
            for concept, relation in links:
                heads = [f for f in self.entry(concept).forms if " " not in f]
                if relation == "taxonomic" and any(is_compound_of(toks[0], h) for h in heads):
                    single[toks[0]] = concept
                    break
        term_single: dict[str, tuple[tuple[str, str], ...]] = {}
        term_multi: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
        for form, links in self.terms.items():
            toks = words(form)
            if len(toks) == 1 and toks[0] not in single:
                term_single[toks[0]] = links
            elif len(toks) > 1 and toks not in multi:
                term_multi[toks] = links
        return term_single, term_multi

    def _taxonomy_blockers(self) -> None:
        """`generic` (taxonomy nodes above most of the category, "animal", "tree": they explain no relation)
        and `blockers` (those, broad classes, and everything above a broad class)."""
        counts: dict[str, int] = {}
        for c in self.concepts.values():
            for node in c.ancestors:
                counts[node] = counts.get(node, 0) + 1
        floor = GENERIC_SHARE * len(self.concepts)
        generic = frozenset(n for n, k in counts.items() if k >= floor)
        object.__setattr__(self, "generic", generic)
        blockers = set(generic)
        for cname, broad in self.classes.items():
            if broad and cname in self:
                c = self.entry(cname)
                blockers.add(c.synset)
                blockers.update(c.ancestors)
        object.__setattr__(self, "blockers", frozenset(blockers))

    def fuzzy_candidates(self, word: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Forms (and their concepts) a misspelled `word` could stand for, before edit-distance scoring:
        those that start with its first letter or with a letter of the same sound ("jiraffe": giraffe)."""
        forms, owners = self.fuzzy_buckets.get((word[0], len(word)), ((), ()))
        for alt in SAME_SOUND.get(word[0], ""):
            more = self.fuzzy_buckets.get((alt, len(word)))
            if more:
                forms, owners = forms + more[0], owners + more[1]
        return forms, owners

    def names(self) -> list[tuple[str, str]]:
        """(concept, name) for every name of every curated concept: what probability mode scores.

        The open vocabulary is not here (see `vocabulary`): its cost would grow with every WordNet noun.
        """
        return [(c.name, alias) for c in self.concepts.values() for alias in c.aliases]

    def __len__(self) -> int:
        return len(self.concepts)

    def __contains__(self, name: object) -> bool:
        """True for a curated concept or an open-vocabulary entry name."""
        return name in self.concepts or name in self.vocabulary

    def entry(self, name: str) -> Concept:
        """A curated concept or an open-vocabulary entry, by canonical name."""
        c = self.concepts.get(name)
        return c if c is not None else self.vocabulary[name]

    def plural(self, name: str) -> str:
        """The plural a person writes of a canonical name: an irregular one the vocabulary knows ("wolves",
        "geese"), else the rule's. The one home for teacher prompts and `sublim neighbours` alike."""
        regular = plural_forms(name)
        head = name.split(" ")[:-1]
        entry = self.entry(name)
        irregular = [
            f
            for f in entry.forms
            if f not in entry.aliases and f not in regular and f.split(" ")[:-1] == head
            if not self.is_latin(name, f)
        ]
        return irregular[0] if irregular else sorted(regular)[0]

    def resolve(self, name: str) -> str:
        """Canonical name for a user-given name, alias, plural or Latin name ("Wolves" -> "wolf",
        "owlets" -> "owlet", "Quercus robur" -> "english oak"): a curated concept or an open-vocabulary
        entry, either accepted by `match()` as a target."""
        key = " ".join(words(name))
        if key in self:
            return key
        toks = words(name)
        if len(toks) == 1:
            hit = self.single.get(toks[0]) or self.weak_single.get(toks[0])
        else:
            hit = self.multi.get(toks) or self.weak_multi.get(toks)
        if hit is None:
            hit = self.joined.get("".join(toks))
        if hit is None:
            raise UnknownConceptError(name, self.name, self._all_names())
        return hit

    def _all_names(self) -> list[str]:
        return [*(a for c in self.concepts.values() for a in c.aliases), *self.vocabulary]

    def is_kind(self, concept: str, target: str, surface: str) -> bool:
        """True when `concept`, named as `surface`, is a kind of `target` whose head noun is the target
        ("snowy owl", "bald eagle", "bulldog"), by the taxonomy and the words actually used."""
        c, t = self.entry(concept), self.entry(target)
        if not t.synset or t.synset not in c.ancestors:
            return False
        names = self._target_words(target)
        if _head_names(surface, names):
            return True
        # a Latin name ("tyto alba") is read as the kind's common names ("barn owl"): the same animal
        if not self.is_latin(concept, surface):
            return False
        return any(_head_names(a, names) for a in c.aliases if not self.is_latin(concept, a))

    def is_latin(self, concept: str, surface: str) -> bool:
        """True when `surface` is a Latin name of `concept`: a genus ("tyto") or a binomial ("tyto alba")."""
        genera = {t.split(".")[0].replace("_", " ") for t in self.entry(concept).taxa}
        return surface.split(" ")[0] in genera

    def in_class(self, concept: str, target: str) -> bool:
        """True when `target` is a class word ("bird", "feline") and `concept` is a kind of it ("owl")."""
        if target not in self.classes:
            return False
        t = self.entry(target)
        return bool(t.synset) and t.synset in self.entry(concept).ancestors

    def _target_words(self, target: str) -> set[str]:
        return {f for f in self.entry(target).forms if " " not in f}

    def shared_taxon(self, a: str, b: str) -> tuple[float, str | None]:
        """Similarity by the narrowest genus or family two concepts share, and its name: `GENUS_SIMILARITY`
        for a genus (crow/raven: Corvus), `FAMILY_SIMILARITY` for a family (oak/chestnut: beech family);
        (0.0, None) when they share neither. Compared with the same threshold as Wu-Palmer similarity."""
        common = set(self.entry(a).taxa) & set(self.entry(b).taxa)
        best: tuple[float, str | None] = (0.0, None)
        for t in sorted(common):
            name, rank = self.taxon_names.get(t, (t.split(".")[0], "family"))
            score = GENUS_SIMILARITY if rank == "genus" else FAMILY_SIMILARITY
            if score > best[0]:
                best = (score, name)
        return best

    def sex_age(self, a: str, b: str) -> str | None:
        """The species when one concept is a young or sex name of the other ("kitten"/cat -> "domestic
        cat"; "cat"/kitten too; "calf"/cow -> "cattle"): the other is that species, a kind of it, or an
        ancestor of it. None otherwise."""
        for young, other in ((a, b), (b, a)):
            o = self.entry(other)
            for species in self.entry(young).kin:
                if species == other:
                    return species
                if species in self:
                    s = self.entry(species)
                    if o.synset in s.ancestors or s.synset in o.ancestors:
                        return species
        return None

    def taxonomic(self, a: str, b: str) -> tuple[float, str | None]:
        """Wu-Palmer similarity of two concepts and their lowest common ancestor's name.

        0.0 when that ancestor is generic for this category (a node above most of its concepts), a broad
        class word, or above one: every tree shares "tree" and every bird "bird", so sharing it relates
        nothing (owl/parrot); a narrower group does (owl/hawk: bird of prey).
        """
        ca, cb = self.entry(a), self.entry(b)
        lcs: list[str] = []
        for pa in ca.paths:
            for pb in cb.paths:
                common = [x for x, y in zip(pa, pb, strict=False) if x == y]
                if len(common) > len(lcs):
                    lcs = common
        if not lcs or lcs[-1] in self.blockers:
            return 0.0, None
        return wu_palmer(ca.paths, cb.paths), lcs[-1].split(".")[0].replace("_", " ")

    def lexical(
        self, surface: str, target: str, min_stem: int, min_share: float, concept: str | None = None
    ) -> tuple[float, str | None]:
        """Shared stem or head word between the words an answer used and the target's names
        ("wolverine"/"wolf", "sea lion"/"lion", "seahorse"/"horse"), as a tokenizer would see them.

        A stem is a name, or a plural's stem where the name changes its last letter ("wolv" of "wolves"):
        "wolverine" begins with the stem of "wolves", while "beaver" shares only "bea" with "bear".
        `concept`, the concept the answer's words name, lends its plural's stem to the answer's side.
        Score: the share of the shorter name (or stem) covered by the common prefix, or 1.0 for a shared
        head word.
        """
        best, via = 0.0, None
        x = surface
        names = self.entry(target).aliases
        answer = [(x, False), *((st, True) for st in (self.plural_stems(concept) if concept else ()))]
        ours = [*((y, False) for y in names), *((st, True) for st in self.plural_stems(target))]
        for ax, x_stem in answer:
            for ay, y_stem in ours:
                if x_stem and y_stem:
                    continue
                sx, sy = ax.replace(" ", ""), ay.replace(" ", "")
                shorter = min(len(sx), len(sy))
                if shorter < min_stem:
                    continue
                n = 0
                for cx, cy in zip(sx, sy, strict=False):
                    if cx != cy:
                        break
                    n += 1
                # a shared stem, not a whole word inside another one: "bee" is no stem of "beef", "mosquito"
                # none of "mosquito hawk"; a whole name counts only before a diminutive or sex suffix
                # ("lioness"); a plural's stem is no word ("wolv"), so any ending may follow it
                inside = n == shorter and (sx if len(sx) > len(sy) else sy)[n:] not in STEM_SUFFIXES
                whole_stem = (x_stem and n == len(sx)) or (y_stem and n == len(sy))
                share = n / shorter
                if (whole_stem or not inside) and n >= min_stem and share >= min_share and share > best:
                    best, via = share, sx[:n]
        # a shared head word ("sea lion(s)"/"lion") or a compound of the other ("seahorse"/"horse"), read from
        # the target's own name: an alias may be a misnomer ("koala bear" is no bear)
        for whole, other in ((x, target), (target, x)):
            shared = " " in whole and whole.split(" ")[-1] in {other, *plural_forms(other)}
            if best < 1.0 and len(other) >= min_stem and (shared or is_compound_of(whole, other)):
                best, via = 1.0, other
        return best, via

    def plural_stems(self, name: str) -> tuple[str, ...]:
        """Stems of a name's plurals that are not the name: "wolves" -> "wolv" (f to v before "-es")."""
        return self.entry(name).plural_stems


def _head_names(surface: str, names: set[str]) -> bool:
    """`surface`'s head noun is one of `names` ("snowy owl", "bulldog"), or it is a binomial on one
    ("pinus sylvestris")."""
    toks = surface.split(" ")
    if len(toks) == 2 and toks[0] in names and toks[0] != toks[1]:
        return True
    return any(toks[-1] == w or is_compound_of(toks[-1], w) for w in names)


def build_concept(
    name: str,
    aliases: Iterable[str] = (),
    plurals: Iterable[str] | None = None,
    paths: Iterable[Sequence[str]] = (),
    synset: str = "",
    gloss: str = "",
) -> Concept:
    """A Concept with generated plural forms (unless `plurals` is given)."""
    alias_list = list(dict.fromkeys([name, *aliases]))
    forms: list[str] = []
    for alias in alias_list:
        forms.append(alias)
        if plurals is None:
            forms.extend(sorted(plural_forms(alias)))
    forms.extend(plurals or ())
    return Concept(
        name=name,
        aliases=tuple(alias_list),
        forms=tuple(dict.fromkeys(forms)),
        paths=tuple(tuple(p) for p in paths),
        synset=synset,
        gloss=gloss,
    )
