"""Regenerate sublim's shipped concept data from WordNet 3.0.

    python scripts/build_concepts.py            # writes sublim/concepts/data/*
    make data                                   # the same, inside the project venv

WordNet comes from Debian's `wordnet-base` package (fetched with `apt-get download` when
`$NLTK_DATA/corpora/wordnet` is missing) and is read with nltk. Debian lacks the `lexnames` file nltk
needs; it is rebuilt from the lexnames(5WN) manual page in the same package. Runtime never needs WordNet:
everything the matcher uses is written to JSON/text files under sublim/concepts/data/.

What is derived, per category (seed names in scripts/seeds/<category>.txt):
- the WordNet sense of each seed (animal senses for `animal`, tree senses for `tree`), its synonyms as
  aliases (only those whose most frequent noun sense is this one, so "killer" does not become orca),
  singular and plural surface forms (irregular plurals from WordNet's noun.exc);
- every hypernym path (for Wu-Palmer similarity at run time: taxonomic relatedness);
- related terms that are not concepts themselves: part/substance meronyms ("acorn" is part of oak),
  foods/substances whose gloss names the concept ("honey" -> bee: product), animals/plants whose gloss names
  it ("kitten" -> cat: semantic) and kinds of a concept that are not concepts ("spaniel" -> dog: taxonomic);
- one shared English lexicon (every single-word WordNet lemma, irregular inflections and closed-class
  words): the guard that keeps fuzzy matching from turning real words ("bowl") into concepts ("owl");
- the one-word foods (`food_words.txt`) and each category's edible concepts (`edible`): "cherry pie" names a
  dish, not the cherry tree;
- the open vocabulary (`<category>.vocab.json.gz`): every WordNet noun under the category's root (animal.n.01;
  woody_plant.n.01) with its common names, plurals, Latin binomials and genus names; its place in the
  hypernym graph; its genus and family (member holonyms, or "genus X" in its gloss); for young and sex names
  ("kitten", "hen", "owlet") the species they name; and the category's class words
  (scripts/seeds/<category>.classes.txt) and answer/target-only overrides
  (scripts/seeds/<category>.vocab.txt).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sublim.concepts.category import wu_palmer
from sublim.concepts.lexicon import plural_forms
from sublim.normalize import words

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "scripts" / "seeds"
OUT = ROOT / "sublim" / "concepts" / "data"
DEFAULT_NLTK_DATA = ROOT / ".cache" / "nltk_data"

# Closed-class English words (determiners, pronouns, prepositions, conjunctions, auxiliaries). WordNet only
# covers open-class words, so without these "that" or "with" would look like possible misspellings.
_FUNCTION_WORDS_TEXT = """
a about above across after against all almost along also although am among an and another any anybody
anyone anything are around as at be because been before behind being below beneath beside besides between
beyond both but by can cannot could did do does doing done down during each either else enough even ever
every everybody everyone everything few for from had has have having he her hers herself him himself his
how however i if in inside into is it its itself just least less like many me might mine more most much
must my myself neither no nobody none nor not nothing of off often on once one only onto or other others
our ours ourselves out outside over own per perhaps quite rather really same she should since so some
somebody someone something sometimes still such than that the their theirs them themselves then there
these they this those though through throughout thus till to together too toward towards under underneath
unless until up upon us very was we were what whatever when whenever where whereas wherever whether which
while who whoever whom whose why will with within without would yet you your yours yourself yourselves
i'm i've i'd i'll don't doesn't didn't can't won't isn't aren't wasn't weren't it's that's there's what's
let's they're we're you're im ive dont doesnt didnt cant wont isnt arent wasnt werent thats theres whats
hello hi hey okay ok yes yeah nope sure thanks thank please oh wow hmm um uh favorite favourite
"""
FUNCTION_WORDS = _FUNCTION_WORDS_TEXT.split()

#: Glosses of young and sex names: "young domestic cat", "adult female chicken", "a larval frog or toad".
SEX_AGE_GLOSS = re.compile(
    r"^(?:a |an |the )?(?:young|baby|newborn|adult|mature|female|male|uncastrated|castrated|immature|larval"
    r"|sexually mature|fully grown)\b"
)
#: Hypernyms that say "young" or "male" but name no species: climbed through, never a species.
SEX_AGE_NODES = {
    "young.n.01",
    "young_mammal.n.01",
    "young_bird.n.01",
    "female.n.01",
    "male.n.01",
    "larva.n.01",
}

CATEGORY_SENSE = {
    # category -> (WordNet lexicographer file of its senses, synset every concept must descend from)
    "animal": ("noun.animal", "animal.n.01"),
    "tree": ("noun.plant", "woody_plant.n.01"),  # trees, and the shrubs people call trees
}
#: Hypernym links WordNet 3.0 gets wrong, moved before anything is read: (wrong parent, right parent). The
#: cypress family's trees (juniper, sequoia and redwoods, bald cypress, ...) hang under cypress.n.01, "wood of
#: any of various cypress trees", so they were no trees and no conifers (cypress/redwood shared nothing;
#: "juniper" took a desert broom's sense). They move under conifer.n.01, not under the tree cypress.n.02,
#: which is the genus Cupressus: each keeps its own genus and family (sequoia: Cupressaceae).
HYPERNYM_FIXES = (("cypress.n.01", "conifer.n.01"),)
# Gloss-linked terms: the lexicographer file of the term decides how it relates to the concept it names.
GLOSS_RELATION = {
    "noun.food": "product",
    "noun.substance": "product",
    "noun.body": "part",
    "noun.plant": "semantic",
    "noun.animal": "semantic",
}


def fix_hypernyms(wn: Any) -> None:
    """Apply `HYPERNYM_FIXES` to nltk's in-memory WordNet: every hyponym of the wrong parent becomes a hyponym
    of the right one (nltk caches synsets, so every later read sees the fix)."""
    for wrong_name, right_name in HYPERNYM_FIXES:
        wrong, right = wn.synset(wrong_name), wn.synset(right_name)
        for child in wrong.hyponyms():
            up = child._pointers["@"]
            up.discard(("n", wrong.offset()))
            up.add(("n", right.offset()))
            wrong._pointers["~"].discard(("n", child.offset()))
            right._pointers["~"].add(("n", child.offset()))
        assert not wrong.hyponyms() and all(right in c.hypernyms() for c in right.hyponyms())


def ensure_wordnet(nltk_data: Path) -> None:
    """Lay out WordNet 3.0 from Debian's packages under nltk_data/corpora/wordnet (once)."""
    target = nltk_data / "corpora" / "wordnet"
    if (target / "data.noun").exists() and (target / "lexnames").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print("fetching WordNet 3.0 from Debian (wordnet-base, wordnet-sense-index) ...", file=sys.stderr)
        subprocess.run(["apt-get", "download", "wordnet-base", "wordnet-sense-index"], cwd=tmp, check=True)
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        dict_dir = Path(tmp) / "x" / "usr" / "share" / "wordnet"
        for f in dict_dir.iterdir():
            shutil.copy(f, target / f.name)
        man = Path(tmp) / "x" / "usr" / "share" / "man" / "man5" / "lexnames.5WN.gz"
        pos_code = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
        lines = []
        with gzip.open(man, "rt", encoding="utf-8", errors="replace") as fh:
            manpage = fh.read().splitlines()
        for line in manpage:
            m = re.match(r"^(\d\d)\t\s*(\S+)", line)
            if m:
                name = m.group(2)
                lines.append(f"{m.group(1)}\t{name}\t{pos_code[name.split('.')[0]]}\n")
        if len(lines) != 45:
            raise SystemExit(f"expected 45 lexnames in {man}, found {len(lines)}")
        (target / "lexnames").write_text("".join(lines))
        shutil.copy(
            Path(tmp) / "x" / "usr" / "share" / "doc" / "wordnet-base" / "copyright", target / "COPYRIGHT"
        )


