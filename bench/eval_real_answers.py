"""The matcher on real SmolLM2 answers labelled by hand (tests/data/real_answers.tsv), vs naive substring.

    python bench/eval_real_answers.py --split dev      # what thresholds and rules were tuned on
    python bench/eval_real_answers.py --split heldout  # reported once: docs/results/matching-real-answers.md

Per category: hit accuracy (names the target, exact or fuzzy, or not), related recall (rows labelled related
that the matcher calls related), none-specificity (rows labelled none that it calls none), false positives
(calls a hit where the label is not one), level accuracy, raises; and `extract` against the hand list of
what each answer names (precision/recall over distinct answers; a name counts when both resolve to the same
concept; a second pair of figures also counts a kind and its head concept as one, "great white shark" for
shark). The naive test is the field's usual `target in answer.lower()`.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_matching import cpu_name

from sublim import extract, match
from sublim.concepts import get_category
from sublim.errors import SublimError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "real_answers.tsv"
HITS = ("exact", "fuzzy")


def load(split: str) -> list[dict[str, str]]:
    lines = [line for line in DATA.open(encoding="utf-8") if not line.startswith("#")]
    return [r for r in csv.DictReader(lines, delimiter="\t") if split in ("all", r["split"])]


def share(num: int, den: int) -> str:
    return f"{num / den:.3f} ({num}/{den})" if den else "-"


def levels(rows: list[dict[str, str]]) -> tuple[list[str], int, list[str]]:
    out, raises, wrong = [], 0, []
    for r in rows:
        try:
            level = match(r["answer"], r["target"], r["category"]).level
        except SublimError:
            level, raises = "raise", raises + 1
        out.append(level)
        if level != r["level"]:
            wrong.append(f"{r['id']} {r['target']}: labelled {r['level']}, got {level}: {r['answer'][:90]!r}")
    return out, raises, wrong


def scores(rows: list[dict[str, str]], predict: Callable[[int], str]) -> dict[str, str]:
    hit = sum((predict(i) in HITS) == (r["level"] in HITS) for i, r in enumerate(rows))
    rel = [i for i, r in enumerate(rows) if r["level"] == "related"]
    none = [i for i, r in enumerate(rows) if r["level"] == "none"]
    fp = sum(predict(i) in HITS and r["level"] not in HITS for i, r in enumerate(rows))
    neg = sum(r["level"] not in HITS for r in rows)
    return {
        "hit accuracy": share(hit, len(rows)),
        "related recall": share(sum(predict(i) == "related" for i in rel), len(rel)),
        "none-specificity": share(sum(predict(i) == "none" for i in none), len(none)),
        "false positives": f"{fp} of {neg}",
        "level accuracy": share(sum(predict(i) == r["level"] for i, r in enumerate(rows)), len(rows)),
    }


def _naive(row: dict[str, str]) -> str:
    return "exact" if row["target"] in row["answer"].lower() else "none"


def canonical(name: str, category: str) -> str:
    try:
        return get_category(category).resolve(name)
    except SublimError:
        return name


def same(a: str, b: str, category: str, lenient: bool) -> bool:
    """Strict: the same concept. Lenient: or one is a kind of the other ("great white shark"/shark)."""
    if a == b or not lenient:
        return a == b
    cat = get_category(category)
    if a not in cat or b not in cat:
        return False
    ea, eb = cat.entry(a), cat.entry(b)
    return ea.synset in eb.ancestors or eb.synset in ea.ancestors


def extraction(rows: list[dict[str, str]], lenient: bool = False) -> tuple[str, str]:
    """Precision and recall of `extract` against the hand list, over distinct answers."""
    seen: dict[str, dict[str, str]] = {r["id"]: r for r in rows}
    right = found = hit = wanted = 0
    for r in seen.values():
        c = r["category"]
        gold = {canonical(n, c) for n in r["names"].split(";") if n}
        got = {m.concept for m in extract(r["answer"], c)}
        right += sum(any(same(g, x, c, lenient) for g in gold) for x in got)
        hit += sum(any(same(g, x, c, lenient) for x in got) for g in gold)
        found += len(got)
        wanted += len(gold)
    return share(right, found), share(hit, wanted)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    parser.add_argument("--errors", action="store_true", help="list every row the matcher gets wrong")
    args = parser.parse_args()
    rows_all = load(args.split)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"split: {args.split} ({len(rows_all)} rows, {len({r['id'] for r in rows_all})} answers)")
    print()
    keys = ["hit accuracy", "related recall", "none-specificity", "false positives", "level accuracy"]
    head = " | ".join(keys)
    print(
        f"| category | method | {head} | raises | extract precision | extract recall | same, kinds as one |"
    )
    print("|---|---|" + "---:|" * (len(keys) + 4))
    errors: list[str] = []
    for category in ("animal", "tree", "both"):
        rows = [r for r in rows_all if category in ("both", r["category"])]
        got, raises, wrong = levels(rows)
        errors += wrong if category != "both" else []
        ours = scores(rows, lambda i, got=got: got[i])  # type: ignore[misc]
        naive = scores(rows, lambda i, rows=rows: _naive(rows[i]))  # type: ignore[misc]
        precision, recall = extraction(rows)
        lenient = "<br>".join(extraction(rows, lenient=True))
        cells = " | ".join(ours[k] for k in keys)
        print(f"| {category} | sublim | {cells} | {raises} | {precision} | {recall} | {lenient} |")
        cells = " | ".join(naive[k] for k in keys)
        print(f"| {category} | naive substring | {cells} | 0 | - | - | - |")
    if args.errors:
        print()
        print("Rows where the matcher's level differs from the label:")
        print()
        for e in errors:
            print(f"- {e}")


if __name__ == "__main__":
    main()
