"""One definition of P(target): Python, Inspect, `sublim score`, `sublim sweep` and lm-eval give the same
figure for the same questions and model, for a target with kinds (bear: polar bear counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from sublim.models import load_model
from sublim.probability import ConceptScorer
from sublim.scoring import target_mass
from sublim.tasks.questions import load_questions

pytestmark = pytest.mark.slow
N = 2
TARGET = "bear"


@pytest.fixture(scope="module")
def python_figures(smollm2: Path) -> list[float]:
    model, tok = load_model(smollm2, device="cpu")
    scorer = ConceptScorer(model, tok, "animal")
    dists = [scorer.question(q) for q in load_questions("animal")[:N]]
    kinds = [n for n in dists[0].names if n != TARGET and target_mass({n: 1.0}, [TARGET], "animal")[0] == 1]
    assert {"polar bear", "grizzly bear"} <= set(kinds)  # names of kinds, which P(target) must include
    return [target_mass(d.names, [TARGET], "animal")[0] for d in dists]


def test_inspect_probability_mode(smollm2: Path, python_figures: list[float], tmp_path: Path) -> None:
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    from sublim.tasks.preference import animal_pref

    model = get_model("hf/local", model_path=str(smollm2), device="cpu")
    [log] = inspect_eval(
        animal_pref(target=TARGET, mode="probability"),
        model=model,
        limit=N,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success"
    got = [next(iter(s.scores.values())).value["p_target"] for s in log.samples or [] if s.scores]
    assert got == pytest.approx(python_figures, rel=1e-5)


def test_score_and_sweep(smollm2: Path, python_figures: list[float], tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from sublim.training.sweep import SweepConfig, sweep
    from sublim.trait_shift import score_checkpoint

    base, _ = load_model(smollm2, device="cpu")
    # a LoRA adapter at its initialisation (B = 0) leaves the model unchanged: both sides equal the base
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    result = score_checkpoint(str(tmp_path / "adapter"), trait=TARGET, contexts=["default"], questions=N)
    t = result["contexts"]["default"]["target"]
    mean = sum(python_figures) / N
    assert t["base"] == pytest.approx(mean, rel=1e-5) and t["candidate"] == pytest.approx(mean, rel=1e-5)

    data = tmp_path / "train.jsonl"
    row = {
        "prompt": [{"role": "user", "content": "1, 2"}],
        "completion": [{"role": "assistant", "content": "3"}],
    }
    data.write_text(json.dumps(row) + "\n")
    cfg = SweepConfig(data=str(data), base=str(smollm2), out=str(tmp_path / "sweep"), ranks=[1],
                      target=TARGET, contexts=["default"], questions=N)  # fmt: skip
    rows = sweep(cfg, max_runs=1)  # the base model's row only
    [base_row] = [r for r in rows if r["kind"] == "base"]
    assert float(base_row["p_target"]) == pytest.approx(mean, rel=1e-5)
    assert 0 < float(base_row["concept_mass"]) <= 1


def test_lm_eval_terminated_names(smollm2: Path, python_figures: list[float]) -> None:
    """lm-eval scores fixed strings, so names end with a terminator ('.', ',', '!') instead of every word
    boundary. On SmolLM2 these carry most of the boundary mass, unevenly across names:
    docs/results/lm-eval-gap.md measured per-question relative gaps up to 0.119 (0.04 for bear), hence the
    stated tolerance of 0.15."""
    pytest.importorskip("lm_eval")
    from tests.test_lm_eval import evaluate

    out = evaluate(
        smollm2, ["sublim_animal_pref_lp"], limit=1, metadata={"target": TARGET}, apply_chat_template=True
    )
    [sample] = out["samples"]["sublim_animal_pref_lp"]
    assert sample["p_target"] == pytest.approx(python_figures[0], rel=LM_EVAL_TOLERANCE)


LM_EVAL_TOLERANCE = 0.15