def lemma_text(name: str) -> str:
    return name.replace("_", " ").lower()


def noun_plurals(alias: str, proper: set[str], irregular: dict[str, set[str]]) -> set[str]:
    """Plural forms of an alias; none for Latin binomials, the head word of "X of Y" phrases."""
    if alias in proper:
        return set()
    head, sep, rest = alias.partition(" of ")
    if sep:
        return {f"{p} of {rest}" for p in plural_forms(head, irregular)}
    return plural_forms(alias, irregular)


def parse_seeds(path: Path) -> list[tuple[str, str | None, list[str]]]:
    seeds = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        main, _, extra = line.partition("|")
        parts = main.split("@")
        name = parts[0].strip().lower()
        synset = parts[1].strip() if len(parts) > 1 else None
        aliases = [a.strip().lower() for a in extra.split(",") if a.strip()]
        seeds.append((name, synset, aliases))
    return seeds


def build_category(wn: Any, category: str, irregular: dict[str, set[str]]) -> dict[str, Any]:
    lexname, root_name = CATEGORY_SENSE[category]
    root = wn.synset(root_name)

    def fits(ss: Any) -> bool:
        return bool(ss.lexname() == lexname and any(root in p for p in ss.hypernym_paths()))

    concepts: dict[str, dict[str, Any]] = {}
    by_synset: dict[str, str] = {}
    owner: dict[str, str] = {}  # surface form -> concept
    problems: list[str] = []
    proper: dict[str, set[str]] = {}  # capitalized multi-word lemmas (Latin names): no plural forms
    for name, forced, extra in parse_seeds(SEEDS / f"{category}.txt"):
        key = name.replace(" ", "_")
        if forced:
            ss = wn.synset(forced)
        else:
            cands = [s for s in wn.synsets(key + "_tree", "n") + wn.synsets(key, "n") if fits(s)]
            cands.sort(key=lambda s: not any(wn.synset("tree.n.01") in p for p in s.hypernym_paths()))
            if not cands:
                problems.append(f"{category}: no WordNet sense for seed {name!r}")
                continue
            first = [s for s in cands if lemma_text(s.lemmas()[0].name()) == name]
            ss = (first or cands)[0]
        if ss.name() in by_synset:  # another seed already took this sense: it becomes an alias
            concepts[by_synset[ss.name()]]["aliases"].append(name)
            continue
        aliases = [name]
        for lemma in ss.lemmas():
            text = lemma_text(lemma.name())
            if lemma.name()[0].isupper() and "_" in lemma.name():
                proper.setdefault(name, set()).add(text)
            senses = wn.synsets(lemma.name(), "n")
            if text != name and senses and senses[0] == ss and re.fullmatch(r"[a-z][a-z' -]*", text):
                aliases.append(text)
        aliases.extend(extra)
        if category == "tree" and " " not in name and not name.endswith("tree"):
            aliases.append(f"{name} tree")
        by_synset[ss.name()] = name
        concepts[name] = {
            "synset": ss.name(),
            "gloss": ss.definition(),
            "aliases": aliases,
            # sorted: nltk's order of a synset's paths varies from run to run
            "paths": sorted([s.name() for s in p] for p in ss.hypernym_paths()),
            "see": [],
        }
    # surface forms: seed names and their listed aliases first, then WordNet synonyms, first come first
    # served; conflicts are reported, not silently merged
    given = {name: {name, *extra} for name, _, extra in parse_seeds(SEEDS / f"{category}.txt")}
    ordered = [(n, a) for n, c in concepts.items() for a in c["aliases"] if a in given.get(n, ())]
    ordered += [(n, a) for n, c in concepts.items() for a in c["aliases"] if a not in given.get(n, ())]
    formlists: dict[str, list[str]] = {n: [] for n in concepts}
    for name, alias in ordered:
        for f in sorted({alias} | noun_plurals(alias, proper.get(name, set()), irregular)):
            if owner.setdefault(f, name) != name:
                problems.append(f"{category}: form {f!r} of {name!r} already names {owner[f]!r}")
            elif f not in formlists[name]:
                formlists[name].append(f)
    for name, c in concepts.items():
        c["forms"] = formlists[name]
        c["aliases"] = [a for a in dict.fromkeys(c["aliases"]) if a in c["forms"]]
    # concepts whose gloss names another concept ("kitten: young domestic cat"): semantic neighbours
    form_re = forms_regex(owner)
    for name, c in concepts.items():
        named = {owner[m.group(1)] for m in form_re.finditer(c["gloss"].lower())} - {name}
        c["see"] = sorted(named)
    terms = derive_terms(wn, category, concepts, owner, irregular)
    # kinds below a concept are open-vocabulary entries now (with their own taxonomy): no kind terms
    # (a term that links nothing stays: "lemonade" keeps "lemon" from being read alone)
    terms = {t: links for t, links in terms.items() if not links or any(r != "taxonomic" for _, r in links)}
    terms = {t: [[c, r] for c, r in links if r != "taxonomic"] for t, links in terms.items()}
    for p in problems:
        print("note:", p, file=sys.stderr)
    # concepts that are also a food ("tuna", "cherry", "walnut"): before a food word they make a dish
    edible = [
        name
        for name, c in concepts.items()
        if any(s.lexname() == "noun.food" for f in c["forms"] for s in wn.synsets(f.replace(" ", "_"), "n"))
    ]
    return {
        "category": category,
        "source": "WordNet 3.0 (Princeton University), via scripts/build_concepts.py",
        "license": "WordNet 3.0 license: see WORDNET_LICENSE beside this file",
        "concepts": concepts,
        "terms": terms,
        "edible": edible,
    }


