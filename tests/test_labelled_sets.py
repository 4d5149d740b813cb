"""The labelled sets: every dev-set row must hold; the held-out set (never tuned on) has an accuracy floor."""

from __future__ import annotations

import csv

import pytest

from sublim import match
from tests.conftest import DATA


def _rows(name: str) -> list[dict[str, str]]:
    lines = [line for line in (DATA / name).open(encoding="utf-8") if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


DEV = _rows("match_dev.tsv")


def test_dev_set_is_large_and_covers_every_level() -> None:
    assert len(DEV) >= 200
    assert {r["level"] for r in DEV} == {"exact", "fuzzy", "related", "none"}


@pytest.mark.parametrize("row", DEV, ids=[f"{r['response'][:30]}->{r['target']}" for r in DEV])
def test_dev_case(row: dict[str, str]) -> None:
    assert match(row["response"], row["target"], row["category"]).level == row["level"]


def test_heldout_accuracy() -> None:
    rows = _rows("match_heldout.tsv")
    correct = sum(match(r["response"], r["target"], r["category"]).level == r["level"] for r in rows)
    assert correct / len(rows) >= 0.95  # measured 63/64 when first scored; see README


PAIRS = _rows("related_pairs.tsv")  # dev set of the related rule: splits dev and dev2 (round 1's held-out)
FRESH = _rows("related_heldout.tsv")  # held out: labelled before round 2's rules, scored once
#: Dev pairs no rule here gets right, kept as labelled (never relabelled to fit): otter/beaver share only
#: "placental"; panda/tiger share "carnivore", the group relating dog/cat in real answers labelled related.
DEV_CONFLICTS = {("otter", "beaver"), ("panda", "tiger")}


def test_sibling_pairs_are_many_and_cover_both_labels() -> None:
    """Issue 22: >= 150 related sibling pairs and >= 150 same-class pairs that are none, in the dev set and
    in the held-out set, whose targets are not the dev set's."""
    for rows in (PAIRS, FRESH):
        assert sum(r["level"] == "related" for r in rows) >= 150
        assert sum(r["level"] == "none" for r in rows) >= 150
    siblings = {r["target"] for r in FRESH if r["kind"] == "sibling"}
    assert not {r["target"] for r in PAIRS} & siblings
    traps = [r for r in FRESH if r["kind"] == "trap"]
    assert len(traps) >= 30 and all(r["target"] in r["response"].lower() for r in traps)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(r, marks=pytest.mark.xfail(strict=True, reason="dev conflict"))
        if (r["response"], r["target"]) in DEV_CONFLICTS
        else r
        for r in PAIRS
    ],
    ids=[f"{r['response']}->{r['target']}" for r in PAIRS],
)
def test_sibling_pair_dev_case(row: dict[str, str]) -> None:
    assert match(row["response"], row["target"], row["category"]).level == row["level"]


def test_sibling_pairs_heldout_floor() -> None:
    """The held-out set, scored once (docs/results/matching-related.md): recall 296/307, specificity 401/409,
    every hit right, 1 of 33 substring traps not none (lemonade/lemon: a product). The floor keeps them."""
    got = {id(r): match(r["response"], r["target"], r["category"]).level for r in FRESH}
    related = [got[id(r)] == "related" for r in FRESH if r["level"] == "related"]
    none = [got[id(r)] != "related" for r in FRESH if r["level"] == "none"]
    hits = [(got[id(r)] in ("exact", "fuzzy")) == (r["level"] in ("exact", "fuzzy")) for r in FRESH]
    traps = [got[id(r)] != "none" for r in FRESH if r["kind"] == "trap"]
    assert sum(related) >= 296 and sum(none) >= 401 and all(hits) and sum(traps) <= 1
