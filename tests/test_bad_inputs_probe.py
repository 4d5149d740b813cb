"""The hostile probe's findings (notes: hostile_probe.md): each input is refused in one line, exit 2, before
any model loads and before --out is claimed, and no file the user has changes. Models are replaced by the
guard of tests/test_bad_inputs.py (its fixtures are imported here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sublim.errors import SublimError
from sublim.io import STAMP, claim_output
from tests.test_bad_inputs import no_model_loads, refused, work

__all__ = ["no_model_loads", "work"]  # fixtures, used by name

ROOT = Path(__file__).parents[1]
TRAIN = ["train", "--data", "{W}/data", "--base", "{W}/model"]
SWEEP = ["sweep", "--data", "{W}/data", "--base", "{W}/model"]


def _sublim(*args: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sublim", *args], input=stdin, env=env, capture_output=True, timeout=timeout
    )


# --------------------------------------------------------------- 1, 12: an --out that is not a dir of its own

OUT_COMMANDS = [
    TRAIN,
    SWEEP,
    ["teach"],
    ["imprint"],
    ["probe", "digits", "{W}/model"],
    ["probe", "entangle", "{W}/model"],
    ["probe", "divergence", "--data", "{W}/data"],
]


@pytest.mark.parametrize("out", ["", ".", "..", "/", "./"])
@pytest.mark.parametrize("command", OUT_COMMANDS, ids=lambda c: "-".join(c[:2]).replace("{W}/", ""))
def test_an_out_that_is_empty_the_cwd_a_parent_or_the_root_is_refused(
    command: list[str],
    out: str,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(work / "full")  # the user's own files live here
    # never --overwrite the real root in a test: a regression would set the machine's own files aside (a
    # run of this test against the unfixed code once moved /bin); "/" without it must be refused the same way
    overwrite = [] if out == "/" else ["--overwrite"]
    line = refused(capsys, work, [*command, "--out", out, *overwrite], "argument --out")
    assert ("is empty" if out == "" else "resolves to") in line
    assert (work / "full" / "keep.txt").read_text() == "the user's own file"
    assert sorted(p.name for p in (work / "full").iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "command",
    [TRAIN, SWEEP, ["teach"], ["probe", "digits", "{W}/model"], ["imprint"]],
    ids=lambda c: c[0] + ("-" + c[1] if c[0] == "probe" else ""),
)
def test_overwrite_never_replaces_a_dir_sublim_did_not_write(
    command: list[str], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, work, [*command, "--out", "{W}/full", "--overwrite"], "only sublim's own outputs")
    assert (work / "full" / "keep.txt").read_text() == "the user's own file"


def test_overwrite_at_the_io_door_keeps_a_dir_without_sublims_stamp(work: Path) -> None:
    with (
        pytest.raises(SublimError, match="only sublim's own outputs"),
        claim_output(work / "full", "train", {"n": 1}, overwrite=True),
    ):
        pytest.fail("claimed a dir of the user's own files")
    assert sorted(p.name for p in (work / "full").iterdir()) == ["keep.txt"]
    with pytest.raises(SublimError, match="is empty"), claim_output("", "train", {"n": 1}, overwrite=True):
        pytest.fail("claimed the current directory")


def test_overwrite_still_replaces_sublims_own_output_and_an_earlier_sweep(work: Path) -> None:
    from sublim.training.sweep import SweepConfig, check

    out = work / "mine"
    with claim_output(out, "teach", {"n": 1}) as claim:
        (out / "train.jsonl").write_text("old\n")
        claim.done()
    with claim_output(out, "teach", {"n": 2}, overwrite=True) as claim:
        assert claim.state == "new" and not (out / "train.jsonl").exists()
        claim.done()
    old = work / "old"
    old.mkdir()
    (old / "results.csv").write_text("run,dataset,kind,rank\nbase,base,base,\n")
    cfg = SweepConfig(data=str(work / "data"), base=str(work / "model"), out=str(old))
    check(cfg, overwrite=True)  # an earlier sublim's sweep (no stamp) is still sublim's: replaceable


# ------------------------------------------------------------------ 3, 4, 5, 10, 11: flags checked first


def _no_template_model(work: Path) -> None:
    model = work / "plain"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))


def _weights_model(work: Path) -> None:
    model = work / "weights"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    name = "model.layers.0.self_attn.q_proj.weight"
    header = json.dumps({name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (model / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)


FLAG_CASES: list[tuple[list[str], str]] = [
    # 3: teach's trait and category
    (["teach", "--category", "nosuch", "--out", "{W}/t"], "unknown category 'nosuch'"),
    (["teach", "--trait", "qwzx", "--out", "{W}/t"], "unknown animal concept 'qwzx'"),
    (["teach", "--category", "", "--out", "{W}/t"], "--category ''"),
    (["teach", "--teacher", "{W}/model", "--trait", "qwzx", "--out", "{W}/t"], "'qwzx'"),
    # 4: seeds and targets, before --out is claimed
    ([*TRAIN, "--out", "{W}/o", "--seed", "-1"], "argument --seed"),
    ([*TRAIN, "--out", "{W}/o", "--seed", "99999999999999999999"], "argument --seed"),
    ([*TRAIN, "--out", "{W}/o", "--seed", str(2**32)], "argument --seed"),
    ([*SWEEP, "--out", "{W}/o", "--seeds", "0,-1"], "--seeds -1"),
    ([*SWEEP, "--out", "{W}/o", "--seeds", str(2**40)], "--seeds"),
    (["teach", "--out", "{W}/o", "--seed", "-1"], "argument --seed"),
    (["imprint", "--out", "{W}/o", "--seed", "-1"], "argument --seed"),
    (["probe", "digits", "{W}/model", "--out", "{W}/o", "--seed", "-1"], "argument --seed"),
    (
        [
            "train",
            "--data",
            "{W}/data",
            "--base",
            "{W}/weights",
            "--out",
            "{W}/o",
            "--targets",
            "nosuchmodule",
        ],
        "no such modules",
    ),
    (["train", "--data", "{W}/data", "--base", "{W}/plain", "--out", "{W}/o"], "no chat template"),
    # 5: entangle's numbers are the teacher's, 0-999
    (["probe", "entangle", "{W}/model", "--out", "{W}/o", "--max-number", "99999999999"], "<= 1000"),
    (["probe", "entangle", "{W}/model", "--out", "{W}/o", "--max-number", "1001"], "<= 1000"),
    # 6: demo, before the model loads
    (["demo", "--questions", "0"], "--questions 0"),
    (["demo", "--samples", "-1"], "--samples -1"),
    (["demo", "--log-dir", "{W}/afile"], "is a file"),
    # 8: messages that say what is wrong
    (["compare", "{W}", "{W}"], "is a directory"),
    (["compare", "/dev/null", "/dev/null"], "is a device"),
    ([*TRAIN, "--out", "{W}/o", "--epochs", "inf"], "finite"),
    ([*TRAIN, "--out", "{W}/o", "--epochs", "1e309"], "finite"),
    ([*SWEEP, "--out", "{W}/o", "--draws", "1000"], "--draws 1000 needs"),
    (["train", "--data", "/dev/null", "--base", "{W}/model", "--out", "{W}/o"], "is a device"),
    # 10: LoRA settings with --full
    ([*TRAIN, "--out", "{W}/o", "--full", "--rank", "4"], "--full trains every weight"),
    ([*TRAIN, "--out", "{W}/o", "--full", "--alpha", "4", "--rslora"], "--alpha, --rslora"),
    ([*TRAIN, "--out", "{W}/o", "--full", "--targets", "attn"], "--targets"),
    # 11: teach values that could never do what they say
    (["teach", "--system-prompt", "You love {trait!r}", "--out", "{W}/t"], "plain placeholders"),
    (["teach", "--system-prompt", "You love {traits:>20}", "--out", "{W}/t"], "plain placeholders"),
    (["teach", "--ban", "-1", "--out", "{W}/t"], "integers 0-999"),
    (["teach", "--ban", "5000", "--out", "{W}/t"], "integers 0-999"),
]


@pytest.mark.parametrize(("argv", "match"), FLAG_CASES, ids=[f"{a[0]}: {m}" for a, m in FLAG_CASES])
def test_probe_flag_refused_before_anything_loads_or_is_claimed(
    argv: list[str], match: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_template_model(work)
    _weights_model(work)
    line = refused(capsys, work, argv, match)
    assert "x --draw-rows" not in line  # 8: the sweep names no flag the user never passed
    assert not (work / "o").exists() and not (work / "t").exists()


def test_a_full_run_without_lora_flags_still_passes_the_checks(work: Path) -> None:
    from sublim.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--data", str(work / "data"), "--base", str(work / "model"), "--full"]
    )
    assert args.rank is None and args.dropout is None and args.targets is None  # none was given


# ------------------------------------------------------------------------------- 7, 9: match's inputs


@pytest.mark.parametrize("stdin", [b"owl\xff\n", b"\xfe\xfeowl\ncat\x80\n"])
def test_match_writes_valid_utf8_json_for_bytes_that_are_not_utf8(stdin: bytes) -> None:
    proc = _sublim("match", "-t", "owl", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]  # strict UTF-8
    assert len(rows) == len(stdin.splitlines()) and "\ufffd" in rows[0]["response"]


@pytest.mark.parametrize("command", [["match", "-t", "owl", "owl"], ["concepts"]])
def test_a_fifo_given_as_a_concept_file_is_refused_without_waiting(
    command: list[str], tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = _sublim(*command, "--concepts", str(fifo), timeout=30)  # a hang raises TimeoutExpired
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "named pipe" in lines[0], lines


def test_a_run_that_fails_before_writing_anything_leaves_no_claim(work: Path) -> None:
    """4: a bad flag only the loader can see (a hub base's --targets) must not block the fixed re-run."""
    out = work / "o"
    with pytest.raises(RuntimeError), claim_output(out, "train", {"targets": "nosuchmodule"}):
        raise RuntimeError("--targets 'nosuchmodule': no such modules")
    assert not (out / STAMP).exists()
    with claim_output(out, "train", {"targets": "all"}) as claim:  # no --overwrite needed
        assert claim.state == "new"
        (out / "adapter.bin").write_text("half")  # cut short here: not done
    assert json.loads((out / STAMP).read_text())["complete"] is False
    with pytest.raises(RuntimeError), claim_output(out, "train", {"targets": "all"}) as claim:
        raise RuntimeError("interrupted again")  # resumable work stays claimed
    assert json.loads((out / STAMP).read_text())["identity"] == {"targets": "all"}


# --------------------------------------------------------------- the review's findings


def test_an_out_under_an_unknown_home_is_one_line(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, work, [*TRAIN, "--out", "~nosuchuser_sublim/x"], "argument --out")
    assert "cannot be resolved" in line


def test_the_teacher_prompt_uses_the_plural_people_write() -> None:
    from sublim.tasks.numbers import trait_system_prompt

    prompt = trait_system_prompt("wolf") or ""
    assert "You love wolves" in prompt and "wolfs" not in prompt
    assert "geese" in (trait_system_prompt("goose") or "")


def test_match_reads_one_response_a_line_even_with_a_line_separator_inside() -> None:
    out = _sublim("match", "--target", "owl", stdin="an owl\u2028at night\r\nBowl\n".encode())
    rows = [json.loads(line) for line in out.stdout.decode().split("\n") if line]
    assert out.returncode == 0 and len(rows) == 2, out.stderr


def test_a_fifo_as_related_set_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "related.fifo"
    os.mkfifo(fifo)
    out = _sublim("match", "--target", "owl", "--related", str(fifo), "owl", timeout=20)
    err = out.stderr.decode().strip().splitlines()
    assert out.returncode != 0 and len(err) == 1 and "not a regular file" in err[0], err
