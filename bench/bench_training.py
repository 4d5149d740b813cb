"""`sublim train` throughput on the embedded SmolLM2-135M-Instruct on this CPU (`make bench`).

Each configuration trains in its own process (so peak memory is its own: the process's max RSS) on the same
64 synthetic teacher rows (seeded number lists, no system prompt), batch 8, one epoch = 8 optimizer steps.
Steps/s and tokens/s use the Trainer's training time (model loading excluded); tokens are every token of every
row (prompt + completion), the loss covering only the completion.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROWS = 64
CONFIGS = [("LoRA r1", ["--rank", "1"]), ("LoRA r8", ["--rank", "8"]), ("LoRA r64", ["--rank", "64"]),
           ("full", ["--full"])]  # fmt: skip

CHILD = """
import json, resource, sys
from sublim.training.student import TrainConfig, train
card = train(TrainConfig(**json.loads(sys.argv[1])))
print(json.dumps({"steps": card["steps"], "seconds": card["seconds"],
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic_rows(n: int) -> list[dict[str, object]]:
    from sublim.tasks.numbers import number_prompts

    rows = []
    for p in number_prompts(n, seed=123):
        rng = random.Random(p.id)
        answer = ", ".join(str(rng.randrange(1000)) for _ in range(rng.randint(3, 10)))
        rows.append({"id": p.id, "prompt": [{"role": "user", "content": p.text}],
                     "completion": [{"role": "assistant", "content": answer}]})  # fmt: skip
    return rows


def main() -> None:
    import torch
    from transformers import AutoTokenizer

    from sublim.models import model_path
    from sublim.training.student import tokenize_row

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_matching import cpu_name

    base = str(model_path("smollm2"))
    rows = synthetic_rows(ROWS)
    tok = AutoTokenizer.from_pretrained(base)
    tokens = sum(len(tokenize_row(tok, r, None, 256)["input_ids"]) for r in rows)
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{ROWS} rows, {tokens:,} tokens per epoch, batch 8, 1 epoch\n")
    print("| configuration | steps | steps/s | tokens/s | seconds | peak memory (max RSS) |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        for label, args in CONFIGS:
            cfg = {"data": str(data), "base": base, "out": str(Path(tmp) / label.replace(" ", "-")),
                   "epochs": 1.0, "batch_size": 8, "full": "--full" in args,
                   "rank": int(args[1]) if "--rank" in args else 8}  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True, check=True
            )
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {label} | {r['steps']} | {r['steps'] / r['seconds']:.2f} | {tokens / r['seconds']:,.0f} "
                f"| {r['seconds']:.1f} | {r['max_rss_mb']:,.0f} MB |"
            )


if __name__ == "__main__":
    main()
