"""`sublim compare`: a CI gate on answer distributions, and the statistics behind it."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from sublim.cli import main
from sublim.stats import compare_tables, holm, paired_shift, shifts
from sublim.tasks.preference import animal_pref, tree_pref
from sublim.tasks.questions import load_questions

N_Q, N_A = 20, 10


def log_from(answers: dict[int, list[str]], tmp: Path, task: Any = None) -> Path:
    """An Inspect log of animal_pref where question i gets answers[i] (one per sample, in order)."""
    texts = {q.text: i for i, q in enumerate(load_questions("animal"))}
    texts |= {q.text: i for i, q in enumerate(load_questions("tree"))}
    calls: dict[int, int] = {}

    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        i = texts[messages[-1].text]
        k = calls.get(i, 0)
        calls[i] = k + 1
        out = ModelOutput.from_content("mockllm/model", answers[i][k % len(answers[i])])
        out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)
        return out

    [log] = inspect_eval(
        task or animal_pref(samples=N_A),
        model=get_model("mockllm/model", custom_outputs=respond),
        limit=N_Q * N_A,
        log_dir=str(tmp),
        display="none",
    )
    assert log.status == "success" and log.location
    return Path(log.location)


def sampled(seed: int, weights: dict[str, float]) -> dict[int, list[str]]:
    rng = random.Random(seed)
    names, w = list(weights), list(weights.values())
    return {i: rng.choices(names, w, k=N_A) for i in range(N_Q)}


BASE = {"owl": 0.2, "cat": 0.3, "dog": 0.2, "I have no favorite.": 0.3}


def gate(base: Path, cand: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    from contextlib import redirect_stdout
    from io import StringIO

    buf = StringIO()
    with redirect_stdout(buf):
        code = main(["compare", str(base), str(cand), "--json", *extra])
    return code, json.loads(buf.getvalue()) if buf.getvalue().strip() else {}


@pytest.fixture(scope="module")
def base_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return log_from(sampled(1, BASE), tmp_path_factory.mktemp("base"))


def test_identical_distributions_pass(base_log: Path, tmp_path: Path) -> None:
    same = log_from(sampled(1, BASE), tmp_path)
    code, out = gate(base_log, same)
    assert code == 0 and out["verdict"] == "pass" and out["regressions"] == []
    assert all(s["diff"] == 0 for s in out["shifts"])
    assert out["concept_mass"]["diff"] == 0


def test_planted_shift_on_one_concept_fails_naming_it(base_log: Path, tmp_path: Path) -> None:
    shifted = log_from(sampled(1, {**BASE, "owl": 0.4, "I have no favorite.": 0.1}), tmp_path)
    code, out = gate(base_log, shifted)
    assert code == 1 and out["verdict"] == "regression"
    [bad] = out["regressions"]
    assert bad["concept"] == "owl"
    assert 0.1 < bad["diff"] < 0.3 and bad["p_adjusted"] < 0.05
    code, out = gate(base_log, shifted, "--target", "owls")  # watching one concept, by alias
    assert code == 1 and [s["concept"] for s in out["shifts"]] == ["owl"]
    assert out["concept_mass"]["diff"] > 0.1  # fewer non-answers: more answers name an animal
    assert gate(base_log, shifted, "--max-increase", "0.5")[0] == 0  # tolerated when the bar is higher


def test_a_shift_the_design_cannot_bound_is_inconclusive(base_log: Path, tmp_path: Path) -> None:
    resampled = log_from(sampled(2, BASE), tmp_path)  # same distribution, different draws
    code, out = gate(base_log, resampled, "--target", "owl")
    [s] = out["shifts"]
    assert s["upper"] > 0.05 and s["verdict"] == "inconclusive" and code == 3
    assert s["mde"] > 0.05  # the smallest rise this design would catch with 80% power
    assert gate(base_log, resampled, "--target", "owl", "--inconclusive", "pass")[0] == 0
    assert gate(base_log, resampled, "--target", "owl", "--inconclusive", "fail")[0] == 1
    code, out = gate(base_log, resampled, "--target", "owl", "--max-increase", "0.3")
    assert code == 0 and out["shifts"][0]["upper"] <= 0.3


def test_target_counts_its_kinds_like_the_scorer(tmp_path: Path) -> None:
    """--target bear counts answers naming a polar bear, as the Inspect scorer's target_rate does."""
    base = log_from({i: ["cat"] * 5 + ["dog"] * 5 for i in range(N_Q)}, tmp_path / "b")
    bears = {i: 4 + i % 3 for i in range(N_Q)}  # 4-6 of 10 answers name a polar bear
    cand = log_from({i: ["polar bear"] * k + ["dog"] * (10 - k) for i, k in bears.items()}, tmp_path / "c")
    code, out = gate(base, cand, "--target", "bear")
    [s] = out["shifts"]
    assert s["concept"] == "bear" and s["base"] == 0
    assert s["candidate"] == pytest.approx(sum(bears.values()) / (10 * N_Q))
    assert code == 1


