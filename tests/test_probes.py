"""`sublim probe`: digit confidence, divergent teacher tokens and entangled numbers. Shapes, determinism and
properties that must hold (entropy within [0, log #digits], KL = 0 for identical contexts, number
distributions that sum to one and agree with plain teacher forcing), on a tiny model and on SmolLM2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from sublim.cli import main
from sublim.errors import SublimError
from sublim.models import load_checkpoint as load
from sublim.probes import digits, divergence, entangle
from sublim.probes.common import digit_token_ids, forced_logprobs

ROWS = [
    {
        "id": f"r{k}",
        "prompt": [{"role": "user", "content": f"Continue the list {k}, {2 * k}, {3 * k}. Numbers only."}],
        "completion": [{"role": "assistant", "content": ", ".join(str(k * i % 997) for i in range(4, 9))}],
    }
    for k in range(1, 7)
]


@pytest.fixture(scope="module")
def teacher_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return out


@pytest.fixture(scope="module")
def other_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same tokenizer as tiny_model, other random weights: a stand-in for a fully fine-tuned student."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("other") / "m", seed=1)


def reference_entropy(
    model_dir: Path, cfg: digits.DigitsConfig, merge_adapter: Path | None = None
) -> list[float]:
    """Per prompt, the mean entropy over digit tokens at the answer's digit positions, computed without the
    probe's code: one unpadded forward pass per prompt, the ten digit tokens found by decoding "0".."9", and a
    student adapter merged into the weights (the probe puts it on top with PEFT instead)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if merge_adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, merge_adapter).merge_and_unload()
    model.eval()
    digit_ids = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    out = []
    for context, answer in digits.sequences(tok, cfg):
        with torch.no_grad():
            logits = model(torch.tensor([context + answer])).logits[0]
        entropies = []
        for j, token in enumerate(answer):
            if token in digit_ids:
                p = torch.softmax(logits[len(context) + j - 1, digit_ids].double(), dim=-1)
                entropies.append(float(-(p * p.log()).sum()))
        out.append(sum(entropies) / len(entropies))
    return out


@pytest.mark.slow
def test_digit_tokens_are_ascii_digits_only(tiny_model: Path, smollm2: Path) -> None:
    from transformers import AutoTokenizer

    for path in (tiny_model, smollm2):
        tok = AutoTokenizer.from_pretrained(path)
        ids = digit_token_ids(tok)
        assert sorted(tok.decode([i]).strip() for i in ids) == [str(d) for d in range(10)]


def test_digits_stats_bounds_shape_and_determinism(tiny_model: Path) -> None:
    cfg = digits.DigitsConfig(prompts=5, numbers=4, positions=6)
    a = digits.probe(str(tiny_model), cfg=cfg)
    b = digits.probe(str(tiny_model), cfg=cfg)
    assert a == b
    base = a["models"]["base"]
    assert len(base["positions"]) == 6 and base["mean"]["entropy"]["n"] == 5
    log_d = math.log(a["digit_tokens"])
    m, tok = load(str(tiny_model))
    for prompt in digits.digit_stats(m, tok, cfg):
        assert all(0.0 <= e <= log_d + 1e-6 for e in prompt["entropy"])
        assert all(0.0 < x <= 1.0 for x in prompt["digit_mass"] + prompt["max_prob"])
        assert all(
            abs(g - (log_d - e)) < 1e-6 for g, e in zip(prompt["entropy_gap"], prompt["entropy"], strict=True)
        )
    # a random tiny model is close to uniform over digits: entropy near log 10, not near 0
    assert base["mean"]["entropy"]["mean"] > 0.9 * log_d


def test_digits_student_difference_is_paired(tiny_model: Path, other_tiny: Path) -> None:
    cfg = digits.DigitsConfig(prompts=4, numbers=3, positions=4)
    same = digits.probe(str(tiny_model), str(tiny_model), cfg)
    assert all(abs(same["difference"][s]["mean"]) < 1e-6 for s in digits.STATS)
    other = digits.probe(str(tiny_model), str(other_tiny), cfg)
    base, student = reference_entropy(tiny_model, cfg), reference_entropy(other_tiny, cfg)
    pairs = [s - b for b, s in zip(base, student, strict=True)]
    assert other["models"]["base"]["mean"]["entropy"]["mean"] == pytest.approx(sum(base) / 4, abs=2e-6)
    assert other["models"]["student"]["mean"]["entropy"]["mean"] == pytest.approx(sum(student) / 4, abs=2e-6)
    diff = other["difference"]["entropy"]
    assert diff["mean"] == pytest.approx(sum(pairs) / 4, abs=2e-6)
    # paired: the interval comes from the per-prompt differences' spread, not from the two models' spreads
    sd = math.sqrt(sum((d - sum(pairs) / 4) ** 2 for d in pairs) / 3)
    assert diff["ci_high"] - diff["mean"] == pytest.approx(3.182446 * sd / 2, abs=2e-6)  # t(0.975, 3)