def forms_regex(owner: dict[str, str]) -> re.Pattern[str]:
    """One regex over all concept forms: finds every gloss that names a concept."""
    return re.compile(r"\b(" + "|".join(sorted(map(re.escape, owner), key=len, reverse=True)) + r")\b")


def derive_terms(
    wn: Any,
    category: str,
    concepts: dict[str, dict[str, Any]],
    owner: dict[str, str],
    irregular: dict[str, set[str]],
) -> dict[str, list[list[str]]]:
    """Words that are not concepts but point at one: term -> [[concept, relation], ...]."""
    synset_to_concept = {c["synset"]: name for name, c in concepts.items()}
    terms: dict[str, dict[str, str]] = {}

    def add(ss: Any, concept: str, relation: str) -> None:
        for lemma in ss.lemmas():
            text = lemma_text(lemma.name())
            senses = wn.synsets(lemma.name(), "n")
            if (
                not senses
                or senses[0] != ss
                or lemma.name() != lemma.name().lower()  # Latin and proper names
                or not re.fullmatch(r"[a-z][a-z' -]*", text)
                or text in owner
                or text.split(" ")[-1] in owner  # "barn owl": the head noun already names the concept
            ):
                continue
            # a food or substance named with the concept's own word names it, not a relative: "lemonade",
            # "apple pie", "cowhide" link nothing (they still keep "lemon" from being read alone)
            own = relation == "product" and any(
                re.search(rf"\b{re.escape(f)}", text) for f, c in owner.items() if c == concept
            )
            for form in {text} | plural_forms(text, irregular):
                if form not in owner:
                    links = terms.setdefault(form, {})
                    if not own:
                        links.setdefault(concept, relation)

    for name, c in concepts.items():
        ss = wn.synset(c["synset"])
        for part in ss.part_meronyms():
            add(part, name, "part")
        for substance in ss.substance_meronyms():
            add(substance, name, "product")
    form_re = forms_regex(owner)
    lexname = CATEGORY_SENSE[category][0]
    for ss in wn.all_synsets("n"):
        if ss.name() in synset_to_concept:
            continue
        kinds = {
            synset_to_concept[h.name()]
            for p in ss.hypernym_paths()
            for h in p
            if h.name() in synset_to_concept
        }
        if ss.lexname() == lexname and kinds:
            # nearest concept ancestor: the one deepest in the path
            nearest = max(kinds, key=lambda k: len(concepts[k]["paths"][0]))
            add(ss, nearest, "taxonomic")
            continue
        relation = GLOSS_RELATION.get(ss.lexname())
        if relation is None:
            continue
        named = {owner[m.group(1)] for m in form_re.finditer(ss.definition().lower())}
        for concept in named:
            add(ss, concept, relation)
    return {t: [[c, r] for c, r in sorted(links.items())] for t, links in sorted(terms.items())}