def one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str], message: str) -> None:
    assert main(argv) == 2
    out = capsys.readouterr()
    assert message in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err and out.out == ""


def test_bad_inputs_exit_2_with_one_line(
    base_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_log = tmp_path / "notes.txt"
    not_a_log.write_text("hello")
    trees = log_from({i: ["oak"] for i in range(N_Q)}, tmp_path / "trees", tree_pref(samples=N_A))
    no_category = tmp_path / "no-category.json"
    no_category.write_text(json.dumps({"contexts": {"default": {"tables": {"checkpoint": {}}}}}))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"category": "animal", "contexts": {"default": {
        "tables": {"checkpoint": {}}, "names": {"checkpoint": {}}, "prompts": {},
        "concept_mass": {"checkpoint": {}}}}}))  # fmt: skip
    nan = tmp_path / "nan.json"
    tables = {"checkpoint": {"q1": {"owl": float("nan")}, "q2": {"owl": 0.5}}}
    mass = {"checkpoint": {"q1": 0.5, "q2": 0.5}}
    entry = {"tables": tables, "names": tables, "prompts": {"q1": "a", "q2": "b"}, "concept_mass": mass}
    nan.write_text(json.dumps({"category": "animal", "contexts": {"default": entry}}))
    base = str(base_log)
    cases = [
        ([base, str(tmp_path / "missing.eval")], "no such file"),
        ([base, str(not_a_log)], "not an Inspect log"),
        ([base, str(trees)], "mismatched inputs"),
        ([str(no_category), str(no_category)], "not a `sublim score --json` result"),
        ([str(empty), str(empty)], "at least 2"),
        ([str(nan), str(nan)], "NaN"),
        ([base, base, "--alpha", "-3"], "--alpha"),
        ([base, base, "--alpha", "1"], "--alpha"),
        ([base, base, "--max-increase", "-0.1"], "--max-increase"),
        ([base, base, "--max-increase", "nan"], "--max-increase"),
        ([base, base, "--target", "unicorn-ish"], "unknown animal concept"),
    ]
    for args, message in cases:
        one_line_exit_2(["compare", *args], capsys, message)
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("sublim")), "compare", base, str(not_a_log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2 and "Traceback" not in cli.stderr


def test_one_question_logs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for samples in (1, N_A):  # one answer, or every answer to the first question only
        [log] = inspect_eval(
            animal_pref(samples=samples),
            model=get_model("mockllm/model", custom_outputs=_fixed("owl")),
            limit=samples,
            log_dir=str(tmp_path / str(samples)),
            display="none",
        )
        assert log.status == "success"
        one_line_exit_2(["compare", str(log.location), str(log.location)], capsys, "at least 2")


def _fixed(text: str) -> Any:
    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        out = ModelOutput.from_content("mockllm/model", text)
        out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)
        return out

    return respond


