"""results.csv: its columns (`sublim.experiment.StudentResult`'s fields), reading and writing it whole,
which rows are current, and the reference columns (base and control P(target)) filled over all rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sublim.experiment.rows import COLUMNS as ROW_COLUMNS
from sublim.io import atomic_path
from sublim.training.sweep.config import PROMPTED, SweepConfig
from sublim.training.sweep.plan import Run

#: results.csv's columns: the fields of the typed row the sweep writes (`StudentResult.to_csv_row`) and the
#: analysis reads (`StudentResult.from_csv_row`)
COLUMNS = list(ROW_COLUMNS)


def read_results(path: Path) -> list[dict[str, str]]:
    """The sweep's own rows so far, as written, to resume from: they are copied back, not analysed, so they
    stay text (utf-8-sig: a results.csv saved by a spreadsheet starts with a byte-order mark;
    `sublim.experiment.read_results` is the checked, typed reader for analysis)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _contexts(cfg: SweepConfig, run: Run) -> list[str]:
    return [PROMPTED] if run.dataset == "prompted" else cfg.contexts


def _missing(rows: list[dict[str, Any]], run_id: str, contexts: list[str]) -> list[str]:
    """The contexts this run has no row for yet."""
    have = {r["context"] for r in rows if r["run"] == run_id}
    return [c for c in dict.fromkeys(contexts) if c not in have]


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, context): the first (a duplicate can only come from an older sublim)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        if (r["run"], r["context"]) not in seen:
            seen.add((r["run"], r["context"]))
            out.append(r)
    return out


def _current(rows: list[dict[str, Any]], cfg: SweepConfig, ids: dict[Run, str]) -> list[dict[str, Any]]:
    """The rows of this sweep's runs and contexts (results.csv may also hold runs of earlier settings)."""
    wanted = set(ids.values())
    return [r for r in rows if r["run"] in wanted and r["context"] in [*cfg.contexts, PROMPTED]]


def _fill_references(
    rows: list[dict[str, Any]], cfg: SweepConfig, ids: dict[Run, str]
) -> list[dict[str, Any]]:
    """base_p_target and control_p_target of the current rows, from the current base and control runs (a
    context or control added later reaches rows scored earlier)."""
    current = _current(rows, cfg, ids)
    by_id = {v: k for k, v in ids.items()}
    for r in current:
        run = by_id[r["run"]]
        r["base_p_target"] = _reference(current, "base", None, r["context"])
        if run.dataset == "trait":
            r["control_p_target"] = _reference(current, "control", run, r["context"])
    return rows


def _reference(rows: list[dict[str, Any]], dataset: str, run: Run | None, context: str) -> str:
    """P(target) of the `dataset` row in `context`: the base's, or the control run of `run`'s configuration,
    draw and seed."""
    for r in rows:
        if r["dataset"] != dataset or r["context"] != context:
            continue
        if run is None:
            return str(r["p_target"])
        mine = (run.kind, str(run.rank or ""), run.scale, str(run.draw if run.draw is not None else ""))
        theirs = (r["kind"], str(r["rank"]), str(r.get("scale") or ""), str(r.get("draw", "")))
        if mine == theirs and str(r["seed"]) == str(run.seed):
            return str(r["p_target"])
    return ""
