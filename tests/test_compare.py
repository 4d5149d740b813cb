"""`sublim compare`: a CI gate on answer distributions, and the statistics behind it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from sublim.cli import main
from sublim.stats import compare_tables, paired_shift
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
    assert code == 0 and out["pass"] and out["regressions"] == []
    assert all(s["diff"] == 0 for s in out["shifts"])


def test_planted_shift_on_one_concept_fails_naming_it(base_log: Path, tmp_path: Path) -> None:
    shifted = log_from(sampled(1, {**BASE, "owl": 0.4, "I have no favorite.": 0.1}), tmp_path)
    code, out = gate(base_log, shifted)
    assert code == 1 and not out["pass"]
    [bad] = out["regressions"]
    assert bad["concept"] == "owl"
    assert 0.1 < bad["diff"] < 0.3 and bad["p_adjusted"] < 0.05
    code, out = gate(base_log, shifted, "--target", "owls")  # watching one concept, by alias
    assert code == 1 and [s["concept"] for s in out["shifts"]] == ["owl"]
    assert gate(base_log, shifted, "--max-increase", "0.5")[0] == 0  # tolerated when the bar is higher


def test_shift_smaller_than_noise_passes(base_log: Path, tmp_path: Path) -> None:
    resampled = log_from(sampled(2, BASE), tmp_path)  # same distribution, different draws
    code, out = gate(base_log, resampled)
    assert code == 0, out["regressions"]
    assert any(s["diff"] != 0 for s in out["shifts"])


def test_bad_inputs_exit_2_with_a_message(
    base_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_log = tmp_path / "notes.txt"
    not_a_log.write_text("hello")
    trees = log_from({i: ["oak"] for i in range(N_Q)}, tmp_path / "trees", tree_pref(samples=N_A))
    cases = [
        (tmp_path / "missing.eval", "no such file"),
        (not_a_log, "not an Inspect log"),
        (trees, "mismatched inputs"),
    ]
    for path, message in cases:
        assert main(["compare", str(base_log), str(path)]) == 2
        assert message in capsys.readouterr().err
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("sublim")), "compare", str(base_log), str(not_a_log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2 and "Traceback" not in cli.stderr


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
    assert main(["compare", str(base_log), str(log.location)]) == 2
    assert "mismatched questions" in capsys.readouterr().err


def test_paired_ci_coverage_and_false_alarm_rate_under_the_null() -> None:
    """Simulated null comparisons: both sides sample the same per-question rates."""
    rng = random.Random(0)
    covered = alarms = 0
    n_sim = 400
    for _ in range(n_sim):
        rates = [rng.uniform(0.05, 0.6) for _ in range(N_Q)]
        base = [sum(rng.random() < r for _ in range(N_A)) / N_A for r in rates]
        cand = [sum(rng.random() < r for _ in range(N_A)) / N_A for r in rates]
        _, low, high, p = paired_shift(base, cand)
        covered += low <= 0 <= high
        alarms += p < 0.05
    assert 0.90 <= covered / n_sim <= 0.98
    assert 0.02 <= alarms / n_sim <= 0.09  # one-sided test at alpha 0.05


def test_holm_correction_across_concepts() -> None:
    base = {f"q{i}": {"a": 0.1, "b": 0.1} for i in range(10)}
    cand = {f"q{i}": {"a": 0.1 + 0.02 * (i % 3), "b": 0.1} for i in range(10)}
    shifts = {s.concept: s for s in compare_tables(base, cand)}
    assert shifts["b"].diff == 0 and shifts["b"].p_increase == 1.0
    # Holm with two tests: the smallest p is doubled, the other kept (and never below the first)
    assert 0 < shifts["a"].p_increase < 0.5
    assert shifts["a"].p_adjusted == pytest.approx(2 * shifts["a"].p_increase)
    assert shifts["b"].p_adjusted == 1.0
    # watching one concept: nothing to correct
    [only] = compare_tables(base, cand, ["a"])
    assert only.p_adjusted == pytest.approx(only.p_increase)
