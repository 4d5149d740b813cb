"""Kill tests: SIGINT or SIGTERM in the middle of `teach`, `train` and `sweep` (tiny model, subprocesses)
prints one line, exits 130 / 143 and leaves resumable state; a re-run with the same arguments then produces
what an uninterrupted run produces (same rows, no duplicates; weights equal up to float noise)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("peft")

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "COLUMNS": "500",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }


def sublim(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "sublim", *args], capture_output=True, text=True, timeout=600, env=_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def interrupted(sig: signal.Signals, ready: Path, delay: float, *args: str) -> None:
    """Start `sublim ARGS`, send `sig` `delay` s after `ready` appears; expect one line and its exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sublim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    deadline = time.time() + 300
    while not ready.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "finished before it could be interrupted: make the run longer"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == CODES[sig], err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert ("interrupted" in lines[-1] or "terminated" in lines[-1]) and "re-run" in lines[-1], err[-2000:]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data")
    rows = [
        {"prompt": [{"role": "user", "content": f"Continue: {i}, {i + 1}"}],
         "completion": [{"role": "assistant", "content": f"{i + 2}, {i + 3}, {i + 4}"}]}
        for i in range(16)
    ]  # fmt: skip
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------------------- teach


def _teach_args(tiny_model: Path, out: Path) -> list[str]:
    # the Inspect path (its log, its cancellation): long enough on the tiny model to be interrupted
    return ["teach", "--engine", "inspect", "--model", "hf/local", "-M", f"model_path={tiny_model}",
            "-M", "device=cpu", "--n", "48", "--max-tokens", "24", "--temperature", "0",
            "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def teach_reference(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teach") / "ref"
    sublim(*_teach_args(tiny_model, out))
    return out


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_teach_interrupted_then_rerun(
    sig: signal.Signals, tiny_model: Path, teach_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "teach"
    interrupted(sig, out / ".sublim-output.json", 2.0, *_teach_args(tiny_model, out))
    assert not (out / "card.json").exists()  # not marked done
    sublim(*_teach_args(tiny_model, out))
    for name in ("train.jsonl", "rejected.jsonl"):
        assert (out / name).read_text() == (teach_reference / name).read_text()
    card, ref = (json.loads((d / "card.json").read_text()) for d in (out, teach_reference))
    assert card["counts"] == ref["counts"] and card["train_sha256"] == ref["train_sha256"]


# ---------------------------------------------------------------------------------------------- train


def _train_args(data: Path, tiny_model: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--base", str(tiny_model), "--out", str(out), "--rank", "2",
            "--epochs", "40", "--batch-size", "4"]  # fmt: skip


@pytest.fixture(scope="module")
def train_reference(data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "ref"
    sublim(*_train_args(data, tiny_model, out))
    return out


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_train_interrupted_then_rerun(
    sig: signal.Signals, data: Path, tiny_model: Path, train_reference: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "train"
    interrupted(sig, out / ".sublim-output.json", 3.0, *_train_args(data, tiny_model, out))
    assert not (out / "run.json").exists() and not list(out.glob(".partial-*"))
    sublim(*_train_args(data, tiny_model, out))
    card, ref = (json.loads((d / "run.json").read_text()) for d in (out, train_reference))
    for key in ("rows", "steps", "data_sha256"):
        assert card[key] == ref[key]
    assert {**card["hyperparameters"], "out": ""} == {**ref["hyperparameters"], "out": ""}
    got, want = (load_file(d / "adapter_model.safetensors") for d in (out, train_reference))
    assert got.keys() == want.keys()
    assert all(torch.allclose(got[k], want[k], atol=1e-5) for k in got)


# ---------------------------------------------------------------------------------------------- sweep


def _sweep_args(data: Path, tiny_model: Path, out: Path) -> list[str]:
    return ["sweep", "--data", str(data), "--base", str(tiny_model), "--out", str(out), "--ranks", "1,2,4",
            "--questions", "3", "--context", "none", "--context", "default", "--epochs", "16",
            "--batch-size", "4"]  # fmt: skip


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sweep_reference(data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "ref"
    sublim(*_sweep_args(data, tiny_model, out))
    return out


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_sweep_interrupted_then_rerun(
    sig: signal.Signals, data: Path, tiny_model: Path, sweep_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    interrupted(sig, out / "results.csv", 0.1, *_sweep_args(data, tiny_model, out))
    partial = _rows(out)
    assert partial and len(partial) < len(_rows(sweep_reference))  # stopped part-way, finished rows kept
    sublim(*_sweep_args(data, tiny_model, out))
    rows, ref = _rows(out), _rows(sweep_reference)
    keys = [(r["run"], r["context"]) for r in rows]
    assert len(keys) == len(set(keys))  # no duplicates
    assert keys == [(r["run"], r["context"]) for r in ref]
    for r, q in zip(rows, ref, strict=True):
        assert abs(float(r["p_target"]) - float(q["p_target"])) < 1e-4


# --------------------------------------------------------------- issue 25: a 50 MB row stays cheap


def test_a_50mb_row_trains_like_a_long_row_and_sigterm_still_stops_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Each message is cut to what --max-length tokens can span before tokenizing: the run finishes (whole, it
    took minutes and 12 GB), and a SIGTERM during the read and tokenizing is honoured at once."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"id": f"r{i}", "prompt": [{"role": "user", "content": f"Continue: {i}"}],
         "completion": [{"role": "assistant", "content": text}]}
        for i, text in enumerate(["1, 2, 3", "7, " * 16_000_000 + "8"])
    ]  # fmt: skip
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    args = [
        "--data",
        str(data),
        "--base",
        str(tiny_model),
        "--rank",
        "2",
        "--epochs",
        "1",
        "--max-length",
        "32",
    ]
    interrupted(signal.SIGTERM, out / ".sublim-output.json", 0.0, "train", *args, "--out", str(out))
    sublim("train", *args, "--out", str(out))
    card = json.loads((out / "run.json").read_text())
    assert card["rows"] == 2 and card["steps"] >= 1
