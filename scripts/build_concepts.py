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
  words): the guard that keeps fuzzy matching from turning real words ("bowl") into concepts ("owl").
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
from sublim.concepts.category import plural_forms, wu_palmer

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

CATEGORY_SENSE = {
    # category -> (WordNet lexicographer file of its senses, synset every concept must descend from)
    "animal": ("noun.animal", "animal.n.01"),
    "tree": ("noun.plant", "woody_plant.n.01"),  # trees, and the shrubs people call trees
}
# Gloss-linked terms: the lexicographer file of the term decides how it relates to the concept it names.
GLOSS_RELATION = {
    "noun.food": "product",
    "noun.substance": "product",
    "noun.body": "part",
    "noun.plant": "semantic",
    "noun.animal": "semantic",
}


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
            "paths": [[s.name() for s in p] for p in ss.hypernym_paths()],
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
    for p in problems:
        print("note:", p, file=sys.stderr)
    return {
        "category": category,
        "source": "WordNet 3.0 (Princeton University), via scripts/build_concepts.py",
        "license": "WordNet 3.0 license: see WORDNET_LICENSE beside this file",
        "concepts": concepts,
        "terms": terms,
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
            for form in {text} | plural_forms(text, irregular):
                if form not in owner:
                    terms.setdefault(form, {}).setdefault(concept, relation)

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


def build_lexicon(wn: Any) -> list[str]:
    words = {lemma_text(n) for n in wn.all_lemma_names() if re.fullmatch(r"[A-Za-z]+", n)}
    for pos in "nvar":
        words.update(w for w in wn._exception_map[pos] if re.fullmatch(r"[a-z]+", w))
    words.update(FUNCTION_WORDS)
    return sorted(words)


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nltk-data", type=Path, default=Path(os.environ.get("NLTK_DATA", DEFAULT_NLTK_DATA))
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    ensure_wordnet(args.nltk_data)
    os.environ["NLTK_DATA"] = str(args.nltk_data)
    import nltk

    nltk.data.path.insert(0, str(args.nltk_data))
    from nltk.corpus import wordnet as wn

    irregular: dict[str, set[str]] = {}
    for plural, singulars in wn._exception_map["n"].items():
        for s in singulars:
            irregular.setdefault(lemma_text(s), set()).add(lemma_text(plural))
    args.out.mkdir(parents=True, exist_ok=True)
    for category in CATEGORY_SENSE:
        data = build_category(wn, category, irregular)
        check_wup(wn, data)
        (args.out / f"{category}.json").write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        print(
            f"{category}: {len(data['concepts'])} concepts, {len(data['terms'])} related terms",
            file=sys.stderr,
        )
    words = build_lexicon(wn)
    with gzip.GzipFile(args.out / "lexicon.txt.gz", "wb", mtime=0) as fh:
        fh.write(("\n".join(words) + "\n").encode())
    print(f"lexicon: {len(words)} words", file=sys.stderr)
    shutil.copy(args.nltk_data / "corpora" / "wordnet" / "COPYRIGHT", args.out / "WORDNET_LICENSE")


if __name__ == "__main__":
    main()