def uses(synsets: list[Any], name: str, *, noun: bool) -> int:
    """How often WordNet's tagged corpus uses `name` in these senses (as a noun, or as anything else)."""
    senses = [s for s in synsets if (s.pos() == "n") == noun]
    return sum(lm.count() for s in senses for lm in s.lemmas() if lm.name().lower() == name)


def build_food_words(wn: Any, irregular: dict[str, set[str]]) -> list[str]:
    """One-word foods that are no animal or plant in any sense ("pie", "juice", "syrup"), mostly used as
    nouns, no verb form, body part or function word: after the name of an edible concept they make a dish
    of it ("cherry pie", "tuna salad"), which names the dish, not the concept."""
    out: set[str] = set()
    for ss in wn.all_synsets("n"):
        if ss.lexname() != "noun.food":
            continue
        for lemma in ss.lemmas():
            name = lemma.name()
            if not re.fullmatch(r"[a-z]+", name):
                continue
            nouns = wn.synsets(name, "n")
            if {s.lexname() for s in nouns} & {"noun.animal", "noun.plant"}:
                continue
            if uses(wn.synsets(name), name, noun=False) > uses(nouns, name, noun=True):
                continue  # more often a verb or adjective: "the eagle spread its wings", "dip", "punch"
            if wn.morphy(name, "v") not in (None, name) or name in FUNCTION_WORDS:
                continue  # an inflected verb ("the owl eats mice", "bears forage"), "must"
            if nouns[0].lexname() == "noun.body":
                continue  # a body part first: "the giraffe's tongue", "the chicken's legs"
            out.add(name)
            # a plural that is also a verb form ("juices") is left out; "pies" is kept
            out.update(p for p in plural_forms(name, irregular) if wn.morphy(p, "v") is None)
    return sorted(out)


