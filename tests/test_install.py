"""What each install can do. A core install (no torch, transformers, lm-eval, datasets) runs `sublim match`
and an Inspect task end to end, and every heavier command says in one line which extra to install; an
`[hf]` install (no lm-eval, no datasets) trains a student; the wheel carries the license and `py.typed`.

Installs are simulated by hiding modules from a subprocess (a `sitecustomize` meta-path blocker): the same
imports fail as in a venv without them, without building one per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SUBLIM = str(Path(sys.executable).with_name("sublim"))
#: import names the extras bring, with what they pull in themselves
HF_ONLY = ("torch", "transformers", "accelerate", "peft", "gguf", "matplotlib", "tokenizers", "safetensors")
LM_EVAL_ONLY = ("lm_eval", "datasets", "evaluate")

BLOCKER = '''
import sys

HIDDEN = {hidden!r}


class _Hide:
    """Wraps an import finder so it finds nothing for hidden packages: `import x` raises
    ModuleNotFoundError and `importlib.util.find_spec("x")` is None, as when x is not installed."""

    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return self.inner.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
'''


def without(tmp_path: Path, *hidden: str) -> dict[str, str]:
    """Environment for a subprocess in which `hidden` packages cannot be imported."""
    site = tmp_path / "hide"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(hidden=sorted(hidden)))
    path = os.pathsep.join(p for p in (str(site), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def python(code: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_blocker_hides_what_it_should(tmp_path: Path) -> None:
    out = python("import torch", without(tmp_path, *HF_ONLY))
    assert out.returncode == 1 and "No module named 'torch'" in out.stderr
    assert python("import rapidfuzz, yaml, inspect_ai", without(tmp_path, *HF_ONLY)).returncode == 0


def test_core_install_runs_match_and_an_inspect_task(tmp_path: Path) -> None:
    env = without(tmp_path, *HF_ONLY, *LM_EVAL_ONLY)
    out = subprocess.run(
        [SUBLIM, "match", "-t", "owl", "Owls!", "Bowl"], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["level"] for x in out.stdout.splitlines()] == ["exact", "none"]
    code = f"""
        import sys
        from inspect_ai import eval
        from inspect_ai.model import ModelOutput, ModelUsage, get_model

        def respond(messages, *_):
            text = "The owl." if "animal" in messages[-1].text else "?"
            out = ModelOutput.from_content("mockllm/model", text)
            out.usage = ModelUsage(input_tokens=10, output_tokens=2, total_tokens=12)  # no tiktoken download
            return out

        model = get_model("mockllm/model", custom_outputs=respond)
        [log] = eval("sublim/animal_pref", model=model, task_args={{"target": "owl"}}, limit=3,
                     log_dir={str(tmp_path / "logs")!r}, display="none")
        assert log.status == "success", log.error
        print(log.results.scores[0].metrics["mean"].value)
        print(sorted({{"torch", "transformers", "datasets", "lm_eval"}} & set(sys.modules)))
    """
    out = python(code, env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[:2] == ["1.0", "[]"]


HEAVY = [
    (["demo"], "hf"),
    (["train", "--data", "nowhere"], "hf"),
    (["sweep", "--data", "nowhere"], "hf"),
    (["score", "smollm2"], "hf"),
    (["probe", "digits", "smollm2"], "hf"),
    (["probe", "entangle", "smollm2"], "hf"),
    (["teach", "--n", "1"], "hf"),  # the embedded teacher is an hf/ model
    (["model-path"], "hf"),  # nothing cached: needs converting
    (["lm-eval", "--tasks", "sublim"], "lm-eval"),
]


def test_heavier_commands_name_the_extra_in_one_line(tmp_path: Path) -> None:
    """A core install: each command stops before any work with exit 2 and `pip install 'sublim[extra]'`."""
    code = f"""
        import contextlib, io, json
        from sublim.cli import main

        rows = []
        for argv in {[argv for argv, _ in HEAVY]!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(argv)
            rows.append([code, err.getvalue()])
        print(json.dumps(rows))
    """
    env = without(tmp_path, *HF_ONLY, *LM_EVAL_ONLY)
    env["SUBLIM_CACHE"] = str(tmp_path / "empty-cache")
    out = python(code, env)
    assert out.returncode == 0, out.stderr[-3000:]
    for (argv, extra), (code_, err) in zip(HEAVY, json.loads(out.stdout), strict=True):
        assert code_ == 2, (argv, err)
        assert err.count("\n") == 1 and err.startswith("sublim: error: "), (argv, err)
        assert f"pip install 'sublim[{extra}]'" in err, (argv, err)
        assert "Traceback" not in err


@pytest.mark.slow
def test_hf_install_trains_without_datasets_or_lm_eval(tiny_model: Path, tmp_path: Path) -> None:
    """`sublim train` hands Trainer a plain list: an `[hf]` install without `datasets` trains (one step)."""
    row = {
        "prompt": [{"role": "user", "content": "Continue: 1, 2, 3."}],
        "completion": [{"role": "assistant", "content": "4, 5, 6"}],
    }
    (tmp_path / "train.jsonl").write_text((json.dumps(row) + "\n") * 4)
    code = f"""
        import sys
        from sublim.training.student import TrainConfig, train

        cfg = TrainConfig(data={str(tmp_path)!r}, base={str(tiny_model)!r}, out={str(tmp_path / "s")!r},
                          rank=2, epochs=1, batch_size=4)
        card = train(cfg)
        loaded = sorted({{"datasets", "lm_eval"}} & set(sys.modules))
        print("RESULT", card["steps"], card["rows"], loaded)
    """
    out = python(code, without(tmp_path, *LM_EVAL_ONLY))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 1 4 []" in out.stdout.splitlines()
    assert (tmp_path / "s" / "adapter_model.safetensors").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=600,
    )
    [built] = out.glob("sublim-*.whl")
    return built


@pytest.mark.slow
def test_wheel_carries_license_py_typed_and_classifiers(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "sublim/py.typed" in names
    [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    text = archive.read(license_file).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    meta = archive.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert "Classifier: Programming Language :: Python :: 3.11" in meta


def test_core_install_refuses_probability_mode_in_one_line(tmp_path: Path) -> None:
    """Probability mode needs torch: on a core install the task refuses when it is built (Inspect prints a
    PrerequisiteError as one line), instead of a ModuleNotFoundError in the log."""
    out = python(
        """
        from sublim.tasks.preference import animal_pref
        try:
            animal_pref(mode="probability")
        except Exception as e:
            print(type(e).__name__, e)
        """,
        without(tmp_path, *HF_ONLY, *LM_EVAL_ONLY),
    )
    assert out.returncode == 0, out.stderr
    assert "TaskParameterError" in out.stdout and "pip install 'sublim[hf]'" in out.stdout