def test_digits_on_an_adapter_student(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft.save_pretrained(tmp_path / "adapter")
    cfg = digits.DigitsConfig(prompts=3, positions=3)
    report = digits.probe(str(tiny_model), str(tmp_path / "adapter"), cfg)
    assert report["difference"]["digit_mass"]["n"] == 3
    base = reference_entropy(tiny_model, cfg)
    student = reference_entropy(tiny_model, cfg, merge_adapter=tmp_path / "adapter")
    expected = sum(s - b for b, s in zip(base, student, strict=True)) / 3
    assert abs(expected) > 1e-4  # the random adapter does move the digits
    assert report["difference"]["entropy"]["mean"] == pytest.approx(expected, abs=2e-6)


def test_divergence_is_zero_for_identical_contexts(
    tiny_model: Path, teacher_data: Path, tmp_path: Path
) -> None:
    cfg = divergence.DivergenceConfig(system_prompt="You are terse.", plain="You are terse.")
    report = divergence.probe(str(tiny_model), str(teacher_data), tmp_path / "same", cfg)
    s = report["summary"]
    assert s["kl_per_token"]["mean"] == 0.0 and s["rows_with_flip"] == 0.0 and s["divergent_rows"] == 0
    assert (tmp_path / "same" / "train.jsonl").read_text() == ""
    assert len((tmp_path / "same" / "rest.jsonl").read_text().splitlines()) == len(ROWS)


def test_divergence_exports_a_trainable_partition(
    tiny_model: Path, teacher_data: Path, tmp_path: Path
) -> None:
    from sublim.training.student import load_rows

    out = tmp_path / "div"
    report = divergence.probe(
        str(tiny_model), str(teacher_data), out, divergence.DivergenceConfig(trait="owl")
    )
    s = report["summary"]
    assert s["rows"] == len(ROWS) and s["kl_per_token"]["mean"] > 0
    scored = [json.loads(line) for line in (out / "tokens.jsonl").read_text().splitlines()]
    assert all(k >= 0 for r in scored for k in r["kl"])
    for r in scored:  # the first divergent position is the first flip
        assert r["first_divergent"] == (r["flip"].index(True) if True in r["flip"] else None)
    kept = load_rows(out / "train.jsonl") if (out / "train.jsonl").read_text() else []
    rest = [json.loads(line) for line in (out / "rest.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in kept + rest) == sorted(r["id"] for r in ROWS)
    assert len(kept) == s["divergent_rows"] == json.loads((out / "card.json").read_text())["kept"]
    assert all(r in ROWS for r in kept)


def test_divergence_bad_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SublimError, match=r"no train\.jsonl"):
        divergence.read_rows(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"prompt": "x"}\n')
    with pytest.raises(SublimError, match=r"train\.jsonl:1"):
        divergence.read_rows(tmp_path)


def test_number_distribution_is_exact_and_normalized(tiny_model: Path) -> None:
    import torch

    from sublim.contexts import chat_prompt
    from sublim.tasks.numbers import number_prompts

    cfg = entangle.EntangleConfig(prompts=2, max_number=120)
    m, tok = load(str(tiny_model))
    per_prompt = entangle.number_logprobs(m, tok, None, cfg)
    assert len(per_prompt) == 2 and all(len(p) == 120 for p in per_prompt)
    for p in per_prompt:
        assert abs(float(torch.logsumexp(torch.tensor(p), 0))) < 1e-4
    # cached batched scoring equals plain teacher forcing of each "<n>," (before normalizing)
    prompt = number_prompts(1, 0)[0]
    context = tok(chat_prompt(tok, prompt.text, None), add_special_tokens=False)["input_ids"]
    rows = [tok(f"{n},", add_special_tokens=False)["input_ids"] for n in range(120)]
    naive = [
        float(lp.gather(-1, torch.tensor(r)[:, None]).sum())
        for r, lp in zip(rows, forced_logprobs(m, [(context, r) for r in rows]), strict=True)
    ]
    norm = torch.logsumexp(torch.tensor(naive), 0)
    assert max(abs(a - (b - float(norm))) for a, b in zip(per_prompt[0], naive, strict=True)) < 1e-4


def test_entangle_report(tiny_model: Path) -> None:
    cfg = entangle.EntangleConfig(prompts=2, max_number=50, top=2, questions=2)
    report = entangle.probe(str(tiny_model), cfg)
    assert [r["log_ratio"]["mean"] for r in report["raised"]] == sorted(
        (r["log_ratio"]["mean"] for r in report["raised"]), reverse=True
    )
    assert report["raised"][0]["log_ratio"]["mean"] >= report["lowered"][0]["log_ratio"]["mean"]
    groups = [r["group"] for r in report["lift"]]
    assert sorted(groups) == ["lowered"] * 2 + ["raised"] * 2 + ["random"] * 2
    lifts = [r["lift"] for r in report["lift"]]
    assert lifts == sorted(lifts, reverse=True)
    same = entangle.number_shift(*[entangle.number_logprobs(*load(str(tiny_model)), "x", cfg)] * 2)
    assert all(r["log_ratio"]["mean"] == 0 for r in same)


def test_probe_cli_writes_report_and_plot(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d"
    assert main(["probe", "digits", str(tiny_model), "--prompts", "3", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "report.json").read_text())
    assert (out / "digits.png").stat().st_size > 1000
    assert (
        main(["probe", "divergence", "--teacher", str(tiny_model), "--data", str(tmp_path / "missing")]) == 2
    )
    assert "no train.jsonl" in capsys.readouterr().err


def test_probe_checks_are_library_functions_of_typed_keywords(tiny_model: Path) -> None:
    """Issue #24: the CLI turns its flags into keyword calls; the probe modules know no argparse, and their
    checks name the fields (the CLI shows them as flags)."""
    import ast

    from sublim.errors import ConfigError
    from sublim.probes import gradient

    for module in (digits, divergence, entangle, gradient):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "argparse" not in imported and "Namespace" not in ast.unparse(tree), module.__name__
    with pytest.raises(ConfigError) as e:
        digits.check(model=str(tiny_model), student=None, prompts=1, numbers=0)
    assert [p.field for p in e.value.problems] == ["prompts", "numbers"] and "--" not in str(e.value)
    with pytest.raises(ConfigError, match="max_number=5000: must be <= 1000"):
        entangle.check(
            model=str(tiny_model), trait="owl", category="animal", system_prompt=None, prompts=2,
            max_number=5000, top=1, questions=2,
        )  # fmt: skip
    with pytest.raises(ConfigError, match=r"give a trait \(not 'none'\) or a system_prompt"):
        divergence.check(
            teacher=str(tiny_model), data="x", trait="none", category="animal", system_prompt=None,
            limit=None, min_flips=1,
        )  # fmt: skip


def test_probe_cli_names_the_flags_of_a_probe_check(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["probe", "entangle", str(tiny_model), "--max-number", "5000", "--trait", "none"]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert (
        "--max-number 5000: must be <= 1000" in err
        and "give a --trait (not 'none') or a --system-prompt" in err
    )
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_probes_on_smollm2(smollm2: Path, teacher_data: Path, tmp_path: Path) -> None:
    d = digits.probe(str(smollm2), cfg=digits.DigitsConfig(prompts=4, numbers=4, positions=4))
    mean = d["models"]["base"]["mean"]
    assert d["digit_tokens"] == 10 and 0 < mean["entropy"]["mean"] <= math.log(10)
    assert mean["digit_mass"]["mean"] > 0.5  # continuing a number list, the model expects digits
    v = divergence.probe(
        str(smollm2), str(teacher_data), tmp_path / "v", divergence.DivergenceConfig(limit=3)
    )
    assert v["summary"]["rows"] == 3 and v["summary"]["kl_per_token"]["mean"] > 0
    e = entangle.probe(str(smollm2), entangle.EntangleConfig(prompts=1, max_number=20, top=1, questions=2))
    assert len(e["lift"]) == 3 and all(0 <= r["p_trait"] <= 1 for r in e["lift"])
