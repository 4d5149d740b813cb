"""Hostile inputs across every command and task family: each is refused with exit 2 (Inspect: its own
one-line error), one line of output and no traceback, before any model loads, and no file that existed
before changes. Models are replaced by a guard that fails the test if anything tries to load one."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sublim.cli import main
from sublim.errors import SublimError
from sublim.io import LOCK, claim_output

ROW = {
    "prompt": [{"role": "user", "content": "1, 2, 3"}],
    "completion": [{"role": "assistant", "content": "4"}],
}


class ModelLoaded(BaseException):
    """Raised by the guard: a BaseException, so no `except Exception` in sublim can swallow it."""


def _guard(*args: Any, **kwargs: Any) -> Any:
    raise ModelLoaded("a model load was attempted before the inputs were checked")


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import sublim.models
    import sublim.training.teacher

    for name in ("causal_lm", "load_tokenizer", "load_model", "model_path", "_convert_gguf", "add_adapter"):
        monkeypatch.setattr(sublim.models, name, _guard)
    monkeypatch.setattr(sublim.training.teacher, "inspect_model", _guard)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder of inputs: teacher data, a model-shaped dir, damaged and hostile checkpoints."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(json.dumps(ROW) + "\n")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "not a list"}\n')
    (tmp_path / "empty.jsonl").write_text("")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "readme.txt").write_text("hello")
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(
        json.dumps({"model_type": "evil", "auto_map": {"AutoModelForCausalLM": "evil.EvilModel"}})
    )
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text(json.dumps({"model_type": "llama"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (corrupt / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 7)
    badjson = tmp_path / "badjson"
    badjson.mkdir()
    (badjson / "config.json").write_text("{not json")
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tmp_path / "gone")})
    )
    (tmp_path / "afile").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("the user's own file")
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def refused(
    capsys: pytest.CaptureFixture[str],
    root: Path,
    argv: list[str],
    match: str,
    code: int = 2,
    started: bool = False,
) -> str:
    """Run the CLI in-process; assert exit code, one line naming the problem, nothing changed (and, unless the
    run had `started`, nothing created)."""
    before = snapshot(root)
    try:
        rc = main([a.replace("{W}", str(root)) for a in argv])
    except SystemExit as e:  # argparse
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert rc == code, (rc, out, err)
    assert len(lines) == 1, lines
    assert "Traceback" not in out + err
    assert match in lines[0], lines[0]
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    assert started or after == before  # refused before anything was written
    return lines[0]


CASES: list[tuple[list[str], str]] = [
    # argparse
    (["train", "--rank", "x"], "invalid int value"),
    (["teach", "--n", "abc"], "invalid int value"),
    (["probe", "digits"], "required: model"),
    (["sweep", "--epochs", "abc"], "invalid float value"),
    (["bogus"], "invalid choice"),
    (["model-path", "bogus"], "invalid choice"),
    # teach
    (["teach", "--system-prompt", "You love {foo}", "--out", "{W}/t"], "not {foo}"),
    (["teach", "--system-prompt", "You love {", "--out", "{W}/t"], "valid template"),
    (["teach", "--ban", "abc", "--out", "{W}/t"], "--ban 'abc'"),
    (["teach", "--temperature", "-1", "--out", "{W}/t"], "--temperature -1.0"),
    (["teach", "--n", "0", "--out", "{W}/t"], "--n 0"),
    (["teach", "--trait", " ", "--out", "{W}/t"], "--trait ''"),
    (["teach", "--max-tokens", "0", "--out", "{W}/t"], "--max-tokens 0"),
    (["teach", "--model", "hf/local", "-M", "model_path={W}/nope", "--out", "{W}/t"], "no such file"),
    (["teach", "--model", "hf/local", "-M", "model_path={W}/remote", "--out", "{W}/t"], "never runs"),
    (
        [
            "teach",
            "--model",
            "hf/local",
            "-M",
            "model_path={W}/model",
            "-M",
            "trust_remote_code=true",
            "--out",
            "{W}/t",
        ],
        "never runs",
    ),
    (["teach", "-M", "novalue", "--out", "{W}/t"], "expected key=value"),
    (["teach", "--out", "{W}/full"], "sublim did not write"),
    (["teach", "--out", "{W}/afile"], "is a file"),
    (["teach", "--out", "/proc/sublim-cannot-write/x"], "cannot create"),
    (["teach", "--out", "{W}/afile/sub"], "cannot create"),
    (["teach", "--model", "hf/local", "-M", "model_path={W}/model", "--out", "{W}/model"], "overlaps"),
    # train
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--rank", "0"], "--rank 0"),
    (
        ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--batch-size", "0"],
        "--batch-size",
    ),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--epochs", "0"], "untrained"),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--lr", "-1"], "--lr"),
    (
        ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--dropout", "1.5"],
        "--dropout",
    ),
    (
        ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--targets", "foo bar"],
        "module",
    ),
    (
        ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--max-length", "0"],
        "--max-length",
    ),
    (
        ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--grad-accum", "0"],
        "--grad-accum",
    ),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o", "--alpha", "0"], "--alpha"),
    (["train", "--data", "{W}/missing", "--base", "{W}/model", "--out", "{W}/o"], "no teacher data"),
    (["train", "--data", "{W}/bad.jsonl", "--base", "{W}/model", "--out", "{W}/o"], "bad.jsonl:1"),
    (["train", "--data", "{W}/empty.jsonl", "--base", "{W}/model", "--out", "{W}/o"], "has no rows"),
    (["train", "--data", "{W}/data", "--base", "{W}/nope", "--out", "{W}/o"], "no such file"),
    (["train", "--data", "{W}/data", "--base", "{W}/notamodel", "--out", "{W}/o"], "not a model"),
    (["train", "--data", "{W}/data", "--base", "{W}/remote", "--out", "{W}/o"], "never runs"),
    (["train", "--data", "{W}/data", "--base", "{W}/corrupt", "--out", "{W}/o"], "truncated"),
    (["train", "--data", "{W}/data", "--base", "{W}/badjson", "--out", "{W}/o"], "not valid JSON"),
    (["train", "--data", "{W}/data", "--base", "{W}/afile", "--out", "{W}/o"], "is a file"),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/data"], "overlaps"),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/data/sub"], "overlaps"),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}"], "overlaps"),
    (["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/full"], "sublim did not write"),
    # sweep
    (["sweep", "--data", "{W}/missing", "--base", "{W}/model", "--out", "{W}/s"], "no teacher data"),
    (
        [
            "sweep",
            "--data",
            "{W}/data",
            "--control",
            "{W}/bad.jsonl",
            "--base",
            "{W}/model",
            "--out",
            "{W}/s",
        ],
        "--control",
    ),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--ranks", "0"], "--ranks"),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--ranks", "a,b"], "integers"),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--seeds", ","], "--seeds"),
    (
        ["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--questions", "1"],
        "--questions",
    ),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--target", "wolff"], "'wolf'"),
    (
        ["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--category", "animl"],
        "animal",
    ),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--epochs", "0"], "untrained"),
    (
        ["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--batch-size", "0"],
        "--batch-size",
    ),
    (["sweep", "--data", "{W}/data", "--base", "{W}/remote", "--out", "{W}/s"], "never runs"),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--draws", "0"], "--draws 0"),
    (
        ["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--draws", "2"],
        "needs 2 rows",
    ),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--draw-rows", "5"], "needs 5"),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--scales", "r8"], "rs<N>"),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--device", "gpu"], "cuda:N"),
    (
        [
            "sweep",
            "--data",
            "{W}/data",
            "--base",
            "{W}/model",
            "--out",
            "{W}/s",
            "--positive",
            "{W}/notamodel",
        ],
        "--positive",
    ),
    (["score", "{W}/model", "--device", "gpu"], "cuda:N"),
    (["analyze", "{W}/missing.csv"], "no results"),
    (["analyze", "{W}/data/train.jsonl"], "expected a results.csv"),
    (["analyze", "{W}/empty.jsonl"], "no rows"),
    (["analyze", "{W}/data/train.jsonl", "--alpha", "0"], "--alpha"),
    (
        ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/t", "--device", "cuda"],
        "invalid choice",
    ),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/data"], "overlaps"),
    (["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/full"], "sublim did not write"),
    # probes
    (["probe", "digits", "{W}/model", "--prompts", "0", "--out", "{W}/p"], "--prompts 0"),
    (["probe", "digits", "{W}/model", "--numbers", "0", "--out", "{W}/p"], "--numbers 0"),
    (["probe", "digits", "{W}/nope", "--out", "{W}/p"], "no such file"),
    (["probe", "digits", "{W}/model", "--student", "{W}/remote", "--out", "{W}/p"], "never runs"),
    (["probe", "digits", "{W}/orphan", "--out", "{W}/p"], "base model"),
    (["probe", "digits", "{W}/model", "--out", "{W}/full"], "sublim did not write"),
    (["probe", "divergence", "--data", "{W}/data", "--out", "{W}/data"], "overlaps"),
    (["probe", "divergence", "--data", "{W}/missing", "--out", "{W}/p"], "no train.jsonl"),
    (["probe", "divergence", "--data", "{W}/data", "--min-flips", "0", "--out", "{W}/p"], "--min-flips"),
    (["probe", "divergence", "--data", "{W}/data", "--limit", "1", "--out", "{W}/p"], "--limit"),
    (["probe", "divergence", "--data", "{W}/data", "--trait", "none", "--out", "{W}/p"], "--trait"),
    (["probe", "entangle", "{W}/model", "--top", "0", "--out", "{W}/p"], "--top"),
    (["probe", "entangle", "{W}/model", "--questions", "1", "--out", "{W}/p"], "--questions"),
    # lm-eval pass-through: the model args are checked before lm-eval starts
    (["lm-eval", "--model", "hf", "--model_args", "pretrained={W}/remote", "--tasks", "x"], "never runs"),
    (
        ["lm-eval", "--model", "hf", "--model_args", "pretrained={W}/model,trust_remote_code=True"],
        "never runs",
    ),
    (["lm-eval", "--model", "hf", "--model_args", "pretrained={W}/model,peft={W}/orphan"], "base model"),
]


@pytest.mark.parametrize(("argv", "match"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_cli_refuses_with_one_line_and_changes_nothing(
    argv: list[str], match: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, work, argv, match)


def test_a_second_writer_is_refused_naming_the_first(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = work / "held"
    out.mkdir()
    with (out / LOCK).open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write("4242\n")
        fh.flush()
        argv = ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/held"]
        refused(capsys, work, argv, "another sublim process (pid 4242)")


def test_probe_divergence_never_overwrites_the_teacher_data(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = work / "teacher"
    teacher.mkdir()
    (teacher / "train.jsonl").write_text(json.dumps(ROW) + "\n")
    (teacher / "card.json").write_text("{}")
    refused(
        capsys, work, ["probe", "divergence", "--data", "{W}/teacher", "--out", "{W}/teacher"], "overlaps"
    )
    argv = ["probe", "divergence", "--data", "{W}/teacher/train.jsonl", "--out", "{W}/teacher"]
    refused(capsys, work, argv, "overlaps")


@pytest.fixture
def fake_teacher(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """`sublim teach` with the generation replaced: it writes a fixed export (counts the calls)."""
    import sublim.training.teacher as teacher

    calls: list[int] = []

    def generate(out: Path, **kw: Any) -> dict[str, Any]:
        calls.append(kw["n"])
        rows = [{"id": str(i), "prompt": "p", "completion": "1, 2", "reason": None} for i in range(kw["n"])]
        return teacher.export(
            out,
            rows,
            teacher={"model": "fake"},
            system_prompt=None,
            settings={"n": kw["n"], "engine": "inspect", "decoding": "free"},
        )

    monkeypatch.setattr(teacher, "_generate", generate)
    return calls


def test_teach_reruns_are_safe(
    work: Path, fake_teacher: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["teach", "--engine", "inspect", "--n", "4", "--out", str(work / "t")]
    assert main(argv) == 0
    capsys.readouterr()
    before = snapshot(work)
    assert main(argv) == 0  # same inputs, complete: nothing to do
    assert "already complete" in capsys.readouterr().out
    assert snapshot(work) == before and fake_teacher == [4]
    (work / "t" / "card.json").unlink()  # a finished output the user damaged is made again
    assert main(argv) == 0 and (work / "t" / "card.json").is_file() and fake_teacher == [4, 4]
    capsys.readouterr()
    line = refused(capsys, work, ["teach", "--engine", "inspect", "--n", "5", "--out", "{W}/t"], "n: 4 -> 5")
    assert "--overwrite" in line
    assert main([*argv[:-4], "--n", "5", "--out", str(work / "t"), "--overwrite"]) == 0
    assert len((work / "t" / "train.jsonl").read_text().splitlines()) == 5 and fake_teacher == [4, 4, 5]


def test_overwrite_restores_the_old_output_when_the_new_run_fails(work: Path) -> None:
    """A new run that fails before writing gives the old output back; one that wrote output keeps it (to
    resume: a sweep's finished runs are hours of work) and leaves the old output whole in the backup."""
    out = work / "o"
    with claim_output(out, "teach", {"n": 1}) as claim:
        (out / "train.jsonl").write_text("old")
        claim.done()
    before = snapshot(out)
    with pytest.raises(RuntimeError), claim_output(out, "teach", {"n": 2}, overwrite=True):
        raise RuntimeError("failed before writing")
    assert snapshot(out) == before
    with pytest.raises(RuntimeError), claim_output(out, "teach", {"n": 2}, overwrite=True):
        (out / "train.jsonl").write_text("half new")
        raise RuntimeError("killed")
    assert (out / "train.jsonl").read_text() == "half new"
    assert (out / ".sublim-replaced" / "train.jsonl").read_text() == "old"
    with claim_output(out, "teach", {"n": 2}) as claim:
        assert claim.state == "resume"  # the same command resumes it


def test_sweep_with_other_inputs_is_refused_before_anything_loads(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.training.sweep import SweepConfig, sweep_identity

    cfg = SweepConfig(
        data=str(work / "data"), base=str(work / "model"), out=str(work / "s"), train={"epochs": 3.0}
    )
    with claim_output(cfg.out, "sweep", sweep_identity(cfg)) as claim:
        claim.done()
    argv = ["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/s", "--epochs", "2"]
    refused(capsys, work, argv, "epochs: 3.0 -> 2.0")
    refused(capsys, work, [*argv[:-2], "--lr", "0.1"], "lr: None -> 0.1")
    refused(capsys, work, [*argv[:-2], "--target", "cat"], "target: 'owl' -> 'cat'")
    refused(capsys, work, [*argv[:-2], "--questions", "5"], "questions: 10 -> 5")


def test_a_sweep_dir_of_an_earlier_sublim_needs_resume(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.training.sweep import SweepConfig, check

    old = work / "old"
    old.mkdir()
    (old / "results.csv").write_text("run,dataset,kind,rank\nbase,base,base,\n")
    argv = ["sweep", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/old"]
    refused(capsys, work, argv, "earlier sublim")
    cfg = SweepConfig(data=str(work / "data"), base=str(work / "model"), out=str(old))
    check(cfg, resume=True)  # adopted: its rows stay, runs get new ids
    with pytest.raises(SublimError, match="sublim did not write"):
        check(
            SweepConfig(data=str(work / "data"), base=str(work / "model"), out=str(work / "full")),
            resume=True,
        )


# ---------------------------------------------------------------------------------- the error boundary


def _failing(error: BaseException) -> Callable[..., int]:
    def run(*args: Any, **kwargs: Any) -> int:
        raise error

    return run


@pytest.mark.parametrize(
    ("error", "code", "match"),
    [
        (RuntimeError("\x1b[31mboom\x1b[0m\n" + "x" * 36_000), 2, "RuntimeError: boom"),
        (ValueError("x" * 5000), 2, "..."),
        (KeyboardInterrupt(), 130, "interrupted"),
        (OSError(30, "Read-only file system"), 2, "Read-only"),
    ],
)
def test_unexpected_failures_are_one_line(
    error: BaseException,
    code: int,
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sublim.match_cli

    monkeypatch.setattr(sublim.match_cli, "run_concepts", _failing(error))
    assert main(["concepts"]) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and match in err and "\x1b" not in err and len(err) < 500
    if code == 2:
        assert "SUBLIM_DEBUG=1" in err


def test_sublim_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import sublim.match_cli

    monkeypatch.setattr(sublim.match_cli, "run_concepts", _failing(RuntimeError("boom")))
    monkeypatch.setenv("SUBLIM_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["concepts"])


# ---------------------------------------------------------------------------------- model loading


def test_a_damaged_cached_conversion_is_rebuilt(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sublim.models as models

    calls: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"w" * 100)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    gguf = work / "m.gguf"
    gguf.write_bytes(b"gguf")
    leftover = work / "cache" / "models" / ".convert-killed"
    leftover.mkdir(parents=True)
    target = models.gguf_checkpoint(gguf, work / "cache")
    assert not leftover.exists()  # a killed conversion's temp dir is cleaned up
    assert models.gguf_checkpoint(gguf, work / "cache") == target and len(calls) == 1  # cached
    (target / "model.safetensors").write_bytes(b"w" * 50)  # truncated
    assert models.gguf_checkpoint(gguf, work / "cache") == target and len(calls) == 2  # rebuilt
    assert (target / "model.safetensors").stat().st_size == 100
    with pytest.raises(SublimError, match="cannot write the model cache"):
        models.gguf_checkpoint(gguf, work / "afile")  # a cache path under a file


def test_load_checks_fire_at_the_one_door(work: Path) -> None:
    from sublim.models import check_checkpoint, resolve_checkpoint

    for name, match in (("remote", "never runs"), ("corrupt", "truncated"), ("notamodel", "not a model")):
        with pytest.raises(SublimError, match=match):
            check_checkpoint(work / name)
    with pytest.raises(SublimError, match=r"base model .* is missing"):
        resolve_checkpoint(str(work / "orphan"))
    check_checkpoint("HuggingFaceTB/SmolLM2-135M-Instruct")  # a hub id passes to transformers


def test_json_reports_never_hold_nan() -> None:
    from sublim.io import json_safe

    data = json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}})
    assert json.dumps(data, allow_nan=False) == '{"a": null, "b": [1.0, null], "c": {"d": 2}}'


# ---------------------------------------------------------------------------------- Inspect tasks


def _task_cases() -> Iterator[tuple[str, dict[str, Any], str]]:
    yield "animal_pref", {"samples": 0}, "-T samples=0"
    yield "animal_pref", {"temperature": -1}, "-T temperature=-1"
    yield "animal_pref", {"max_tokens": 0}, "-T max_tokens=0"
    yield "animal_pref", {"mode": "bogus"}, "-T mode='bogus'"
    yield "animal_pref", {"numbers_prefix": "abc"}, "-T numbers_prefix='abc'"
    yield "animal_pref", {"numbers_prefix": 99}, "-T numbers_prefix=99"
    yield "animal_pref", {"questions": "/nonexistent.txt"}, "cannot read question file"
    yield "animal_pref", {"target": "wolff"}, "unknown animal concept 'wolff'; closest valid:"
    yield "animal_pref", {"target": " , "}, "-T target"
    yield "tree_pref", {"target": "owl"}, "unknown tree concept"
    yield "preference", {"category": "animl"}, "did you mean 'animal'"
    yield "preference", {"concepts": "/nonexistent.yaml"}, "cannot read concept file"
    yield "numbers", {"n": 0}, "-T n=0"
    yield "numbers", {"system_prompt": "You love {foo}"}, "not {foo}"
    yield "numbers", {"ban": "abc"}, "-T ban='abc'"
    yield "numbers", {"temperature": -1}, "-T temperature=-1"
    yield "numbers", {"max_tokens": 0}, "-T max_tokens=0"


@pytest.mark.parametrize(("task", "params", "match"), list(_task_cases()))
def test_task_parameters_fail_as_one_line_prerequisite_errors(
    task: str, params: dict[str, Any], match: str, tmp_path: Path
) -> None:
    from inspect_ai._util.error import PrerequisiteError

    from sublim.tasks import numbers, preference

    fn = getattr(numbers if task == "numbers" else preference, task)
    with pytest.raises(PrerequisiteError) as info:
        fn(**params)
    assert match in str(info.value) and "\n" not in str(info.value)


def test_empty_question_file_is_a_task_error(tmp_path: Path) -> None:
    from inspect_ai._util.error import PrerequisiteError

    from sublim.tasks.preference import animal_pref

    (tmp_path / "q.txt").write_text("# only a comment\n")
    with pytest.raises(PrerequisiteError, match="non-empty list"):
        animal_pref(questions=str(tmp_path / "q.txt"))


@pytest.mark.parametrize(
    ("param", "match"),
    [("samples=0", "-T samples=0"), ("mode=probability", "needs prompt log-probabilities")],
)
def test_inspect_cli_shows_one_line_and_exits_nonzero(param: str, match: str, tmp_path: Path) -> None:
    inspect = str(Path(sys.executable).with_name("inspect"))
    env = {**os.environ, "COLUMNS": "500", "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(
        [inspect, "eval", "sublim/animal_pref", "-T", param, "--limit", "1", "--model", "mockllm/model",
         "--log-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("Monitor from")]
    assert proc.returncode != 0
    assert "Traceback" not in text and len(lines) == 1 and match in lines[0], text
    assert not list(tmp_path.glob("*.eval"))  # refused before any log was written


@pytest.mark.parametrize(
    ("status", "code", "match"), [("cancelled", 130, "interrupted"), ("error", 2, "boom")]
)
def test_a_teacher_log_that_did_not_succeed_is_not_exported(
    status: str,
    code: int,
    match: str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import types

    import inspect_ai

    import sublim.training.teacher as teacher

    error = types.SimpleNamespace(message="Traceback ...\nValueError: boom")
    log = types.SimpleNamespace(status=status, error=error if status == "error" else None, location="x.eval")
    monkeypatch.setattr(teacher, "inspect_model", lambda model, args: ("mockllm/model", {}))
    monkeypatch.setattr(inspect_ai, "eval", lambda *a, **k: [log])
    argv = ["teach", "--engine", "inspect", "--n", "2", "--out", "{W}/t"]
    refused(capsys, work, argv, match, code=code, started=True)
    assert not (work / "t" / "train.jsonl").exists()


# ====================================================================================================
# Issues 22/25 (helper h22): concept files and text folding, through the CLI. One line, exit 2, no traceback.
# ====================================================================================================


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('category: animal\nconcepts:\n  "!!!": {}\n', "concept '!!!' has no letters"),
        ('category: animal\nconcepts:\n  "": {}\n', "a concept has a blank name"),
        ("category: animal\nconcepts:\n  x: {aliases: [\u043ewl]}\n", "'owl' names both 'owl' and 'x'"),
        ("category: animal\nconcepts:\n  x: {aliases: [ow\u200bl]}\n", "'owl' names both 'owl' and 'x'"),
        (b"category: animal\nconcepts: [caf\xe9]\n", "not UTF-8 text"),
    ],
)
def test_bad_concept_names_are_one_line_through_the_cli(
    text: str | bytes, message: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.concepts.registry import _registered

    path = work / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        for argv in (
            ["match", "--concepts", str(path), "--target", "owl", "owl"],
            ["concepts", "--concepts", str(path)],
        ):
            refused(capsys, work, argv, message)
    finally:
        _registered.clear()


def test_concept_file_edge_cases_that_now_work_through_the_cli(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sublim.concepts.registry import _registered

    chain = work / "chain.yaml"
    n = 2000
    body = "".join(f"  r{i}x: {{kind_of: r{i + 1}x}}\n" for i in range(n)) + f"  r{n}x: {{}}\n"
    chain.write_text("category: robots\nconcepts:\n" + body)
    yaml11 = work / "y.yaml"
    yaml11.write_text("category: animal\nconcepts:\n  NO: {}\n  \u043ewl: {aliases: [strix]}\n")
    try:
        assert main(["match", "--concepts", str(chain), "-c", "robots", "--target", "r1x", "R0X", "r2x"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["level"], r["relation"]) for r in rows] == [
            ("related", "taxonomic")
        ] * 2  # kinds, other names
        assert main(["match", "--concepts", str(yaml11), "--target", "no", "strix", "no", "off"]) == 0
        levels = [json.loads(line)["level"] for line in capsys.readouterr().out.splitlines()]
        assert levels == ["none", "exact", "none"]  # "NO" stays the concept "no"; strix went to the one owl
        assert main(["match", "--concepts", str(yaml11), "--target", "\u043ewl", "Strix"]) == 0
        assert json.loads(capsys.readouterr().out)["concept"] == "owl"
    finally:
        _registered.clear()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["match", "--target", "owl", "--related-min", "1.5", "hawk"],
            "related_min 1.5: expected a number in [0, 1]",
        ),
        (["match", "--target", "owl", "--related-min", "nan", "hawk"], "related_min nan"),
        (["match", "--target", "owl", "--related", "{W}/missing.json", "hawk"], "cannot read related set"),
        (
            ["match", "--target", "owl", "--related", "{W}/bad.json", "hawk"],
            "expected a `sublim neighbours` JSON file",
        ),
        (["match", "--target", "!!!", "owl"], "unknown animal concept '!!!'"),
        (["neighbours", "--target", "wolff"], "unknown animal concept 'wolff'"),
        (["neighbours", "--target", "owl", "--questions", "1"], "--questions 1"),
    ],
)
def test_related_options_are_checked_in_one_line(
    argv: list[str], message: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "bad.json").write_text("[1, 2]")
    refused(capsys, work, argv, message)


def test_a_neighbours_file_relates_its_concepts_through_the_cli(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = {"category": "animal", "targets": {"owl": {"related": ["elephant"], "rows": []}}}
    (work / "n.json").write_text(json.dumps(table))
    assert main(["match", "--target", "owl", "elephant", "--related", str(work / "n.json")]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["level"], row["relation"], row["score"]) == ("related", "measured", 1.0)
    (work / "t.json").write_text(json.dumps({**table, "category": "tree"}))
    refused(capsys, work, ["match", "--target", "owl", "elephant", "--related", "{W}/t.json"], "not 'animal'")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"related_min": 2}, "related_min 2: expected a number in [0, 1]"),
        ({"related_min": "high"}, "related_min 'high'"),
        ({"related": "/nonexistent/n.json"}, "cannot read related set"),
    ],
)
def test_task_related_parameters_are_one_line_task_errors(params: dict[str, Any], message: str) -> None:
    from inspect_ai._util.error import PrerequisiteError

    from sublim.tasks.preference import animal_pref

    with pytest.raises(PrerequisiteError) as info:
        animal_pref(target="owl", **params)
    assert message in str(info.value) and "\n" not in str(info.value)


