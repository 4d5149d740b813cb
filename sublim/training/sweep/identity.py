"""Run identity and resume: the inputs every run shares, each run's id, and the output dir's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.io import (
    check_output,
    file_sha256,
    identity_hash,
    package_versions,
)
from sublim.models import compute_dtype
from sublim.training.config import TrainConfig
from sublim.training.student import data_file
from sublim.training.sweep.config import SweepConfig, check_inputs, lora_scale
from sublim.training.sweep.plan import Run, _key, _rows_text, make_draws, plan, train_seed

_PER_RUN = ("data", "out", "rank", "seed", "full", "merge", "target_modules", "alpha", "rslora")


_SCORING = ("base", "target", "category", "questions", "sublim", "score")


def check(cfg: SweepConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Settings, inputs and the output dir checked (nothing written); returns the shared identity."""
    check_inputs(cfg)
    shared = sweep_identity(cfg)
    inputs = [cfg.data, cfg.control, cfg.base if Path(cfg.base).expanduser().exists() else None]
    if _earlier_sweep(cfg) and not (resume or overwrite):
        raise SublimError(
            f"--out {cfg.out} holds a sweep from an earlier sublim, with no record of its inputs: pass "
            "--resume to keep its rows and train the runs under new ids, or --overwrite to replace it"
        )
    earlier = _earlier_sweep(cfg)
    check_output(
        cfg.out, "sweep", shared, inputs, overwrite=overwrite, accept_other=resume, adopt=resume and earlier,
        earlier=earlier,
    )  # fmt: skip
    return shared


def _earlier_sweep(cfg: SweepConfig) -> bool:
    """A sweep dir an earlier sublim wrote: results.csv with sweep columns but no input record."""
    from sublim.io import STAMP

    out = Path(cfg.out)
    try:
        header = (out / "results.csv").open().readline()
    except OSError:
        return False
    return not (out / STAMP).exists() and header.startswith("run,dataset,kind,")


def sweep_identity(cfg: SweepConfig) -> dict[str, Any]:
    """The inputs every run of the sweep shares (ranks, seeds and contexts may change between re-runs)."""
    from sublim.concepts import get_category

    settings = TrainConfig(data=cfg.data, **cfg.train).resolved()
    return {
        "data_sha256": file_sha256(data_file(cfg.data)),
        "control_sha256": file_sha256(data_file(cfg.control)) if cfg.control else None,
        "base": cfg.base,
        "target": get_category(cfg.category).resolve(cfg.target),
        "category": cfg.category,
        "questions": cfg.questions,
        "score": cfg.score,
        "sublim": package_versions("sublim")["sublim"],
        **{k: v for k, v in settings.items() if k not in _PER_RUN},
        # None: derived per run (lr by LoRA or full), which the run's kind pins down; alpha by its scale rule
        "lr": cfg.train.get("lr"),
        "dtype": compute_dtype(cfg.device),  # bf16 on CUDA: rows of other precisions never mix
    }


def run_ids(cfg: SweepConfig, shared: dict[str, Any]) -> dict[Run, str]:
    """Each run's id: its name and a hash of everything its result depends on (for a student: the exact
    rows of its draw, its rank, scale rule and seed; for a reference: what it scores)."""
    import hashlib

    from sublim.models import checkpoint_fingerprint

    common = {k: v for k, v in shared.items() if k not in ("data_sha256", "control_sha256")}
    draws, _ = make_draws(cfg)
    sha = {key: hashlib.sha256(_rows_text(rows).encode()).hexdigest() for key, rows in draws.items()}
    out = {}
    for run in plan(cfg):
        ident: dict[str, Any] = {**common, "kind": run.kind}
        if run.kind in ("lora", "full"):
            ident.update(data_sha256=sha[_key(run)], rank=run.rank, seed=train_seed(run))
            if run.kind == "lora":
                ident.update(lora_scale(run.scale, run.rank or 0))
        else:  # references are scored, not trained
            ident = {k: v for k, v in ident.items() if k in _SCORING or k == "kind"}
            if run.dataset == "positive":
                ident["positive"] = checkpoint_fingerprint(str(cfg.positive))
        out[run] = f"{run.name}-{identity_hash(ident, 8)}"
    return out
