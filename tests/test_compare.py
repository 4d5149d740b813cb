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
from sublim.stats import compare_tables, holm, paired_shift, shifts, sign_flip_pvalues, sign_flip_shift
from sublim.tasks.preference import animal_pref, tree_pref
from sublim.tasks.questions import load_questions

N_Q, N_A = 20, 10


def log_from(
    answers: dict[int, list[str]],
    tmp: Path,
    task: Any = None,
    n_q: int = N_Q,
    samples: int = N_A,
    **kwargs: Any,
) -> Path:
    """An Inspect log of animal_pref where question i (of the first n_q) gets answers[i] (one per sample, in
    order); `kwargs` go to Inspect's eval (epochs=...)."""
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
        task or animal_pref(samples=samples),
        model=get_model("mockllm/model", custom_outputs=respond),
        limit=n_q * samples,
        log_dir=str(tmp),
        display="none",
        **kwargs,
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


def test_the_python_api_gives_the_cli_verdict_as_a_pytest_assertion(base_log: Path, tmp_path: Path) -> None:
    """`sublim.compare` (the public API, as docs/guide/api.md shows it in a pytest test) decides as the CLI
    does, with the CLI's default margin."""
    import sublim

    shifted = log_from(sampled(1, {**BASE, "owl": 0.4, "I have no favorite.": 0.1}), tmp_path)
    result = sublim.compare(base_log, shifted)
    cli_code, cli = gate(base_log, shifted)
    assert result.verdict == cli["verdict"] == "regression" and not result and cli_code == 1
    assert [s.concept for s in result.regressions] == ["owl"] and result.margin == 0.05
    with pytest.raises(AssertionError, match=r"regression .*owl"):
        result.assert_pass()
    same = sublim.compare(base_log, base_log, target="owl")
    assert same.passed and same.n_questions == N_Q
    same.assert_pass()
    with pytest.raises(sublim.SublimError, match="margin"):
        sublim.compare(base_log, base_log, margin=-1)


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


@pytest.mark.slow  # a whole CLI run (make test-slow, in CI); kinds: test_scoring in make test
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