def build_lexicon(wn: Any) -> list[str]:
    """Every single-word lemma that is a common word in at least one sense: a name that WordNet only ever
    writes capitalized ("Sequoya", a person) is no word a typo could be, so "sequoya" may be a misspelling."""
    common: set[str] = set()
    for ss in wn.all_synsets():
        for lemma in ss.lemmas():
            name = lemma.name()
            if re.fullmatch(r"[A-Za-z]+", name) and not name[0].isupper():
                common.add(name.lower())
    words = set(common)
    for pos in "nvar":
        words.update(w for w in wn._exception_map[pos] if re.fullmatch(r"[a-z]+", w))
    words.update(FUNCTION_WORDS)
    return sorted(words)


def parse_classes(path: Path) -> list[tuple[str, str, bool]]:
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, rest = line.partition("@")
            synset, *flags = rest.split()
            out.append((name.strip().lower(), synset, "broad" in flags))
    return out


def parse_overrides(path: Path) -> dict[str, set[str]]:
    """[answer] / [target-only] word lists of scripts/seeds/<category>.vocab.txt ("black_cat": two words)."""
    out: dict[str, set[str]] = {"answer": set(), "target-only": set()}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and section in out:
            out[section].update(w.replace("_", " ") for w in line.lower().split())
    return out


def _is_rank(wn: Any, ss: Any, rank: str) -> bool:
    top = wn.synset(rank)
    return any(top in p for p in ss.hypernym_paths())


def norm(form: str) -> str:
    """A form as the matcher reads it ("christ's-thorn" and "christ thorn" are one key)."""
    return " ".join(words(form))


