"""`sublim score` on SmolLM2 with a small trained adapter, and its --json as `sublim compare` input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from sublim.cli import main
from sublim.models import resolve_checkpoint
from sublim.scoring import target_mass
from sublim.training.student import TrainConfig, train
from sublim.trait_shift import score_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("student")
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Continue: {k}, {k + 3}, {k + 6}."}],
            "completion": [
                {"role": "assistant", "content": ", ".join(str((k * 31 + i * 7) % 997) for i in range(6))}
            ],
        }
        for k in range(8)
    ]
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train(TrainConfig(data=str(tmp), base=str(smollm2), out=str(tmp / "out"), rank=4, epochs=1, batch_size=4))
    return tmp / "out"


def test_adapter_dir_uses_its_recorded_base(adapter: Path, smollm2: Path) -> None:
    model, ad = resolve_checkpoint(str(adapter), None)
    assert (Path(model), ad) == (smollm2, str(adapter))


def test_score_reports_paired_target_shift_and_movers(adapter: Path, tmp_path: Path) -> None:
    result = score_checkpoint(str(adapter), trait="owls", contexts=["default", "none"], questions=3)
    assert result["target"] == "owl" and result["correction"] == "holm"
    assert list(result["contexts"]) == ["default", "empty"]  # "none" is the old name of the empty context
    for context in ("default", "empty"):
        r = result["contexts"][context]
        t = r["target"]
        assert t["concept"] == "owl" and t["n_questions"] == 3
        assert t["ci_low"] is t["ci_high"] is None  # 3 questions: 2^3 sign flips cannot bound a 95% interval
        # P(owl) is the target with its kinds, from the same per-question tables the JSON carries
        for side, key in (("base", "base"), ("checkpoint", "candidate")):
            per_q = [target_mass(probs, ["owl"], "animal")[0] for probs in r["tables"][side].values()]
            assert t[key] == pytest.approx(sum(per_q) / 3, abs=1e-6)
            mass = r["concept_mass"][side]
            assert all(0 < m <= 1 for m in mass.values())
            assert r["concept_mass_shift"][key] == pytest.approx(sum(mass.values()) / 3, abs=1e-6)
        assert len(r["movers"]) == 10
        assert abs(r["movers"][0]["diff"]) >= abs(r["movers"][-1]["diff"])
        assert all(m["p_adjusted"] is None or m["p_adjusted"] >= m["p_increase"] for m in r["movers"])
        assert len(set(r["prompts"].values())) == 3  # one rendered prompt per question
    # the checkpoint compared with itself passes the gate (score json is `sublim compare` input)
    path = tmp_path / "score.json"
    path.write_text(json.dumps(result, allow_nan=False))
    # (inconclusive, exit 3: with 3 questions no exact p-value falls below 2^-3; 12 pass in test_compare)
    assert main(["compare", str(path), str(path), "--context", "empty"]) == 3


def test_one_question_is_refused(adapter: Path) -> None:
    from sublim.errors import SublimError

    with pytest.raises(SublimError, match="at least 2 questions"):
        score_checkpoint(str(adapter), questions=1)


def test_full_model_needs_a_base(smollm2: Path) -> None:
    from sublim.errors import SublimError

    with pytest.raises(SublimError, match="pass --base"):
        score_checkpoint(str(smollm2), questions=2)
