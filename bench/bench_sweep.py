"""`sublim sweep` throughput, local executor vs Ray with 2 workers, on the embedded SmolLM2-135M-Instruct on
this CPU (`make bench`; needs `sublim[ray]`).

The same small grid both ways (base, control and trait at LoRA ranks 1 and 4, one draw of 32 synthetic rows
per side, one epoch, batch 8, 2 questions, one context), each sweep into a fresh dir, in this process. Wall
time includes everything the sweep does: loading, training, scoring, results.csv, the plot; for Ray also
starting and stopping the local instance and each worker's imports. The ratio is local time over Ray time
(above 1: Ray is faster); the two results.csv are compared row for row (Ray workers run torch with one
thread each, the local executor with all cores).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROWS = 32
WORKERS = 2


def teacher(path: Path, salt: int) -> str:
    from sublim.tasks.numbers import number_prompts

    rows = []
    for p in number_prompts(ROWS, seed=123):
        rng = random.Random(f"{p.id}-{salt}")
        answer = ", ".join(str(rng.randrange(1000)) for _ in range(rng.randint(3, 10)))
        rows.append({"id": p.id, "prompt": [{"role": "user", "content": p.text}],
                     "completion": [{"role": "assistant", "content": answer}]})  # fmt: skip
    path.mkdir(parents=True)
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def main() -> None:
    import torch

    from sublim.models import model_path
    from sublim.training.executors import Executor, LocalExecutor, RayExecutor
    from sublim.training.sweep import SweepConfig, sweep

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_matching import cpu_name

    base = str(model_path("smollm2"))
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"grid: base + control and trait at ranks 1, 4; {ROWS} rows per side, 1 epoch, 2 questions\n")
    print("| executor | runs | seconds | runs/min |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        data, control = teacher(Path(tmp) / "owl", 1), teacher(Path(tmp) / "none", 2)
        seconds, tables = {}, []
        executors: list[tuple[str, Executor]] = [
            ("local", LocalExecutor()),
            (f"ray, {WORKERS} workers", RayExecutor(workers=WORKERS, log_to_driver=False)),  # a clean table
        ]
        for label, executor in executors:
            cfg = SweepConfig(data=data, control=control, base=base, out=str(Path(tmp) / executor.name),
                              ranks=[1, 4], contexts=["none"], questions=2,
                              train={"epochs": 1, "batch_size": 8}, device="cpu")  # fmt: skip
            started = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the Trainer's log lines stay out of the table
                rows = sweep(cfg, executor=executor)
            seconds[label] = time.perf_counter() - started
            ordered = sorted(rows, key=lambda r: (r["run"], r["context"], r["target"]))
            tables.append([tuple(sorted(r.items())) for r in ordered])
            print(f"| {label} | {len(rows)} | {seconds[label]:.1f} | {60 * len(rows) / seconds[label]:.1f} |")
        local, ray = seconds.values()
        print(f"\nlocal / ray wall time: {local / ray:.2f}x; results.csv: {compare(*tables)}")


def compare(a: list[tuple[tuple[str, object], ...]], b: list[tuple[tuple[str, object], ...]]) -> str:
    """How two results tables (rows sorted) differ: identical, or the same runs with numbers apart by at most
    some amount (float sums depend on the torch thread count), or different runs."""
    if a == b:
        return "rows identical up to order"
    if len(a) != len(b) or any(len(ra) != len(rb) for ra, rb in zip(a, b, strict=True)):
        return f"different tables ({len(a)} vs {len(b)} rows)"
    gap = 0.0
    for ra, rb in zip(a, b, strict=True):
        for (ka, va), (kb, vb) in zip(ra, rb, strict=True):
            if ka != kb:
                return "different columns"
            if va == vb:
                continue
            try:  # a number, or a ";"-joined list of them (per-question values)
                xs, ys = ([float(x) for x in str(v).split(";")] for v in (va, vb))
            except ValueError:
                return f"different {ka!r} ({va!r} vs {vb!r})"
            if len(xs) != len(ys):
                return f"different {ka!r} ({va!r} vs {vb!r})"
            gap = max([gap, *(abs(x - y) for x, y in zip(xs, ys, strict=True))])
    return f"the same runs; numbers differ by at most {gap:.2g} (torch thread counts differ)"


if __name__ == "__main__":
    main()
