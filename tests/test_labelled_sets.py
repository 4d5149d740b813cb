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
ROUND2 = _rows("related_heldout.tsv")  # round 2's held-out set, scored once then; dev since round 3
HELDOUT = _rows("related_heldout3.tsv")  # held out: labelled before round 3's rules were scored, scored once
DEV = PAIRS + ROUND2
#: Dev pairs no rule here gets right, kept as labelled (never relabelled to fit): otter/beaver share only
#: "placental"; panda/tiger share "carnivore", the group relating dog/cat in real answers labelled related;
#: WordNet files the peccary beside the swine only under "even-toed ungulate" (broad: it related giraffe/pig)
#: and reads "harrier" as a hound before the hawk; "yellowjacket" is not a name here, since a seed that made
#: it one also made "a yellow jacket" (clothing) an insect.
DEV_CONFLICTS = {
    ("otter", "beaver"),
    ("panda", "tiger"),
    ("peccary", "pig"),
    ("harrier", "hawk"),
    ("yellowjacket", "hornet"),
}


def test_sibling_pairs_are_many_and_cover_both_labels() -> None:
    """Issue 22: >= 150 related sibling pairs and >= 150 same-class pairs that are none, in the dev set and
    in each held-out set, whose sibling targets are not the dev set's."""
    for rows in (PAIRS, ROUND2, HELDOUT):
        assert sum(r["level"] == "related" for r in rows) >= 150
        assert sum(r["level"] == "none" for r in rows) >= 150
    for held, before in ((ROUND2, PAIRS), (HELDOUT, DEV)):
        siblings = {r["target"] for r in held if r["kind"] == "sibling"}
        assert not {r["target"] for r in before} & siblings
        traps = [r for r in held if r["kind"] == "trap"]
        assert len(traps) >= 30 and all(r["target"] in r["response"].lower() for r in traps)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(r, marks=pytest.mark.xfail(strict=True, reason="dev conflict"))
        if (r["response"], r["target"]) in DEV_CONFLICTS
        else r
        for r in DEV
    ],
    ids=[f"{r['response']}->{r['target']}" for r in DEV],
)
def test_sibling_pair_dev_case(row: dict[str, str]) -> None:
    assert match(row["response"], row["target"], row["category"]).level == row["level"]


def test_sibling_pairs_heldout_floor() -> None:
    """Round 3's held-out set, scored once (docs/results/matching-related.md): recall 311/311, specificity
    410/412, hits 761/762, 1 of 77 substring traps not none (seahorse/horse: a shared word, which
    match_dev.tsv labels related). The floor keeps them."""
    got = {id(r): match(r["response"], r["target"], r["category"]).level for r in HELDOUT}
    related = [got[id(r)] == "related" for r in HELDOUT if r["level"] == "related"]
    none = [got[id(r)] != "related" for r in HELDOUT if r["level"] == "none"]
    hits = [(got[id(r)] in ("exact", "fuzzy")) == (r["level"] in ("exact", "fuzzy")) for r in HELDOUT]
    traps = [got[id(r)] != "none" for r in HELDOUT if r["kind"] == "trap"]
    assert sum(related) >= 311 and sum(none) >= 410 and sum(hits) >= 761 and sum(traps) <= 1
