"""What a sweep runs: its runs (`plan`), the draw each student trains on and the seed it trains with."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.training.draws import DrawKey, DrawSpec, plant_counts
from sublim.training.draws import make_draws as draws_of
from sublim.training.student import data_file
from sublim.training.sweep.config import DRAW_SEED, SweepConfig


@dataclass(frozen=True)
class Run:
    name: str
    dataset: str  # "trait" | "control" | "base" | "prompted" | "positive"
    kind: str  # "lora" | "full" | "base" | "reference"
    rank: int | None
    seed: int | None
    scale: str = ""
    draw: int | None = None
    planted: int = 0  # trait rows of the draw replaced by planted rows (the sensitivity curve)


def plan(cfg: SweepConfig) -> list[Run]:
    """References first (base, prompted base, positive control), then control runs, then trait runs, so
    every trait row can carry its references. Names carry the draw (`-d1`) when there are several and the
    scale rule when it is not alpha = rank."""
    runs = [Run("base", "base", "base", None, None)]
    if cfg.prompted:
        runs.append(Run("prompted", "prompted", "base", None, None))
    if cfg.positive:
        runs.append(Run("positive", "positive", "reference", None, None))
    sides = [("control", 0)] if cfg.control else []
    sides += [("trait", n) for n in (0, *planted_counts(cfg))]
    for dataset, n in sides:
        p = f"-p{n}" if n else ""
        for draw in range(cfg.draws):
            d = f"-d{draw}" if cfg.draws > 1 else ""
            for seed in cfg.seeds:
                for scale in cfg.scales:
                    sc = "" if scale == "rank" else f"-{scale}"
                    runs += [
                        Run(f"{dataset}{p}-r{r}{sc}{d}-s{seed}", dataset, "lora", r, seed, scale, draw, n)
                        for r in cfg.ranks
                    ]
                if cfg.full:
                    name = f"{dataset}{p}-full{d}-s{seed}"
                    runs.append(Run(name, dataset, "full", None, seed, "", draw, n))
    return runs


def planted_counts(cfg: SweepConfig) -> tuple[int, ...]:
    """Planted rows per draw of each --plant-dose (needs the draw size: --draw-rows)."""
    if not cfg.plant_doses:
        return ()
    if cfg.draw_rows is None:
        raise SublimError("--plant-dose needs --draw-rows (a dose is a fraction of a draw's rows)")
    return plant_counts(cfg.plant_doses, cfg.draw_rows)


def train_seed(run: Run) -> int:
    return (run.seed or 0) + DRAW_SEED * (run.draw or 0)


_Draws = tuple[dict[DrawKey, list[dict[str, Any]]], dict[str, Any]]
_last_draws: list[tuple[str, _Draws]] = []  # one entry: a sweep's check, identity and run share one drawing


def make_draws(cfg: SweepConfig) -> _Draws:
    """The rows of each (side, draw, planted rows) and a record of how they were drawn
    (`sublim.training.draws.make_draws`). Drawn once per settings and input files (by content), so
    checking, identifying and running a sweep parse and draw its data once; each caller gets its own copy."""
    from sublim.io import file_sha256
    from sublim.training.student import load_rows

    spec = DrawSpec(cfg.draws, cfg.draw_rows, cfg.drop_degenerate, cfg.match_lengths, planted_counts(cfg))
    files = [data_file(f) if f else None for f in (cfg.data, cfg.control, cfg.plant)]
    key = json.dumps([repr(spec), [file_sha256(f) if f else None for f in files]])
    if not (_last_draws and _last_draws[0][0] == key):
        data, control, plant = (load_rows(f) if f else None for f in files)
        assert data is not None
        _last_draws[:] = [(key, draws_of(data, control, spec, plant))]
    return copy.deepcopy(_last_draws[0][1])


def _key(run: Run) -> DrawKey:
    return (run.dataset, run.draw or 0, run.planted)


def draw_file(out: Path, key: DrawKey) -> Path:
    side, d, n = key
    return out / "draws" / (f"{side}-d{d}.jsonl" if not n else f"{side}-d{d}-p{n}.jsonl")


def _rows_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