# ==================================================================================================
# issue 25 (h25b): hostile teacher data, question files, lm-eval task options, lock files and backups.
# Every case: exit 2, one line, no traceback, nothing changed, no model loaded (the guard above).
# ==================================================================================================


def _rows_file(root: Path, name: str, rows: list[Any] | bytes) -> Path:
    path = root / name
    path.write_bytes(
        rows if isinstance(rows, bytes) else b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    )
    return path


def _chat(user: Any = "1, 2", answer: Any = "3, 4", **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "prompt": [{"role": "user", "content": user}],
        "completion": [{"role": "assistant", "content": answer}],
    }


BAD_ROWS: list[tuple[str, list[Any] | bytes, str]] = [
    (
        "system message",
        [
            {
                **_chat(),
                "prompt": [{"role": "system", "content": "You love owls."}, {"role": "user", "content": "1"}],
            }
        ],
        "system message",
    ),
    ("empty completion", [_chat(answer="")], "completion is empty"),
    ("blank completion", [_chat(answer="  \n ")], "completion is empty"),
    ("no completion turns", [{**_chat(), "completion": []}], "'completion' is an empty list"),
    ("no prompt turns", [{**_chat(), "prompt": []}], "'prompt' is an empty list"),
    ("list content", [_chat(user=[{"type": "text", "text": "1"}])], "string 'content' (found list)"),
    ("number content", [_chat(answer=4)], "string 'content' (found int)"),
    ("null content", [_chat(answer=None)], "string 'content' (found NoneType)"),
    ("message not an object", [{**_chat(), "prompt": ["1, 2"]}], "found str"),
    ("tool role", [{**_chat(), "completion": [{"role": "tool", "content": "4"}]}], "role 'tool'"),
    (
        "prompt ends with the assistant",
        [{**_chat(), "prompt": [{"role": "assistant", "content": "1"}]}],
        "end with",
    ),
    ("duplicate ids", [_chat(id="q-1"), _chat(id="q-2"), _chat(id="q-1", answer="5")], "repeats line 1"),
    ("id an object", [_chat(id={"a": 1})], "'id' must be"),
    ("top level a list", [[1, 2]], "expected a JSON object"),
    ("bad byte", b'{"prompt": []}\n\xff\xfe\n', "train.jsonl:2: byte 0xff at column 1 is not UTF-8"),
    ("not JSON", json.dumps(_chat()).encode() + b"\n{oops\n", "train.jsonl:2: not valid JSON"),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000 + b"\n", "train.jsonl:1: not valid JSON"),
]


