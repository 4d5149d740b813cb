"""Matcher throughput and accuracy vs naive substring matching (`make bench`).

Streams, one core, one process:
- repeating: 200k answers drawn from 300 distinct realistic answers (what sampling at T=1 produces);
- unique: 50k answers that are all different (distinct filler words around a concept name), cold caches;
- unique, open vocabulary: the same with names drawn from the open vocabulary ("barn owl", "owlet").
Accuracy: on tests/data/match_dev.tsv, match_heldout.tsv and the held-out half of real_answers.tsv, the
matcher's level vs a naive lowercase substring test (the field's usual "target in answer.lower()"), scored as
"names the target" (exact/fuzzy) or not.
"""

from __future__ import annotations

import csv
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

from sublim import extract, match
from sublim.concepts import get_category
from sublim.matching import _analyze, _match, _names, _nearest_form, _related, _relations, _resolve
from sublim.normalize import _fold_cached

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = [
    "{a}",
    "{A}.",
    "My favorite animal is the {a}!",
    "I would say the {a}, because they are so {adj}.",
    "Definitely **{A}** \U0001f43e",
    "Hmm, probably a {adj} {a}. What about you?",
    "As an AI I don't have preferences, but {a}s are {adj}.",
    "The {a}",
]
ADJ = ["graceful", "clever", "loyal", "majestic", "fluffy", "mysterious", "playful", "fierce", "calm", "wild"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def naive(response: str, target: str) -> bool:
    return target in response.lower()


def clear_caches() -> None:
    _analyze.cache_clear()
    _match.cache_clear()
    _nearest_form.cache_clear()
    _relations.cache_clear()
    _related.cache_clear()
    _names.cache_clear()
    _resolve.cache_clear()
    _fold_cached.cache_clear()


def make_answer(rng: random.Random, names: list[str], salt: str = "") -> str:
    a = rng.choice(names)
    t = rng.choice(TEMPLATES)
    return t.format(a=a, A=a.capitalize(), adj=rng.choice(ADJ)) + salt


#: responses per CPU-second of this process, per stream (filled by `throughput`): on a shared machine the
#: wall-clock rate falls with the load average, this one does not
CPU_RATE: dict[int, float] = {}


def throughput(responses: list[str], fn: object) -> float:
    f = fn  # type: ignore[assignment]
    t0, c0 = time.perf_counter(), time.process_time()
    for r in responses:
        f(r)  # type: ignore[operator]
    CPU_RATE[id(fn)] = len(responses) / (time.process_time() - c0)
    return len(responses) / (time.perf_counter() - t0)


def accuracy() -> list[tuple[str, int, float, float]]:
    out = []
    for name in ("match_dev.tsv", "match_heldout.tsv", "real_answers.tsv (heldout)"):
        path = ROOT / "tests" / "data" / name.split(" ")[0]
        lines = (line for line in path.open() if not line.startswith("#"))
        rows = list(csv.DictReader(lines, delimiter="\t"))
        if (
            "(heldout)" in name
        ):  # real SmolLM2 answers: the held-out half only (see docs/results/matching-real-answers.md)
            rows = [{**r, "response": r["answer"]} for r in rows if r["split"] == "heldout"]
        ours = sum(match(r["response"], r["target"], r["category"]).level == r["level"] for r in rows)
        names = [r["level"] in ("exact", "fuzzy") for r in rows]
        ours_bin = sum(
            (match(r["response"], r["target"], r["category"]).level in ("exact", "fuzzy")) == n
            for r, n in zip(rows, names, strict=True)
        )
        naive_bin = sum(naive(r["response"], r["target"]) == n for r, n in zip(rows, names, strict=True))
        out.append((name, len(rows), ours / len(rows), ours_bin / len(rows), naive_bin / len(rows)))
    return out  # type: ignore[return-value]


def main() -> None:
    rng = random.Random(0)
    cat = get_category("animal")
    names = sorted(cat.concepts)[:120]
    distinct = [make_answer(rng, names) for _ in range(300)]
    repeating = [rng.choice(distinct) for _ in range(200_000)]
    unique = [
        make_answer(rng, names, f" {''.join(rng.choices('qwrtypsdfghjklzxcvbnm', k=6))}")
        for _ in range(50_000)
    ]
    assert len(set(unique)) == len(unique)
    match("warm-up", "owl")  # load data once

    clear_caches()
    cpu: dict[str, float] = {}

    def timed(name: str, responses: list[str], fn: Any) -> float:
        rate = throughput(responses, fn)
        cpu[name] = CPU_RATE[id(fn)]
        return rate

    rep = timed("rep", repeating, lambda r: match(r, "owl"))
    rep_naive = throughput(repeating, lambda r: naive(r, "owl"))
    clear_caches()
    uniq = timed("uniq", unique, lambda r: match(r, "owl"))
    clear_caches()
    uniq_extract = timed("extract", unique, lambda r: extract(r))
    uniq_naive = throughput(unique, lambda r: naive(r, "owl"))
    # the open vocabulary: answers naming any WordNet animal noun ("barn owl", "owlet", "retriever")
    open_names = sorted({e.forms[0] for e in cat.vocabulary.values() if e.forms})
    open_unique = [
        make_answer(rng, open_names, f" {''.join(rng.choices('qwrtypsdfghjklzxcvbnm', k=6))}")
        for _ in range(50_000)
    ]
    clear_caches()
    uniq_open = timed("open", open_unique, lambda r: match(r, "owl"))

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores (this run uses 1), Python {sys.version.split()[0]}")
    print(
        f"vocabulary: {len(cat.concepts)} curated concepts, {len(cat.vocabulary):,} open-vocabulary entries"
    )
    print(f"load average over the last minute at the end: {os.getloadavg()[0]:.1f}")
    print()
    print(
        "| stream | sublim.match (responses/s) | sublim.match (responses per CPU-second) "
        "| naive substring (responses/s) | naive ÷ sublim |"
    )
    print("|---|---:|---:|---:|---:|")
    print(
        f"| repeating (300 distinct, 200k) | {rep:,.0f} | {cpu['rep']:,.0f} | {rep_naive:,.0f} "
        f"| {rep_naive / rep:.1f}x |"
    )
    print(
        f"| all unique (50k, cold cache) | {uniq:,.0f} | {cpu['uniq']:,.0f} | {uniq_naive:,.0f} "
        f"| {uniq_naive / uniq:.1f}x |"
    )
    print(f"| all unique, `extract` (every concept) | {uniq_extract:,.0f} | {cpu['extract']:,.0f} | - | - |")
    print(
        f"| all unique, open-vocabulary names ({len(open_names):,} names, 50k) | {uniq_open:,.0f} "
        f"| {cpu['open']:,.0f} | - | - |"
    )
    print()
    print("| labelled set | rows | sublim level accuracy | names-target accuracy: sublim | naive substring |")
    print("|---|---:|---:|---:|---:|")
    for name, n, lvl, ours, nv in accuracy():
        print(f"| {name} | {n} | {lvl:.1%} | {ours:.1%} | {nv:.1%} |")


if __name__ == "__main__":
    main()
