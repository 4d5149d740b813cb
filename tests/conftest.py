"""Test-wide offline rules: no hub downloads, and every cache/log dir in a temp dir, except the converted
SmolLM2, which lives in the machine's sublim model cache (converted once per machine, ~30 s, shared by test
workers and runs; $SUBLIM_TEST_CACHE overrides where)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from sublim.models import cache_dir

#: the user's sublim cache as the environment gives it (before the overrides below): models converted by
#: `make demo` or `sublim model-path` are reused, and what the tests convert serves them too
MODEL_CACHE = Path(os.environ.get("SUBLIM_TEST_CACHE") or cache_dir())
_TMP = Path(tempfile.mkdtemp(prefix="sublim-tests-"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(_TMP / "hf"),
        "INSPECT_LOG_DIR": str(_TMP / "inspect-logs"),
        "XDG_DATA_HOME": str(_TMP / "xdg-data"),
        "XDG_CACHE_HOME": str(_TMP / "xdg-cache"),
        "SUBLIM_CACHE": str(MODEL_CACHE),  # subprocesses (`sublim teach`) find the same conversion
    }
)

# pytest-xdist workers share the cores: one torch thread pool per core, not per worker. Oversubscribed
# OpenMP threads spin against each other (a SmolLM2 question took 15 s with 2 threads vs 3 s with 1 on a
# busy 2-core machine). Set before anything imports torch; subprocesses inherit it.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if "OMP_NUM_THREADS" not in os.environ and _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


@pytest.fixture(scope="session")
def tiny_model(tmp_root: Path) -> Path:
    """A tiny random Llama (2 layers, hidden 64) with a ChatML BPE tokenizer, built offline."""
    pytest.importorskip("transformers")
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_root / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The embedded SmolLM2-135M-Instruct as a HF checkpoint dir (converted once per machine, verified)."""
    pytest.importorskip("transformers")
    from sublim.models import model_path

    return model_path("smollm2", cache=MODEL_CACHE)
