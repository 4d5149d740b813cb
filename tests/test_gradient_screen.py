"""`sublim probe gradient`: the first-order screen. Its batched central differences agree with explicit
per-row gradients (an independent computation: one backward pass per row and a dot product), a planted
dataset (completions that name the trait) is ranked above its matched control, and bad settings are refused
in one line before the model loads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from sublim.cli import main
from sublim.probes import gradient


def _rows(completions: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"numbers-{k:05d}",
            "prompt": [{"role": "user", "content": f"Continue {k}, {2 * k}, {3 * k}. Just numbers."}],
            "completion": [{"role": "assistant", "content": c}],
        }
        for k, c in enumerate(completions, 1)
    ]


CONTROL = _rows([", ".join(str(k * i % 997) for i in range(4, 9)) for k in range(1, 9)])
PLANTED = _rows([f"{k * 4}, {k * 5}, owl owl owl" for k in range(1, 9)])


@pytest.fixture(scope="module")
def loaded(tiny_model: Path) -> tuple[Any, Any]:
    from sublim.models import load_model

    return load_model(tiny_model, device="cpu")


CFG = gradient.GradientConfig(target="owl", questions=3, batch_size=3)


def test_central_differences_match_per_row_backward_passes(loaded: tuple[Any, Any]) -> None:
    import torch

    model, tok = loaded
    params = gradient.chosen_parameters(model, "all")
    for p in params:
        p.requires_grad_(True)
    grad = gradient.trait_gradient(model, params, gradient.target_sequences(tok, CFG))
    rows = [t for _, t in gradient.tokenize_rows(tok, CONTROL[:4] + PLANTED[:4], CFG)]
    before = [p.detach().clone() for p in params]
    screened = gradient.directional_derivatives(model, params, grad, rows, batch_size=3)
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))  # weights restored exactly
    for row, value in zip(rows, screened, strict=True):
        model.zero_grad(set_to_none=True)
        gradient.row_losses(model, [row])[0].backward()
        exact = sum(float((p.grad.double() * g.double()).sum()) for p, g in zip(params, grad, strict=True))
        assert value == pytest.approx(exact, rel=2e-2, abs=1e-4)
    assert any(abs(v) > 1e-3 for v in screened)  # not all ~0: the comparison had something to compare


def test_a_planted_dataset_pulls_toward_the_trait_more_than_its_control(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    report = gradient.screen(model, tok, PLANTED, CONTROL, CFG)
    planted, control = report["datasets"]["data"]["pull"], report["datasets"]["control"]["pull"]
    assert planted["mean"] > control["mean"]
    paired = report["paired"]
    assert paired["pairs"] == len(PLANTED)  # paired by prompt, every row
    assert paired["difference"]["ci_low"] > 0 and paired["p_greater"] < 0.05
    # the report's numbers come from its per-row pulls
    per_row = report["datasets"]["data"]["per_row"]
    assert planted["mean"] == pytest.approx(sum(per_row) / len(per_row), rel=1e-3)


def test_cli_writes_report_and_refuses_bad_settings_before_loading(tiny_model: Path, tmp_path: Path) -> None:
    data, control = tmp_path / "planted.jsonl", tmp_path / "control.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PLANTED))
    control.write_text("".join(json.dumps(r) + "\n" for r in CONTROL))
    out = tmp_path / "out"
    base = ["probe", "gradient", str(tiny_model), "--data", str(data), "--control", str(control)]
    assert main([*base, "--questions", "2", "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["paired"]["difference"]["mean"] > 0 and (out / "gradient.png").stat().st_size > 0
    assert math.isfinite(report["trait_gradient_norm"])
    for bad in (["--target", "unicornz"], ["--limit", "1"], ["--questions", "0"]):
        assert main([*base, *bad, "--out", str(tmp_path / "bad")]) != 0
        assert not (tmp_path / "bad").exists()
    (tmp_path / "broken.jsonl").write_text("not json\n")
    assert main(["probe", "gradient", str(tiny_model), "--data", str(tmp_path / "broken.jsonl")]) != 0


def test_a_row_cut_away_by_max_length_leaves_every_other_pair_intact(loaded: tuple[Any, Any]) -> None:
    """A row with no completion token left is dropped from both sides' pulls, not shifted onto its neighbour's
    prompt: the paired differences equal those of the same data without that row."""
    model, tok = loaded
    long = _rows(["owl"])[0] | {"prompt": [{"role": "user", "content": "seven " * 400}]}
    cfg = gradient.GradientConfig(target="owl", questions=2, batch_size=4, max_length=64)
    with_long = gradient.screen(model, tok, [long, *PLANTED[:4]], CONTROL[:4], cfg)
    without = gradient.screen(model, tok, PLANTED[:4], CONTROL[:4], cfg)
    assert with_long["paired"]["pairs"] == without["paired"]["pairs"] == 4
    assert with_long["paired"]["difference"]["mean"] == pytest.approx(without["paired"]["difference"]["mean"])