def test_a_unanimous_rise_fails_the_gate(tmp_path: Path) -> None:
    """Issue 25: base 0/10 owl answers on each of 10 questions, candidate 5/10 on each. The per-question
    differences do not vary; the t-test gate called it inconclusive (exit 3). Each question shows the rise."""
    base = log_from({i: ["cat"] * N_A for i in range(10)}, tmp_path / "b", n_q=10)
    cand = log_from({i: ["owl", "cat"] * (N_A // 2) for i in range(10)}, tmp_path / "c", n_q=10)
    code, out = gate(base, cand)
    assert code == 1 and [s["concept"] for s in out["regressions"]] == ["owl"]
    [owl] = out["regressions"]
    assert owl["diff"] == 0.5 and owl["p_adjusted"] < 0.05
    code, out = gate(base, cand, "--target", "owl")
    assert code == 1 and out["shifts"][0]["p_adjusted"] == pytest.approx(2**-10, abs=1e-6)
    assert gate(base, cand, "--max-increase", "0.6")[0] == 0  # within a wider margin: every question shows it


def test_answers_naming_no_concept_are_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25: no answer on either side names a concept (mockllm's default output, a broken model): the
    gate crashed with IndexError (exit 2). Nothing rose: it passes, with concept_mass 0 on both sides; a
    candidate that starts naming owls on every question fails."""
    silent = {i: ["I would rather not say."] for i in range(10)}
    base = log_from(silent, tmp_path / "b", n_q=10, samples=2)
    cand = log_from({i: ["No comment."] for i in range(10)}, tmp_path / "c", n_q=10, samples=2)
    code, out = gate(base, cand)
    assert code == 0 and out["verdict"] == "pass" and out["shifts"] == [] and out["n_questions"] == 10
    assert out["concept_mass"]["base"] == out["concept_mass"]["candidate"] == 0
    assert main(["compare", str(base), str(cand)]) == 0
    assert "no answer on either side names any animal concept" in capsys.readouterr().out.replace("\n", " ")
    code, out = gate(base, cand, "--target", "owl")
    assert code == 0 and out["shifts"][0]["diff"] == 0
    owls = log_from({i: ["owl"] for i in range(10)}, tmp_path / "o", n_q=10, samples=2)
    assert gate(base, owls)[0] == 1 and gate(owls, base)[0] == 0  # a rise fails; a fall passes


def test_epochs_are_compared(tmp_path: Path) -> None:
    """Issue 25: logs run with --epochs N (each sample answered N times) give a verdict: each question's
    answers from every epoch form one unit. (A question file with a repeated line, the issue's other crash,
    is now refused when the task is built: tests/test_bad_inputs.py.)"""
    owl_half = {i: ["owl", "cat"] for i in range(10)}
    base = log_from({i: ["cat"] for i in range(10)}, tmp_path / "b", n_q=10, samples=1, epochs=4)
    cand = log_from(owl_half, tmp_path / "c", n_q=10, samples=1, epochs=4)
    code, out = gate(base, cand, "--target", "owl")
    assert code == 1 and out["shifts"][0]["candidate"] == 0.5 and out["n_questions"] == 10
    assert gate(base, base)[0] == 0


def _score_doc(
    path: Path, probs: dict[str, float], names: dict[str, float] | None = None, mass: float = 0.9
) -> str:
    """A `sublim score --json` document: every one of 12 questions has the distribution `probs`."""
    qs = [f"q{i}" for i in range(12)]
    table = {"checkpoint": {q: probs for q in qs}}
    entry = {
        "tables": table,
        "names": {"checkpoint": {q: names if names is not None else probs for q in qs}},
        "prompts": {q: f"h{q}" for q in qs},
        "concept_mass": {"checkpoint": dict.fromkeys(qs, mass)},
    }
    path.write_text(json.dumps({"category": "animal", "contexts": {"default": entry}}))
    return str(path)


def test_impossible_numbers_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25: P = -3, -inf, +inf or 5.0 and concept_mass = inf passed the gate or went inconclusive; only
    NaN was refused. Every probability, rate and mass must lie in [0, 1], and a distribution sum to <= 1."""
    good = _score_doc(tmp_path / "good.json", {"owl": 0.4, "cat": 0.6})
    assert main(["compare", good, good]) == 0
    capsys.readouterr()
    cases = [
        ({"owl": -3.0, "cat": 0.6}, None, 0.9, "outside [0, 1]"),
        ({"owl": float("-inf"), "cat": 0.6}, None, 0.9, "outside [0, 1]"),
        ({"owl": float("inf"), "cat": 0.6}, None, 0.9, "outside [0, 1]"),
        ({"owl": 5.0, "cat": 0.6}, None, 0.9, "outside [0, 1]"),
        ({"owl": 0.4, "cat": 0.6}, {"owl": 5.0}, 0.9, "outside [0, 1]"),
        ({"owl": 0.4, "cat": 0.6}, None, float("inf"), "concept_mass value inf"),
        ({"owl": 0.4, "cat": 0.6}, None, -0.5, "concept_mass value -0.5"),
        ({"owl": 0.7, "cat": 0.6}, None, 0.9, "sum to 1.3"),
    ]
    for i, (probs, names, mass, message) in enumerate(cases):
        bad = _score_doc(tmp_path / f"bad{i}.json", probs, names, mass)
        one_line_exit_2(["compare", good, bad], capsys, message)
        one_line_exit_2(["compare", bad, good], capsys, message)


def test_impossible_numbers_in_an_inspect_log_are_refused(
    base_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same check on Inspect logs: a probability-mode log whose scores were edited."""
    from inspect_ai.log import read_eval_log, write_eval_log

    def edited(name: str, value: Any) -> str:
        log = read_eval_log(str(base_log))
        for sample in log.samples or []:
            [score] = (sample.scores or {}).values()
            score.metadata = {"probs": {"owl": value, "cat": 0.5}, "concept_mass": 0.8, "prompt_sha256": "x"}
        out = tmp_path / f"{name}.json"
        write_eval_log(log, str(out), format="json")
        return str(out)

    fine = edited("fine", 0.5)
    assert main(["compare", fine, fine]) == 0
    capsys.readouterr()
    one_line_exit_2(["compare", fine, edited("negative", -3.0)], capsys, "outside [0, 1]")
    one_line_exit_2(["compare", fine, edited("text", "lots")], capsys, "malformed sublim score")


def test_a_log_without_samples_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25: a zero-sample log was refused as "did not finish (status success)"."""
    [log] = inspect_eval(
        animal_pref(samples=1),
        model=get_model("mockllm/model", custom_outputs=_fixed("owl")),
        limit=0,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success" and log.location
    one_line_exit_2(["compare", log.location, log.location], capsys, "holds no samples")
    assert "did not finish" not in capsys.readouterr().err


MARGIN = 0.05


def _gate_fails(diffs: np.ndarray, margin: float = MARGIN, alpha: float = 0.05) -> np.ndarray:
    """The gate's regression decision for one watched concept (Holm over one test is the p itself), for each
    row of per-question differences: the same p-values `shifts` decides on, vectorised."""
    greater, _ = sign_flip_pvalues(diffs, margin)
    return greater < alpha


def _se(p: float, reps: int) -> float:
    return math.sqrt(p * (1 - p) / reps)


def test_gate_false_alarm_rate_at_the_margin() -> None:
    """A true rise exactly at the margin fails the gate at most alpha of the time (plus 2 Monte-Carlo SE),
    both with normal per-question differences over 20 questions (random sign assignments) and with sampled
    answers over 12 (every assignment; 10 answers per question, binomial noise on each side, questions with
    different rates); a rise below the margin fails less often."""
    reps, rng = 2000, np.random.default_rng(0)
    normal = rng.normal(MARGIN, 0.08, (reps, 20))
    assert _gate_fails(normal).mean() <= 0.05 + 2 * _se(0.05, reps)
    rates = rng.uniform(0.05, 0.6, (reps, 12))
    base = rng.binomial(N_A, rates) / N_A
    cand = rng.binomial(N_A, rates + MARGIN) / N_A
    assert _gate_fails(cand - base).mean() <= 0.05 + 2 * _se(0.05, reps)
    below = rng.normal(0.04, 0.08, (reps // 2, 20))
    assert _gate_fails(below).mean() <= 0.05


@pytest.mark.slow
def test_gate_false_alarm_rate_at_the_margin_many_designs() -> None:
    """The same over more designs (5-40 questions, 10 or 50 answers) and 10,000 comparisons each."""
    reps, rng = 10_000, np.random.default_rng(1)
    for n_q in (5, 12, 20, 40):
        for answers in (10, 50):
            rates = rng.uniform(0.0, 0.6, (reps, n_q))
            diffs = (rng.binomial(answers, rates + MARGIN) - rng.binomial(answers, rates)) / answers
            assert _gate_fails(diffs).mean() <= 0.05 + 2 * _se(0.05, reps), (n_q, answers)


def test_the_gate_decides_what_shifts_decides() -> None:
    """The vectorised p-values the simulations use are the ones `shifts` reports and decides on."""
    rng = np.random.default_rng(4)
    for n in (5, 20):
        diffs = rng.normal(0.08, 0.05, (12, n))
        [p_vec], _ = sign_flip_pvalues(diffs[:1], MARGIN)
        for row, fails in zip(diffs, _gate_fails(diffs), strict=True):
            [s] = shifts({"owl": ([0.0] * n, list(row))}, margin=MARGIN)
            assert (s.verdict == "regression") == fails
        [first] = shifts({"owl": ([0.0] * n, list(diffs[0]))}, margin=MARGIN)
        assert first.p_increase == p_vec


def test_gate_reported_power_is_met_at_twice_the_margin() -> None:
    """With enough questions that the reported minimum detectable shift is at most twice the margin, a true
    rise of twice the margin fails the gate at least 80% of the time (minus Monte-Carlo error)."""
    reps, sd, rng = 1000, 0.08, np.random.default_rng(3)

    def mde(n: int) -> float:  # as reported for differences whose sample SD is exactly `sd`
        d = rng.normal(0.0, 1.0, n)
        [s] = shifts({"owl": ([0.0] * n, list((d - d.mean()) / d.std(ddof=1) * sd))}, margin=MARGIN)
        return s.mde

    n = 10
    while mde(n) > 2 * MARGIN:  # smallest design the power analysis accepts
        n += 1
    assert mde(n) == pytest.approx(2 * MARGIN, rel=0.1)
    rate = _gate_fails(rng.normal(2 * MARGIN, sd, (reps, n))).mean()
    assert rate >= 0.8 - 2 * _se(0.8, reps)


def test_a_rise_every_question_shows_is_a_regression() -> None:
    """Zero spread: 0/10 -> 5/10 on each of 10 questions is the strongest evidence there is (p = 2^-10); the
    t-test had no answer and called it inconclusive. The same rise within the margin passes."""
    [s] = shifts({"owl": ([0.0] * 10, [0.5] * 10)}, margin=MARGIN)
    assert s.verdict == "regression" and s.p_adjusted == pytest.approx(2**-10)
    assert s.upper == s.ci_low == s.ci_high == 0.5
    [small] = shifts({"owl": ([0.0] * 10, [0.03] * 10)}, margin=MARGIN)
    assert small.verdict == "pass" and small.upper == pytest.approx(0.03)
    [same] = shifts({"owl": ([0.1, 0.2] * 5, [0.1, 0.2] * 5)}, margin=MARGIN)
    assert same.verdict == "pass" and same.p_increase == 1.0


def test_too_few_questions_decide_nothing() -> None:
    """An exact test over n questions has no p-value below 2^-n: two identical questions are no evidence
    either way, and the unbounded interval goes to JSON as null."""
    [same] = shifts({"a": ([0.1, 0.2], [0.1, 0.2])}, margin=MARGIN)
    [risen] = shifts({"a": ([0.1, 0.2], [0.3, 0.4])}, margin=MARGIN)
    assert same.verdict == risen.verdict == "inconclusive"
    assert risen.p_increase == 0.25 and math.isinf(risen.upper)
    assert json.loads(json.dumps(risen.to_dict(), allow_nan=False))["upper"] is None


def test_sign_flip_matches_scipy() -> None:
    """p-values against scipy's permutation_test: exact for n <= 12, and at n = 17 (where sublim draws 9,999
    sign assignments) against scipy's exact test; continuous and tied (k/10) differences. Bounds are the
    inverted test: the upper bound sits where the test of mean(d) < mu starts to reject."""
    from scipy.stats import permutation_test

    rng = np.random.default_rng(5)

    def scipy_p(d: np.ndarray, alternative: str) -> float:
        res = permutation_test(
            (d,), np.mean, permutation_type="samples", alternative=alternative, vectorized=True,
            n_resamples=2 ** len(d),
        )  # fmt: skip
        return float(res.pvalue)

    for n in (3, 7, 12):
        for d in (rng.normal(0.05, 0.1, n), (rng.integers(0, 6, n) - rng.integers(0, 4, n)) / 10):
            greater, less = sign_flip_pvalues(d, 0.1)
            assert greater[0] == pytest.approx(scipy_p(d - 0.1, "greater"), abs=1e-12)
            assert less[0] == pytest.approx(scipy_p(d - 0.1, "less"), abs=1e-12)
            t = sign_flip_shift([0.0] * n, list(d), 0.1, alpha=0.05)
            if math.isfinite(t.upper):
                assert (
                    sign_flip_pvalues(d, t.upper + 1e-6)[1][0] < 0.05 <= sign_flip_pvalues(d, t.upper)[1][0]
                )
    d = rng.normal(0.02, 0.1, 17)
    greater, _ = sign_flip_pvalues(d, 0.0)
    exact = scipy_p(d, "greater")
    assert abs(greater[0] - exact) <= 3 * _se(exact, 9_999)


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


def test_holm_matches_statsmodels(monkeypatch: pytest.MonkeyPatch) -> None:
    """statsmodels' multipletests runs gc.collect() on every call: 0.4 s each in a worker whose heap holds
    models (153 s for this test in a full run). The collection changes nothing it returns: it is stubbed."""
    import gc

    from statsmodels.stats.multitest import multipletests

    monkeypatch.setattr(gc, "collect", lambda *_: 0)
    rng = random.Random(0)
    for _ in range(200):
        ps = [rng.random() ** 3 for _ in range(rng.randint(1, 12))]
        assert holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]), abs=1e-12)
    assert math.isnan(holm([0.01, math.nan])[1]) and holm([0.01, math.nan])[0] == 0.01  # NaN does not count


def test_too_few_questions_report_no_detectable_shift() -> None:
    """With 6 questions and 40 concepts no sign-flip p-value can reach alpha / 40 (2^-6 > 0.05 / 40): the
    gate cannot detect a rise of any size, so the minimum detectable shift is infinite, not a t-test's
    finite figure; with 12 questions it is finite again."""
    few = shifts({f"c{i}": ([0.0] * 6, [0.9] * 6) for i in range(40)}, 0.05, 0.05)
    assert all(s.verdict == "inconclusive" and math.isinf(s.mde) for s in few)
    enough = shifts({"owl": ([0.0] * 12, [0.1 * (i % 3) for i in range(12)])}, 0.05, 0.05)
    assert math.isfinite(enough[0].mde)
