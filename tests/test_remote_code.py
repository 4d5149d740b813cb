"""A checkpoint that ships Python code (config `auto_map`) is refused by every loading path, and its code
never runs, even with `y` piped to stdin (transformers asks there when remote code is left undecided)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


@pytest.mark.slow  # a whole CLI run (make test-slow, in CI); every command: the test above
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


# ------------------------------------------------------------------ issue 25: lm-eval's every route


def _clean(tmp_path: Path) -> Path:
    clean = tmp_path / "clean"
    clean.mkdir(exist_ok=True)
    (clean / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return clean


#: every way lm-eval 0.4.13's own parser takes model arguments; {C}: a clean checkpoint (so the refusal comes
#: from the trust flag), {E}: the checkpoint that ships code, {A}: an adapter whose base ships code
LM_EVAL_ROUTES = [
    ["-a", "pretrained={C},trust_remote_code=True"],
    ["--model_args", "dtype=float32", "pretrained={C}", "--trust_remote_code"],
    ["--model_args", '{"pretrained": "{C}", "trust_remote_code": true}'],
    ["--model_args=pretrained={C},trust_remote_code=yes"],
    ["-a", "pretrained={C}", "-a", "trust_remote_code=1"],
    ["--trust_remote_code", "-a", "pretrained={C}"],
    ["--config", "{T}/trust.yaml"],
    ["--config", "{T}/args.yaml"],
    ["--config", "{T}/args.yaml", "-a", "pretrained={E}"],
    ["-a", "pretrained={E}"],
    ["--model_args", '{"pretrained": "{E}"}'],
    ["--model_args", "dtype=float32", "pretrained={E}"],
    ["-a", "pretrained={C},tokenizer={E}"],
    ["-a", "pretrained={C},peft={A}"],
    ["-a", "pretrained={C},delta={E}"],
]


@pytest.mark.parametrize("route", LM_EVAL_ROUTES, ids=[" ".join(r)[:50] for r in LM_EVAL_ROUTES])
@pytest.mark.parametrize("run", [[], ["run"]])
def test_lm_eval_refuses_checkpoint_code_by_every_route(
    route: list[str],
    run: list[str],
    evil: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused in one line before lm-eval starts (lm-eval never launched, so the code cannot run)."""
    import subprocess as sp

    from sublim.cli import main

    ckpt, marker = evil
    clean = _clean(tmp_path)
    (tmp_path / "trust.yaml").write_text(
        f"model: hf\nmodel_args: {{pretrained: {clean}}}\ntrust_remote_code: true\n"
    )
    (tmp_path / "args.yaml").write_text(
        f"model: hf\nmodel_args: 'pretrained={clean},trust_remote_code=True'\n"
    )
    launched: list[Any] = []
    monkeypatch.setattr(sp, "call", lambda *a, **k: launched.append(a) or 0)
    subs = {"{C}": str(clean), "{E}": str(ckpt), "{A}": str(ckpt.parent / "adapter"), "{T}": str(tmp_path)}
    argv = ["lm-eval", *run, "--model", "hf", "--tasks", "sublim_animal_pref_lp"]
    for arg in route:
        for key, value in subs.items():
            arg = arg.replace(key, value)
        argv.append(arg)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "never runs" in err, err
    assert not launched and not marker.exists()


def test_lm_eval_accepts_a_clean_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks pass plain arguments on to lm-eval untouched (and run it under the guard)."""
    import subprocess as sp

    from sublim.cli import main

    clean = _clean(tmp_path)
    launched: list[list[str]] = []
    monkeypatch.setattr(sp, "call", lambda argv, **k: launched.append(argv) or 0)
    args = ["-a", f"pretrained={clean},trust_remote_code=False", "--metadata", '{"target": "owl"}']
    assert main(["lm-eval", "--model", "hf", "--tasks", "sublim_animal_pref_lp", *args]) == 0
    assert launched[0][1:3] == [
        "-c",
        "import sys; from sublim.lmeval import lm_eval_main; sys.exit(lm_eval_main())",
    ]
    assert launched[0][-len(args) :] == args


@pytest.mark.slow
def test_lm_eval_never_runs_checkpoint_code_where_it_builds_the_model(
    evil: tuple[Path, Path], tmp_path: Path
) -> None:
    """End to end, both doors: `sublim lm-eval` with the JSON form (passed the old check), then lm-eval run
    straight under sublim's guard with the arguments in a --config file that the pre-check never sees. Each
    refuses in one line and the checkpoint's code never runs (plain `lm_eval` on the same arguments writes
    the marker: the attack is real)."""
    from sublim.lmeval import lm_eval_include_path

    ckpt, marker = evil
    common = ["--model", "hf", "--tasks", "sublim_animal_pref_lp", "--device", "cpu"]
    args = json.dumps({"pretrained": str(ckpt), "trust_remote_code": True})
    proc = _run([sys.executable, "-m", "sublim", "lm-eval", *common, "--model_args", args], tmp_path)
    assert proc.returncode == 2 and "never runs" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    (tmp_path / "cfg.yaml").write_text(f"model_args: {{pretrained: {ckpt}}}\ntrust_remote_code: true\n")
    guard = "import sys; from sublim.lmeval import lm_eval_main; sys.exit(lm_eval_main())"
    include = ["--include_path", str(lm_eval_include_path())]
    proc = _run(
        [sys.executable, "-c", guard, "run", *include, *common, "--config", str(tmp_path / "cfg.yaml")],
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("sublim: error:") and "never runs" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