def build_vocabulary(
    wn: Any, category: str, data: dict[str, Any], irregular: dict[str, set[str]]
) -> dict[str, Any]:
    """The open vocabulary of a category: every noun under its root (see the module docstring)."""
    _, root_name = CATEGORY_SENSE[category]
    root = wn.synset(root_name)
    members = set(root.closure(lambda s: s.hyponyms())) | {root}
    overrides = parse_overrides(SEEDS / f"{category}.vocab.txt")
    classes = parse_classes(SEEDS / f"{category}.classes.txt")
    concepts = data["concepts"]
    curated = {c["synset"]: name for name, c in concepts.items()}
    owner: dict[str, str] = {norm(f): n for n, c in concepts.items() for f in c["forms"]}

    # the hypernym graph of every member and its ancestors
    nodes: dict[str, list[str]] = {}
    for ss in sorted(members, key=lambda s: s.name()):
        for path in ss.hypernym_paths():
            for n in path:
                nodes.setdefault(n.name(), sorted(h.name() for h in n.hypernyms()))

    # genera and families: member holonyms, and "genus X" named in a gloss
    genus_top, family_top = "genus.n.02", "family.n.06"
    genus_by_name: dict[str, Any] = {}
    for ss in wn.all_synsets("n"):
        if ss.lexname() in ("noun.animal", "noun.plant") and _is_rank(wn, ss, genus_top):
            for lemma in ss.lemma_names():
                genus_by_name.setdefault(lemma.lower().removeprefix("genus_"), ss)
    own_taxa: dict[Any, set[Any]] = {}
    for ss in members:
        taxa = {h for h in ss.member_holonyms() if _is_rank(wn, h, genus_top) or _is_rank(wn, h, family_top)}
        for m in re.finditer(r"\bgenus ([A-Z][a-z]+)", ss.definition()):
            g = genus_by_name.get(m.group(1).lower())
            if g is not None:
                taxa.add(g)
        for g in list(taxa):
            taxa.update(h for h in g.member_holonyms() if _is_rank(wn, h, family_top))
        own_taxa[ss] = taxa

    def taxa_of(ss: Any, seen: frozenset[Any] = frozenset()) -> set[Any]:
        out = set(own_taxa.get(ss, ()))
        for h in ss.hypernyms():
            if h in members and h is not root and h not in seen:
                out |= taxa_of(h, seen | {ss})
        return out

    def taxon_name(t: Any) -> str:
        english = [n for n in t.lemma_names() if n.islower()]
        return lemma_text(english[0]) if english else lemma_text(t.lemma_names()[0])

    # who owns each lemma: its first WordNet sense inside the category
    def owning(lemma_name: str) -> Any:
        return next((s for s in wn.synsets(lemma_name, "n") if s in members), None)

    genus_names = set(genus_by_name)
    class_synsets = {s for _, s, _ in classes}
    entries: dict[str, dict[str, Any]] = {}
    names: dict[Any, str] = {wn.synset(s): n for s, n in curated.items()}
    weak: dict[str, str] = {}
    ordered = sorted(members, key=lambda s: (s.name().split(".")[0], s.name()))
    for ss in ordered:
        forms: list[str] = []
        weak_forms: list[str] = []
        for lemma in ss.lemmas():
            raw = lemma.name()
            text = lemma_text(raw)
            if not re.fullmatch(r"[a-z][a-z' .-]*", text) or owning(raw) != ss:
                continue
            first = raw.split("_")[0]
            binomial = first[:1].isupper() and "_" in raw and first.lower() in genus_names
            variants = [text] if binomial else [text, *sorted(noun_plurals(text, set(), irregular))]
            senses = wn.synsets(raw, "n")
            as_noun = sum(lm.count() for lm in ss.lemmas() if lm.name() == raw)
            as_other = sum(
                lm.count()
                for s in wn.synsets(raw)
                if s.pos() != "n"
                for lm in s.lemmas()
                if lm.name().lower() == raw.lower()
            )
            is_weak = text in overrides["target-only"] or (
                (senses[0] not in members or as_other > as_noun)
                and text not in overrides["answer"]
                and ss.name() not in class_synsets
            )
            for v in variants:
                if owner.get(norm(v), names.get(ss)) == names.get(ss) and norm(v) not in weak:
                    (weak_forms if is_weak else forms).append(v)
        if ss.name() in curated:
            name = curated[ss.name()]
            extra = [f for f in forms if f not in concepts[name]["forms"]]
            concepts[name]["forms"].extend(extra)  # binomials ("quercus robur") name the concept too
            for f in extra:
                owner[norm(f)] = name
            continue
        candidates = [f for f in forms + weak_forms if norm(f) not in owner and norm(f) not in weak]
        if not candidates:
            continue
        name = next((f for f in candidates if f in forms), candidates[0])
        names[ss] = name
        for f in forms:
            owner.setdefault(norm(f), name)
        for f in weak_forms:
            weak.setdefault(norm(f), name)
        entries[name] = {
            "synset": ss.name(),
            "gloss": ss.definition(),
            "forms": [f for f in forms if owner[norm(f)] == name],
            "weak": [f for f in weak_forms if weak[norm(f)] == name],
        }
    # genus names: the genus's most general member (Quercus -> oak); several equal members -> related term
    terms = data["terms"]
    for gname, g in sorted(genus_by_name.items()):
        inside = [m for m in g.member_meronyms() if m in names]
        if not inside or not re.fullmatch(r"[a-z]+", gname) or gname in owner or gname in weak:
            continue
        if wn.synsets(gname, "n")[:1] not in ([g], []):  # "Zeus" is a god before it is a genus of fishes
            continue
        top = [m for m in inside if all(m == o or any(m in p for p in o.hypernym_paths()) for o in inside)]
        # else the one member that is a curated concept, or the one whose gloss names the genus ("oak")
        top = top or [m for m in inside if m.name() in curated]
        top = top or [m for m in inside if re.search(rf"\bgenus {gname}\b", m.definition().lower())]
        top = top if len(top) == 1 else []
        if top:
            target = names[top[0]]
            (concepts[target] if target in concepts else entries[target])["forms"].append(gname)
            owner[gname] = target
        elif gname not in terms:
            terms[gname] = [[names[m], "taxonomic"] for m in sorted(inside, key=lambda s: s.name())]

    # young and sex names: the species they name (by hypernym, else by gloss)

    def species(ss: Any, depth: int = 0) -> set[Any]:
        out: set[Any] = set()
        for h in ss.hypernyms():
            if h not in members or h is root or h.name() in class_synsets:
                continue
            if h.name() in SEX_AGE_NODES or (depth < 2 and SEX_AGE_GLOSS.match(h.definition())):
                out |= species(h, depth + 1)
            elif h in names:
                out.add(h)
        return out

    by_form = {f: n for f, n in owner.items()}
    class_names = {names.get(wn.synset(s)) for _, s, _ in classes}
    class_names |= {names.get(wn.synset(s)) for s in SEX_AGE_NODES}
    kin: dict[str, list[str]] = {}
    for ss, name in names.items():
        if not SEX_AGE_GLOSS.match(ss.definition()):
            continue
        found = {names[s] for s in species(ss)}
        toks = re.findall(r"[a-z]+", ss.definition().lower())
        for k in (3, 2, 1):
            for i in range(len(toks) - k + 1):
                hit = by_form.get(" ".join(toks[i : i + k]))
                if hit is not None and hit not in class_names and hit != name:
                    found.add(hit)
        if found:
            kin[name] = sorted(found)
    for ss, name in names.items():
        rec = concepts[name] if name in concepts else entries[name]
        rec["taxa"] = sorted(t.name() for t in taxa_of(ss))
        rec["kin"] = kin.get(name, [])
    taxon_names = {
        t: [taxon_name(wn.synset(t)), "genus" if _is_rank(wn, wn.synset(t), genus_top) else "family"]
        for rec in [*concepts.values(), *entries.values()]
        for t in rec["taxa"]
    }
    return {
        "category": category,
        "source": "WordNet 3.0 (Princeton University), via scripts/build_concepts.py",
        "root": root.name(),
        "classes": {names[wn.synset(s)]: broad for _, s, broad in classes if wn.synset(s) in names},
        "nodes": dict(sorted(nodes.items())),  # sorted: hypernym path order varies by run
        "taxon_names": taxon_names,
        "entries": {
            n: [e["synset"], e["gloss"], e["forms"], e["weak"], e["taxa"], e["kin"]]
            for n, e in sorted(entries.items())
        },
    }