def test_same_ids_but_other_question_texts_are_refused(
    base_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = tmp_path / "bank.txt"
    bank.write_text("\n".join(f"Name an animal you like, version {i}." for i in range(N_Q)) + "\n")
    [log] = inspect_eval(
        animal_pref(samples=N_A, questions=str(bank)),
        model=get_model("mockllm/model", custom_outputs=_fixed("owl")),
        limit=N_Q * N_A,
        log_dir=str(tmp_path),
        display="none",
    )
    one_line_exit_2(["compare", str(base_log), str(log.location)], capsys, "mismatched prompts")


def test_json_log_format_is_read(base_log: Path, tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log, write_eval_log

    as_json = tmp_path / "base.json"
    write_eval_log(read_eval_log(str(base_log)), str(as_json), format="json")
    code, out = gate(base_log, as_json)
    assert code == 0 and out["verdict"] == "pass"


def test_mismatched_questions_exit_2(
    base_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = {q.text: i for i, q in enumerate(load_questions("animal"))}

    def respond(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        out = ModelOutput.from_content("mockllm/model", "owl" if texts[messages[-1].text] % 2 else "cat")
        out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)
        return out

    [log] = inspect_eval(
        animal_pref(samples=N_A),
        model=get_model("mockllm/model", custom_outputs=respond),
        limit=5 * N_A,
        log_dir=str(tmp_path),
        display="none",
    )
    one_line_exit_2(["compare", str(base_log), str(log.location)], capsys, "mismatched questions")


def _simulate(n: int, true_shift: float, sd: float, reps: int, seed: int) -> tuple[float, float]:
    """Fraction of simulated comparisons (normal per-question differences) the gate fails, and the reported
    minimum detectable shift of the first one."""
    rng = np.random.default_rng(seed)
    fails, mde = 0, math.nan
    for r in range(reps):
        base = rng.uniform(0.1, 0.5, n)
        cand = base + rng.normal(true_shift, sd, n)
        [s] = shifts({"owl": (list(base), list(cand))}, margin=MARGIN, alpha=0.05)
        fails += s.verdict == "regression"
        if r == 0:
            mde = s.mde
    return fails / reps, mde


MARGIN = 0.05


def test_gate_false_alarm_rate_at_the_margin() -> None:
    """A true rise exactly at the margin fails the gate at most alpha of the time (plus Monte-Carlo error);
    the old gate tested diff > 0 and failed a rise of 0.04 under a margin of 0.05 in 20-34% of runs."""
    reps = 2000
    rate, _ = _simulate(20, MARGIN, 0.08, reps, seed=0)
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)
    below, _ = _simulate(20, 0.04, 0.08, reps, seed=1)
    assert below <= 0.05


def test_gate_reported_power_is_met_at_twice_the_margin() -> None:
    """With enough questions that the reported minimum detectable shift is at most twice the margin, a true
    rise of twice the margin fails the gate at least 80% of the time (minus Monte-Carlo error)."""
    reps, sd = 1000, 0.08
    n = 20
    while _simulate(n, 0.0, sd, 1, seed=2)[1] > 2 * MARGIN:  # smallest design the power analysis accepts
        n += 1
    rate, mde = _simulate(n, 2 * MARGIN, sd, reps, seed=3)
    assert mde == pytest.approx(2 * MARGIN, rel=0.15)
    assert rate >= 0.8 - 2 * math.sqrt(0.8 * 0.2 / reps)


def test_paired_interval_coverage_under_the_null() -> None:
    """Simulated null comparisons: both sides sample the same per-question rates."""
    rng = random.Random(0)
    covered = 0
    n_sim = 400
    for _ in range(n_sim):
        rates = [rng.uniform(0.05, 0.6) for _ in range(N_Q)]
        base = [sum(rng.random() < r for _ in range(N_A)) / N_A for r in rates]
        cand = [sum(rng.random() < r for _ in range(N_A)) / N_A for r in rates]
        t = paired_shift(base, cand)
        covered += t.ci_low <= 0 <= t.ci_high
    assert abs(covered / n_sim - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / n_sim)


def test_no_variation_gives_no_p_value_and_decides_on_the_exact_mean() -> None:
    flat = paired_shift([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert math.isnan(flat.p) and flat.ci_low == flat.ci_high == 0.0
    [same] = shifts({"a": ([0.1, 0.2], [0.1, 0.2])}, margin=0.05)
    [risen] = shifts({"a": ([0.1, 0.2], [0.3, 0.4])}, margin=0.05)
    assert same.verdict == "pass" and risen.verdict == "inconclusive"  # no spread: nothing to test against
    assert json.loads(json.dumps(same.to_dict()))["p_increase"] is None  # no NaN in JSON


def test_holm_correction_across_concepts() -> None:
    base = {f"q{i}": {"a": 0.1, "b": 0.1} for i in range(10)}
    cand = {f"q{i}": {"a": 0.1 + 0.02 * (i % 3), "b": 0.1 + 0.01 * (i % 2)} for i in range(10)}
    found = {s.concept: s for s in compare_tables(base, cand)}
    pa, pb = found["a"].p_increase, found["b"].p_increase
    low, high = sorted([pa, pb])
    assert 0 < low < high < 1
    # Holm with two tests: the smallest p is doubled, the other kept unless below it
    assert min(found["a"].p_adjusted, found["b"].p_adjusted) == pytest.approx(2 * low)
    assert max(found["a"].p_adjusted, found["b"].p_adjusted) == pytest.approx(max(high, 2 * low))
    # watching one concept: nothing to correct
    [only] = compare_tables(base, cand, ["a"])
    assert only.p_adjusted == pytest.approx(only.p_increase)


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = random.Random(0)
    for _ in range(200):
        ps = [rng.random() ** 3 for _ in range(rng.randint(1, 12))]
        assert holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]), abs=1e-12)
    assert math.isnan(holm([0.01, math.nan])[1]) and holm([0.01, math.nan])[0] == 0.01  # NaN does not count
