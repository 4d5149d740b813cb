"""Test-only start-up hook: Python imports this module in every process whose PYTHONPATH holds tests/hooks.

tests/test_executors.py puts it there, with SUBLIM_TEST_KILL_RUN=<run id>, for the Ray workers a sweep starts:
the student of that run then dies mid-training (half-written weights, no run card), as a worker killed by
the machine would. Nothing in the package knows about it.
"""

from __future__ import annotations

import os

VICTIM = os.environ.get("SUBLIM_TEST_KILL_RUN")

if VICTIM:
    from pathlib import Path
    from typing import Any

    import sublim.training.sweep.run as sweep_run

    _train = sweep_run.train

    def _dies_mid_training(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        out = Path(cfg.out)
        if out.name == VICTIM:
            out.mkdir(parents=True, exist_ok=True)
            (out / "adapter_model.safetensors").write_text("half-written")
            os._exit(1)
        return _train(cfg, *args, **kwargs)

    sweep_run.train = _dies_mid_training  # type: ignore[assignment]
