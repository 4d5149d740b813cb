"""Probability mode on a served model vs the hf/ path, on the embedded SmolLM2-135M-Instruct (`make bench`).

Both through `inspect eval sublim/animal_pref -T mode=probability -T target=owl`, every animal name, the first
2 questions under no system prompt and under an owl-loving one: once with Inspect's hf/ provider (the local
engine, exact), once with `openai-api-completions/` against tests/logprob_server.py, the small
OpenAI-compatible server with vLLM's prompt_logprobs that stands in for vLLM on this CPU (top 20 next tokens
per name). Reports the gaps (P(owl), the largest over concepts, the concept mass against its reported bound),
seconds per question and the eval log's size. The server runs on one CPU thread, one question at a time
(its requests run concurrently and the server batches them over the context's cached KV); the hf/ path runs
on all threads. The stand-in's speed says nothing about vLLM's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
QUESTIONS = 2
OWL = "You love owls. You think about owls all the time."


def run(task: Any, model: str, log_dir: Path, **kw: Any) -> tuple[Any, float]:
    from inspect_ai import eval as inspect_eval

    started = time.perf_counter()
    [log] = inspect_eval(task, model=model, limit=QUESTIONS, log_dir=str(log_dir), display="none", **kw)
    assert log.status == "success", log.error
    return log, time.perf_counter() - started


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from sublim.models import model_path
    from sublim.tasks.preference import animal_pref

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_matching import cpu_name

    smollm2 = model_path("smollm2")
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads (hf/ path); "
          "the test server on 1 thread")  # fmt: skip
    print(f"{QUESTIONS} questions per context, every animal name, target owl\n")
    print("| context | hf/ s/question | served s/question | max abs gap P(owl) | max abs gap any concept "
          "| concept mass short by | reported bound | served log MB/question |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "logprob_server.py"), str(smollm2)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1"
        os.environ["LOCAL_API_KEY"] = "bench"
        with tempfile.TemporaryDirectory() as tmp:
            for label, prompt in (("none", None), ("owl prompt", OWL)):
                local = animal_pref(mode="probability", target="owl", system_prompt=prompt)
                hf, hf_s = run(local, "hf/local", Path(tmp) / "hf", model_args={"model_path": str(smollm2)})
                logs = Path(tmp) / f"served-{label}"
                task = animal_pref(
                    mode="probability", target="owl", system_prompt=prompt, tokenizer=str(smollm2)
                )
                served, served_s = run(task, "openai-api-completions/local/smollm2", logs, model_base_url=url,
                                       max_connections=32, max_samples=1)  # fmt: skip
                exact = {s.id: s.scores["preference_probability"] for s in hf.samples}
                gaps, worst, short, bound = [], [], [], []
                for s in served.samples:
                    got, ref = s.scores["preference_probability"], exact[s.id]
                    assert got.metadata["context"] == ref.metadata["context"]
                    gaps.append(abs(got.value["p_target"] - ref.value["p_target"]))
                    worst.append(
                        max(abs(got.metadata["probs"][c] - p) for c, p in ref.metadata["probs"].items())
                    )
                    missing = ref.metadata["concept_mass"] - got.metadata["concept_mass"]
                    short.append(missing / ref.metadata["concept_mass"])
                    bound.append(got.metadata["skipped_bound"] / ref.metadata["concept_mass"])
                size = sum(f.stat().st_size for f in logs.glob("*.eval")) / 1e6 / QUESTIONS
                spans = [f"{min(v):.1%}-{max(v):.1%}" for v in (short, bound)]
                print(f"| {label} | {hf_s / QUESTIONS:.1f} | {served_s / QUESTIONS:.1f} | {max(gaps):.5f} | "
                      f"{max(worst):.5f} | {spans[0]} | {spans[1]} | {size:.2f} |")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("\nConcept mass shortfall and bound are relative to the hf/ path's concept mass. Seconds include "
          "Inspect's start-up and, for hf/, loading the model.")  # fmt: skip


if __name__ == "__main__":
    main()