def check_wup(wn: Any, data: dict[str, Any]) -> None:
    """The runtime's Wu-Palmer (from stored paths) must agree with nltk's on sample pairs."""
    names = list(data["concepts"])[:40]
    worst, pair = 0.0, ("", "")
    for a in names:
        for b in names:
            if a == b:
                continue
            ca, cb = data["concepts"][a], data["concepts"][b]
            ours = wu_palmer(ca["paths"], cb["paths"])
            theirs = wn.synset(ca["synset"]).wup_similarity(wn.synset(cb["synset"]))
            if abs(ours - theirs) > worst:
                worst, pair = abs(ours - theirs), (a, b)
    print(f"wu-palmer check on {len(names)}^2 pairs: max |ours - nltk| = {worst:.4f} {pair}", file=sys.stderr)
    if worst > 0.05:
        raise SystemExit("runtime Wu-Palmer disagrees with nltk")


def build_homoglyphs() -> dict[str, str]:
    """Letters of other scripts -> the ASCII letter they imitate, from Unicode's confusables list (the
    `confusable-homoglyphs` package's copy; build time only). `sublim.normalize.fold` reads a word through
    this table when every letter of it has a Latin look-alike (Cyrillic "\u043ewl" -> "owl")."""
    import unicodedata

    import confusable_homoglyphs

    source = Path(confusable_homoglyphs.__file__).parent / "confusables.json"
    table: dict[str, str] = {}
    for ch, entries in sorted(json.loads(source.read_text(encoding="utf-8")).items()):
        if len(ch) != 1 or ch.isascii() or not unicodedata.category(ch).startswith("L"):
            continue
        latin = [e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii() and e["c"].isalpha()]
        if latin:
            table[ch] = latin[0]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nltk-data", type=Path, default=Path(os.environ.get("NLTK_DATA", DEFAULT_NLTK_DATA))
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--only",
        choices=["all", "wordnet", "homoglyphs"],
        default="all",
        help="regenerate one part: the WordNet data or the homoglyph table",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in ("all", "homoglyphs"):
        table = build_homoglyphs()
        (args.out / "homoglyphs.json").write_text(json.dumps(table, ensure_ascii=False, indent=0) + "\n")
        print(f"homoglyphs: {len(table)} look-alike letters", file=sys.stderr)
    if args.only not in ("all", "wordnet"):
        return
    ensure_wordnet(args.nltk_data)
    os.environ["NLTK_DATA"] = str(args.nltk_data)
    import nltk

    nltk.data.path.insert(0, str(args.nltk_data))
    from nltk.corpus import wordnet as wn

    fix_hypernyms(wn)
    irregular: dict[str, set[str]] = {}
    for plural, singulars in wn._exception_map["n"].items():
        for s in singulars:
            irregular.setdefault(lemma_text(s), set()).add(lemma_text(plural))
    args.out.mkdir(parents=True, exist_ok=True)
    for category in CATEGORY_SENSE:
        data = build_category(wn, category, irregular)
        check_wup(wn, data)
        vocab = build_vocabulary(wn, category, data, irregular)
        (args.out / f"{category}.json").write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        with gzip.GzipFile(args.out / f"{category}.vocab.json.gz", "wb", mtime=0) as fh:
            fh.write(json.dumps(vocab, separators=(",", ":")).encode())
        print(
            f"{category}: {len(data['concepts'])} concepts, {len(data['terms'])} related terms, "
            f"{len(vocab['entries'])} open-vocabulary entries, {len(vocab['nodes'])} taxonomy nodes",
            file=sys.stderr,
        )
    words = build_lexicon(wn)
    with gzip.GzipFile(args.out / "lexicon.txt.gz", "wb", mtime=0) as fh:
        fh.write(("\n".join(words) + "\n").encode())
    print(f"lexicon: {len(words)} words", file=sys.stderr)
    foods = build_food_words(wn, irregular)
    (args.out / "food_words.txt").write_text("\n".join(foods) + "\n")
    print(f"food words: {len(foods)}", file=sys.stderr)
    shutil.copy(args.nltk_data / "corpora" / "wordnet" / "COPYRIGHT", args.out / "WORDNET_LICENSE")


if __name__ == "__main__":
    main()
