"""Test-wide offline rules: no hub downloads, and every cache/log dir in a temp dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

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
        "SUBLIM_CACHE": str(_TMP / "sublim-cache"),
    }
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP
