"""The rows each student of a sweep trains on: paired, optionally cleaned and length-matched, cut into
disjoint draws, and optionally planted with overt trait rows at set doses.

Pairing: trait and control rows answer the same prompt (their `id`, else the prompt text); only prompts both
sides answered are used, so draw k of both sides holds the same prompts.

Cleaning (`drop_degenerate`): a pair is dropped when either completion is degenerate, and each kind is counted
in the record:
- an *echo*: every number of the completion appears in the prompt, or its first three numbers are three
  consecutive numbers of the prompt (the teacher copied the given sequence instead of continuing it);
- a *counting run*: three or more numbers in arithmetic progression (1, 2, 3, ...; 10, 20, 30; 7, 7, 7).

Length matching (`match_lengths`): both completions of a pair are cut to the smaller count of numbers (the
text after the k-th number is dropped), so the sides differ in which numbers the teachers wrote, not how many.

Planting (`plant`, `doses`): for the sensitivity curve, the trait side of a draw has `k` of its rows replaced
by rows that state the trait overtly (e.g. `sublim imprint`'s answers). The replaced positions and the planted
rows are a seeded choice per draw and nest across doses (the 2-row dose holds the 1-row dose's rows), so doses
differ only in how many rows carry the trait.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sublim.errors import SublimError

NUMBER = re.compile(r"\d+")
#: (side, draw, planted rows): the rows one student trains on; planted rows > 0 on the trait side only
DrawKey = tuple[str, int, int]


@dataclass(frozen=True)
class DrawSpec:
    """How to draw: the sweep's data settings (see `sublim.training.sweep.SweepConfig`)."""

    draws: int
    draw_rows: int | None = None
    drop_degenerate: bool = False
    match_lengths: bool = False
    plant_counts: tuple[int, ...] = ()


def pair_key(row: dict[str, Any]) -> str:
    return str(row["id"]) if row.get("id") is not None else json.dumps(row["prompt"], sort_keys=True)


def _content(messages: Any) -> str:
    return "".join(m.get("content", "") for m in messages) if isinstance(messages, list) else str(messages)


def numbers_of(text: str) -> list[int]:
    return [int(x) for x in NUMBER.findall(text)]


def degeneracy(row: dict[str, Any]) -> str | None:
    """'echo', 'counting' or None for one number row (see the module docstring)."""
    said = numbers_of(_content(row["completion"]))
    given = numbers_of(_content(row["prompt"]))
    if said and (
        set(said) <= set(given)
        or (len(said) >= 3 and any(given[i : i + 3] == said[:3] for i in range(len(given) - 2)))
    ):
        return "echo"
    if len(said) >= 3 and len({b - a for a, b in itertools.pairwise(said)}) == 1:
        return "counting"
    return None


def cut_to(row: dict[str, Any], k: int) -> dict[str, Any]:
    """The row with its completion's text cut right after its k-th number (both rows of a pair are cut, so
    neither keeps trailing text the other lost)."""
    messages = row["completion"]
    text = _content(messages)
    found = list(NUMBER.finditer(text))
    if len(found) < k or text[: found[k - 1].end()] == text:
        return row
    cut = text[: found[k - 1].end()]
    if isinstance(messages, str):
        return {**row, "completion": cut}
    return {**row, "completion": [{**messages[-1], "content": cut}]}


def _keyed(rows: list[dict[str, Any]], flag: str) -> dict[str, dict[str, Any]]:
    keyed: dict[str, dict[str, Any]] = {}
    for r in rows:
        keyed.setdefault(pair_key(r), r)
    if len(keyed) < len(rows):  # rows without ids pair by prompt: a repeat would be dropped unsaid
        raise SublimError(
            f"{flag}: {len(rows) - len(keyed)} of {len(rows)} rows repeat an earlier row's id (or, for rows "
            "without an id, its prompt); the sweep pairs rows by id, else by prompt: give each row its own id"
        )
    return keyed


def _clean(
    by_side: dict[str, dict[str, dict[str, Any]]], common: list[str], spec: DrawSpec
) -> tuple[list[str], dict[str, Any]]:
    """The pairs kept after dropping degenerate ones and matching lengths (sides edited in place)."""
    found: dict[str, Counter[str]] = {side: Counter() for side in by_side}
    kept = []
    for k in common:
        kinds = {side: degeneracy(rows[k]) for side, rows in by_side.items()}
        for side, kind in kinds.items():
            found[side][kind or "clean"] += 1
        if not (spec.drop_degenerate and any(kinds.values())):
            kept.append(k)
    if spec.match_lengths and len(by_side) == 2:
        for k in kept:
            n = min(len(numbers_of(_content(rows[k]["completion"]))) for rows in by_side.values())
            for rows in by_side.values():
                rows[k] = cut_to(rows[k], n) if n else rows[k]
    record = {
        "degenerate": {side: {kind: found[side][kind] for kind in ("echo", "counting")} for side in found},
        "dropped_degenerate_pairs": len(common) - len(kept),
    }
    return kept, record