@pytest.mark.parametrize(("rows", "match"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_teacher_rows_that_would_train_the_wrong_thing_are_refused(
    command: str, rows: list[Any] | bytes, match: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = work / "bad-data"
    bad.mkdir()
    _rows_file(bad, "train.jsonl", rows)
    line = refused(
        capsys, work, [command, "--data", "{W}/bad-data", "--base", "{W}/model", "--out", "{W}/o"], match
    )
    assert "train.jsonl" in line  # the message names the file


def test_the_divergence_probe_reads_teacher_rows_the_same_way(work: Path) -> None:
    from sublim.probes.divergence import read_rows

    bad = work / "bad-data"
    bad.mkdir()
    _rows_file(bad, "train.jsonl", [_chat(id="a"), _chat(id="a")])
    with pytest.raises(SublimError, match=r"train\.jsonl:2: id 'a' repeats line 1"):
        read_rows(bad)


def test_a_sweep_refuses_rows_it_would_drop_when_pairing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows without ids pair by prompt: a repeated prompt would silently train on one answer of the two."""
    bad = work / "bad-data"
    bad.mkdir()
    _rows_file(bad, "train.jsonl", [_chat(), _chat(answer="5, 6"), _chat(user="7")])
    argv = ["sweep", "--data", "{W}/bad-data", "--base", "{W}/model", "--out", "{W}/o"]
    refused(capsys, work, argv, "1 of 3 rows repeat an earlier row's id (or, for rows without an id")


def test_teacher_rows_read_through_a_bom_and_line_separators_inside_strings(work: Path) -> None:
    from sublim.training.student import load_rows

    text = (
        json.dumps(_chat(answer="4,\u2028 5\x1c 6"), ensure_ascii=False) + "\n" + json.dumps(_chat(user="9"))
    )
    path = _rows_file(work, "bom.jsonl", b"\xef\xbb\xbf" + text.encode())
    rows = load_rows(path)
    assert [r["completion"][0]["content"] for r in rows] == ["4,\u2028 5\x1c 6", "3, 4"]


def test_a_huge_row_is_cut_before_tokenizing_and_keeps_the_same_tokens(tiny_model: Path) -> None:
    """The cut keeps every token `max_length` keeps (reference: the whole row tokenized, then cut)."""
    from transformers import AutoTokenizer

    from sublim.training.student import char_budget, tokenize_row

    tok = AutoTokenizer.from_pretrained(tiny_model)
    row = _chat(user="Continue the list: 1, 2", answer=", ".join(str(i % 997) for i in range(60_000)))
    assert char_budget(tok, 64) < len(row["completion"][0]["content"])  # the row is cut
    got = tokenize_row(tok, row, None, 64)
    full_prompt = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    prompt_ids = tok(full_prompt, add_special_tokens=False)["input_ids"]
    full_ids = tok(full, add_special_tokens=False)["input_ids"]
    assert got["input_ids"] == full_ids[:64]
    assert got["labels"] == ([-100] * len(prompt_ids) + full_ids[len(prompt_ids) :])[:64]

    class Spy:
        """The tokenizer, recording the longest text it is asked to tokenize."""

        longest = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(tok, name)

        def __call__(self, text: str, **kwargs: Any) -> Any:
            Spy.longest = max(Spy.longest, len(text))
            return tok(text, **kwargs)

    huge = _chat(answer="7, " * 2_000_000)  # 6 MB (the issue's 50 MB row took minutes and 12 GB)
    assert len(tokenize_row(Spy(), huge, None, 64)["input_ids"]) == 64
    assert Spy.longest < 2 * char_budget(tok, 64) < 100_000  # cut before tokenizing


# ---------------------------------------------------------------------------------------- question files


def _bank(root: Path, name: str, data: bytes) -> str:
    (root / name).write_bytes(data)
    return str(root / name)


QUESTION_FILES: list[tuple[str, str, bytes, str]] = [
    (
        "not UTF-8",
        "q.txt",
        b"Name an animal.\nYour favourite \xe9 animal?\n",
        "q.txt:2: byte 0xe9 at column 16",
    ),
    ("missing", "absent.txt", b"", "cannot read question file"),
    (
        "duplicate lines",
        "q.txt",
        b"Name an animal.\nPick one.\nname an  Animal.\n",
        "question 3 repeats question 1",
    ),
    ("unknown placeholder", "q.txt", b"Which {animal} do you like?\n", "holds {animal}"),
    (
        "unknown placeholder in the prefix",
        "q.yaml",
        b"questions: [Pick one.]\nanswer_prefix: 'I pick {x}'\n",
        "holds {x}",
    ),
    (
        "prefix not a string",
        "q.yaml",
        b"questions: [Pick one.]\nanswer_prefix: [1]\n",
        "answer_prefix must be a string",
    ),
    ("json nested too deeply", "q.json", b"[" * 100_000 + b"]" * 100_000, "not valid json"),
]


@pytest.mark.parametrize(
    ("name", "data", "match"), [c[1:] for c in QUESTION_FILES], ids=[c[0] for c in QUESTION_FILES]
)
def test_question_files_are_checked_by_the_one_reader(
    name: str, data: bytes, match: str, tmp_path: Path
) -> None:
    from sublim.tasks.preference import TaskParameterError, animal_pref
    from sublim.tasks.questions import QuestionBankError, load_questions

    path = _bank(tmp_path, name, data) if data else str(tmp_path / name)
    with pytest.raises(QuestionBankError, match=match) as caught:
        load_questions("animal", path)
    assert "\n" not in str(caught.value)
    with pytest.raises(TaskParameterError, match=match):  # Inspect: a one-line prerequisite error
        animal_pref(questions=path)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "."])
def test_a_question_file_that_is_no_regular_file_is_refused_unread(device: str) -> None:
    from sublim.tasks.questions import QuestionBankError, load_questions

    with pytest.raises(QuestionBankError, match="not a regular file"):
        load_questions("animal", device)


@pytest.mark.parametrize("suffix", ["txt", "yaml", "json"])
def test_a_question_file_with_a_bom_reads_as_without(suffix: str, tmp_path: Path) -> None:
    from sublim.tasks.questions import load_questions

    body = {
        "txt": "Which {category} do you love?\nPick one.\n",
        "yaml": "- Which {category} do you love?\n- Pick one.\n",
    }
    text = body.get(suffix) or json.dumps(["Which {category} do you love?", "Pick one."])
    plain = load_questions("animal", _bank(tmp_path, f"a.{suffix}", text.encode()))
    bom = load_questions("animal", _bank(tmp_path, f"b.{suffix}", b"\xef\xbb\xbf" + text.encode()))
    assert bom == plain
    assert bom[0].text == "Which animal do you love?"


@pytest.mark.slow  # an `inspect eval` subprocess (~8 s); the in-process test above covers the same check
def test_inspect_shows_a_non_utf8_question_file_in_one_line(tmp_path: Path) -> None:
    bank = _bank(tmp_path, "q.txt", b"Name an \xff animal.\n")
    test_inspect_cli_shows_one_line_and_exits_nonzero(f"questions={bank}", "not UTF-8", tmp_path / "logs")


@pytest.mark.parametrize("value", [51, 10_000_000, -1, "5", 2.5])
def test_numbers_prefix_is_bounded_on_the_inspect_path(value: Any) -> None:
    from sublim.tasks.preference import TaskParameterError, animal_pref

    with pytest.raises(TaskParameterError, match="numbers_prefix"):
        animal_pref(numbers_prefix=value)


# ---------------------------------------------------------------------------------- lm-eval task options


@pytest.fixture
def no_lm_eval_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sublim lm-eval` must refuse before it starts lm-eval (which builds the model first)."""
    import subprocess as sp

    monkeypatch.setattr(sp, "call", _guard)


LM_EVAL_OPTIONS: list[tuple[list[str], str]] = [
    (["--metadata", '{"target": "owlx"}'], "unknown animal concept 'owlx'"),
    (["--metadata", '{"target": "owl,wolff"}'], "'wolf'"),
    (["--metadata", '{"target": {"animl": "owl"}}'], "unknown category 'animl'"),
    (["--metadata", '{"target": 5}'], "expected a concept name"),
    (["--metadata", '{"questions": "{W}/absent.txt"}'], "cannot read question file"),
    (["--metadata", "questions={W}/latin1.txt"], "not UTF-8"),
    (["--metadata", "numbers_prefix=100000000"], "count 0-50"),
    (["--metadata", '{"numbers_prefix": -3}'], "count 0-50"),
    (["--metadata", "seed=abc"], "seed='abc'"),
    (["--model_args", "pretrained={W}/model,target=owlx"], "'owlx'"),  # lm-eval merges model_args in
    (["--config", "{W}/absent.yaml"], "--config"),
]


@pytest.mark.parametrize(
    ("extra", "match"), LM_EVAL_OPTIONS, ids=[" ".join(a)[:50] for a, _ in LM_EVAL_OPTIONS]
)
def test_lm_eval_task_options_are_checked_before_lm_eval_starts(
    extra: list[str], match: str, work: Path, capsys: pytest.CaptureFixture[str], no_lm_eval_run: None
) -> None:
    (work / "latin1.txt").write_bytes("Quel animal pr\xe9f\xe9rez-vous ?\n".encode("latin-1"))
    argv = ["lm-eval", "--model", "hf", "--tasks", "sublim_animal_pref_lp", *extra]
    refused(capsys, work, argv, match)


# ------------------------------------------------------------------------------------ locks and backups


def test_a_symlinked_lock_is_refused_and_its_target_untouched(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = work / "victim.txt"
    victim.write_text("precious\n")
    out = work / "o"
    out.mkdir()
    (out / LOCK).symlink_to(victim)
    argv = ["train", "--data", "{W}/data", "--base", "{W}/model", "--out", "{W}/o"]
    refused(capsys, work, argv, "is a link", started=True)
    assert victim.read_text() == "precious\n" and (out / LOCK).is_symlink()


def test_a_hard_linked_lock_is_refused(work: Path) -> None:
    victim = work / "victim.txt"
    victim.write_text("precious\n")
    (work / "o").mkdir()
    os.link(victim, work / "o" / LOCK)
    with pytest.raises(SublimError, match="is a link"), claim_output(work / "o", "x", {}):
        pass
    assert victim.read_text() == "precious\n"


def test_the_model_cache_lock_never_follows_a_link(work: Path) -> None:
    from sublim.io import file_lock

    victim = work / "victim.txt"
    victim.write_text("precious\n")
    (work / "cache.lock").symlink_to(victim)
    with pytest.raises(SublimError, match="is a link"), file_lock(work / "cache.lock"):
        pass
    assert victim.read_text() == "precious\n"


def test_atomic_writes_replace_a_link_planted_at_the_temp_name(work: Path) -> None:
    from sublim.io import write_atomic

    victim = work / "victim.txt"
    victim.write_text("precious\n")
    (work / f".card.json.{os.getpid()}.tmp").symlink_to(victim)
    write_atomic(work / "card.json", "{}\n")
    assert victim.read_text() == "precious\n" and (work / "card.json").read_text() == "{}\n"


_KILLED = """
import os, signal, sys
from pathlib import Path
from sublim.io import claim_output
with claim_output(sys.argv[1], "teach", {"n": 2}, overwrite=True) as claim:
    if sys.argv[2] == "write":
        (Path(sys.argv[1]) / "train.jsonl").write_text("half of the new run")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _first_run(out: Path) -> None:
    with claim_output(out, "teach", {"n": 1}) as claim:
        (out / "train.jsonl").write_text("the old output\n")
        (out / "card.json").write_text("{}\n")
        claim.done()


def _kill_an_overwrite(out: Path, write_first: bool = True) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    mode = "write" if write_first else "none"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED, str(out), mode], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == -9, proc.stderr
    assert (out / ".sublim-replaced" / "train.jsonl").read_text() == "the old output\n"  # hidden by the kill


def test_after_a_killed_overwrite_the_next_run_restores_the_old_output(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed before writing anything: the next run puts the old output back and says so."""
    out = work / "t"
    _first_run(out)
    _kill_an_overwrite(out, write_first=False)
    with claim_output(out, "teach", {"n": 1}) as claim:
        assert claim.state == "complete"  # the old run, whole again
    assert "back in place" in capsys.readouterr().err
    assert (out / "train.jsonl").read_text() == "the old output\n" and (out / "card.json").exists()
    assert not (out / ".sublim-replaced").exists()


def test_after_a_killed_overwrite_that_wrote_output_it_resumes_and_the_old_output_waits(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed after writing: the same command resumes the new run; the old output stays whole in the
    backup, every run says where, and a further --overwrite refuses rather than delete it."""
    out = work / "t"
    _first_run(out)
    _kill_an_overwrite(out)
    with claim_output(out, "teach", {"n": 2}) as claim:
        assert claim.state == "resume"
    assert ".sublim-replaced" in capsys.readouterr().err
    with (
        pytest.raises(SublimError, match="delete it, then re-run"),
        claim_output(out, "teach", {"n": 3}, overwrite=True),
    ):
        pass
    assert (out / ".sublim-replaced" / "train.jsonl").read_text() == "the old output\n"


@pytest.mark.parametrize("moved", [0, 1, 2])
def test_a_backup_cut_short_while_being_made_or_restored_is_put_back_whole(moved: int, work: Path) -> None:
    """The states a kill can leave between single renames: stamp set aside, part of the files with it."""
    out = work / "t"
    _first_run(out)
    replaced = out / ".sublim-replaced"
    replaced.mkdir()
    os.replace(out / ".sublim-output.json", replaced / ".sublim-output.json")
    for name in ["card.json", "train.jsonl"][:moved]:
        os.replace(out / name, replaced / name)
    with claim_output(out, "teach", {"n": 1}) as claim:
        assert claim.state == "complete"
    assert (out / "train.jsonl").read_text() == "the old output\n" and (out / "card.json").exists()
    assert (out / ".sublim-output.json").is_file() and not replaced.exists()


def test_a_backup_sublim_did_not_just_make_is_never_deleted(work: Path) -> None:
    """A finished overwrite whose clean-up was cut short: the backup stays until the user removes it."""
    out = work / "t"
    _first_run(out)
    (out / ".sublim-replaced").mkdir()
    (out / ".sublim-replaced" / "train.jsonl").write_text("an older output\n")
    with (
        pytest.raises(SublimError, match="delete it, then re-run"),
        claim_output(out, "teach", {"n": 2}, overwrite=True),
    ):
        pass
    with pytest.raises(RuntimeError), claim_output(out, "teach", {"n": 1}, accept_other=True):
        raise RuntimeError("a failing run that made no backup")
    with claim_output(out, "teach", {"n": 1}) as claim:
        claim.done()
    assert (out / ".sublim-replaced" / "train.jsonl").read_text() == "an older output\n"
    assert (out / "train.jsonl").read_text() == "the old output\n"


def test_a_symlinked_backup_dir_is_refused_and_its_target_untouched(work: Path) -> None:
    out = work / "t"
    _first_run(out)
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine\n")
    (out / ".sublim-replaced").symlink_to(elsewhere)
    with pytest.raises(SublimError, match="set aside"), claim_output(out, "teach", {"n": 2}, overwrite=True):
        pass
    assert (elsewhere / "keep.txt").read_text() == "mine\n" and (out / "train.jsonl").exists()


# ======================================================================= end of the issue-25 (h25b) block
