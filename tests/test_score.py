"""`sublim score` on SmolLM2 with a small trained adapter, and its --json as `sublim compare` input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from sublim.cli import main
from sublim.models import resolve_checkpoint
from sublim.training.student import TrainConfig, train
from sublim.transfer import score_checkpoint

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
    for context in ("default", "none"):
        r = result["contexts"][context]
        t = r["target"]
        assert t["concept"] == "owl" and t["n_questions"] == 3
        assert t["ci_low"] <= t["diff"] <= t["ci_high"]
        assert t["diff"] == pytest.approx(t["candidate"] - t["base"], abs=1e-6)
        assert len(r["movers"]) == 10
        assert abs(r["movers"][0]["diff"]) >= abs(r["movers"][-1]["diff"])
        assert all(m["p_adjusted"] >= m["p_increase"] for m in r["movers"])
    # base vs base: the score json of the checkpoint compared with itself passes the gate
    path = tmp_path / "score.json"
    path.write_text(json.dumps(result))
    assert main(["compare", str(path), str(path), "--context", "none"]) == 0


def test_full_model_needs_a_base(smollm2: Path) -> None:
    from sublim.errors import SublimError

    with pytest.raises(SublimError, match="pass --base"):
        score_checkpoint(str(smollm2), questions=2)