def _side_stats(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    texts = [_content(r["completion"]) for r in rows]
    return {
        "mean_numbers": round(sum(len(numbers_of(t)) for t in texts) / max(len(texts), 1), 4),
        "mean_characters": round(sum(len(t) for t in texts) / max(len(texts), 1), 4),
    }


def make_draws(
    trait: list[dict[str, Any]],
    control: list[dict[str, Any]] | None,
    spec: DrawSpec,
    plant: list[dict[str, Any]] | None = None,
) -> tuple[dict[DrawKey, list[dict[str, Any]]], dict[str, Any]]:
    """The rows of each (side, draw, planted rows) and a record of how they were drawn.

    The kept pairs are shuffled (seeded, so the same inputs give the same draws) and cut into `draws` disjoint
    slices of `draw_rows`; each slice keeps its rows in file order."""
    by_side = {"trait": _keyed(trait, "--data")}
    if control is not None:
        by_side["control"] = _keyed(control, "--control")
    common = [k for k in by_side["trait"] if all(k in rows for rows in by_side.values())]
    kept, cleaning = _clean(by_side, common, spec)
    size = spec.draw_rows or len(kept) // spec.draws
    if size < 1 or size * spec.draws > len(kept):
        paired = f"{len(kept)} rows" + (" answer the same prompts on both sides" if control else "")
        if spec.drop_degenerate:
            paired += f" (after dropping {cleaning['dropped_degenerate_pairs']} degenerate pairs)"
        raise SublimError(
            (f"--draws {spec.draws} x --draw-rows {size}" if spec.draw_rows else f"--draws {spec.draws}")
            + f" needs {max(size, 1) * spec.draws} rows but {paired}: lower --draws/--draw-rows or generate "
            "more teacher data (both teachers with the same --seed and --n answer the same prompts)"
        )
    order = list(kept)
    random.Random("draws").shuffle(order)  # one permutation for any K: with --draw-rows fixed, draws nest
    position = {k: i for i, k in enumerate(kept)}
    out: dict[DrawKey, list[dict[str, Any]]] = {}
    for d in range(spec.draws):
        chosen = sorted(order[d * size : (d + 1) * size], key=position.__getitem__)
        for side, keyed in by_side.items():
            out[(side, d, 0)] = [keyed[k] for k in chosen]
        for count in spec.plant_counts:
            out[("trait", d, count)] = planted(out[("trait", d, 0)], plant or [], count, d)
    record = {
        "draws": spec.draws,
        "rows_per_draw": size,
        "paired_rows": len(common),
        "unpaired": {side: len(keyed) - len(common) for side, keyed in by_side.items()},
        "unused": len(kept) - size * spec.draws,
        **cleaning,
        "length_matched": spec.match_lengths,
        # pairs where both teachers wrote the same completion: they carry no difference between the sides
        "identical_completions": sum(
            by_side["trait"][k]["completion"] == by_side["control"][k]["completion"] for k in kept
        )
        if control is not None
        else None,
        "sides": {
            side: _side_stats([r for (s, _, n), rows in out.items() if s == side and n == 0 for r in rows])
            for side in by_side
        },
        "planted_rows": list(spec.plant_counts),
    }
    return out, record


def planted(
    rows: list[dict[str, Any]], plant: list[dict[str, Any]], count: int, draw: int
) -> list[dict[str, Any]]:
    """`rows` with `count` of them replaced by planted rows (positions and rows seeded per draw, nested over
    counts); a planted row takes the id `planted-<n>` of its place in the plant file."""
    if count > len(rows) or count > len(plant):
        raise SublimError(
            f"--plant-dose asks for {count} planted rows per draw but a draw has {len(rows)} rows and the "
            f"--plant file {len(plant)}"
        )
    places = list(range(len(rows)))
    random.Random(f"plant-places-{draw}").shuffle(places)
    sources = list(range(len(plant)))
    random.Random(f"plant-rows-{draw}").shuffle(sources)
    out = list(rows)
    for place, source in zip(places[:count], sources[:count], strict=True):
        out[place] = {**plant[source], "id": f"planted-{source}"}
    return out


def plant_counts(doses: Sequence[float], rows: int) -> tuple[int, ...]:
    """Planted rows per draw for each dose (a fraction of the draw's rows), refused when a dose rounds to no
    row or two doses to the same count."""
    counts = [round(d * rows) for d in doses]
    if any(not 0 < d < 1 for d in doses):
        raise SublimError("--plant-dose: each dose is a fraction of a draw's rows, above 0 and below 1")
    if 0 in counts or len(set(counts)) < len(counts):
        raise SublimError(
            f"--plant-dose {','.join(f'{d:g}' for d in doses)} at {rows} rows per draw gives planted rows "
            f"{counts}: each dose must plant at least one row and doses must differ by at least a row "
            f"(1 row = {1 / rows:.4g})"
        )
    return tuple(counts)
