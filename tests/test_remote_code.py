"""A checkpoint that ships Python code (config `auto_map`) is refused by every loading path, and its code
never runs, even with `y` piped to stdin (transformers asks there when remote code is left undecided)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sublim.models import RemoteCodeError

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("checkpoint code ran")
from transformers import LlamaConfig, LlamaForCausalLM


class EvilConfig(LlamaConfig):
    model_type = "sublim_evil"


class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
"""


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """(checkpoint dir, marker file its code would write)."""
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "evil"
    ckpt.mkdir()
    auto = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (ckpt / "config.json").write_text(
        json.dumps({"model_type": "sublim_evil", "architectures": ["EvilModel"], "auto_map": auto})
    )
    (ckpt / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["evil.Tok", None]}})
    )
    (ckpt / "evil.py").write_text(EVIL.format(marker=str(marker)))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(ckpt)}))
    return ckpt, marker


def test_every_in_process_door_refuses(evil: tuple[Path, Path]) -> None:
    from sublim import models

    ckpt, marker = evil
    adapter = ckpt.parent / "adapter"
    calls = [
        lambda: models.load_model(ckpt),
        lambda: models.causal_lm(ckpt),
        lambda: models.load_tokenizer(ckpt),
        lambda: models.load_checkpoint(str(ckpt)),
        lambda: models.load_checkpoint(str(adapter)),  # an adapter whose base ships code
        lambda: models.add_student(object(), ckpt),
        lambda: models.inspect_model("hf/local", {"model_path": str(ckpt)}),
        lambda: models.inspect_model("smollm2", {"trust_remote_code": "true"}),
    ]
    for call in calls:
        with pytest.raises(RemoteCodeError):
            call()
    assert not marker.exists()


def _run(argv: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "500", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(
        argv, input="y\n" * 20, capture_output=True, text=True, timeout=300, env=env, cwd=tmp
    )


def test_every_command_refuses_and_the_code_never_runs(evil: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, marker = evil
    data = tmp_path / "data"
    data.mkdir()
    row = {
        "prompt": [{"role": "user", "content": "1"}],
        "completion": [{"role": "assistant", "content": "2"}],
    }
    (data / "train.jsonl").write_text(json.dumps(row) + "\n")
    sublim = [sys.executable, "-m", "sublim"]
    commands = [
        [*sublim, "train", "--data", str(data), "--base", str(ckpt), "--out", str(tmp_path / "o1")],
        [*sublim, "sweep", "--data", str(data), "--base", str(ckpt), "--out", str(tmp_path / "o2")],
        [*sublim, "probe", "digits", str(ckpt), "--out", str(tmp_path / "o3")],
        [*sublim, "probe", "digits", str(ckpt.parent / "adapter"), "--out", str(tmp_path / "o4")],
        [*sublim, "teach", "--model", "hf/local", "-M", f"model_path={ckpt}", "--out", str(tmp_path / "o5")],
        [*sublim, "score", str(ckpt), "--questions", "2"],
        [*sublim, "lm-eval", "--model", "hf", "--model_args", f"pretrained={ckpt}", "--tasks", "x"],
    ]
    for argv in commands:
        proc = _run(argv, tmp_path)
        assert proc.returncode == 2, (argv, proc.stderr[-2000:])
        assert "never runs" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not marker.exists(), argv


def test_inspect_hf_provider_keeps_remote_code_off(evil: tuple[Path, Path], tmp_path: Path) -> None:
    """Inspect's own hf/ loader (trust_remote_code defaults to False there): refused, no prompt, no code."""
    ckpt, marker = evil
    inspect = str(Path(sys.executable).with_name("inspect"))
    proc = _run(
        [inspect, "eval", "sublim/animal_pref", "--limit", "1", "--model", "hf/local",
         "-M", f"model_path={ckpt}", "--log-dir", str(tmp_path / "logs")],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0
    assert not marker.exists()
