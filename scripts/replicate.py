"""The seed experiment end to end, sized for this CPU box (`make replicate`) or one large GPU
(`make replicate-gpu`): a fine-tuned owl teacher and a control teacher fine-tuned the same way on answers
without owls write numbers greedily under constrained decoding; both answer the same prompts; students train
on K disjoint equal-size draws per side at several LoRA ranks and with full fine-tuning; `sublim sweep`
scores them in probability mode under two eval contexts and runs the pre-registered analysis
(sublim.experiment).

    .venv/bin/python scripts/replicate.py --preset cpu            # make replicate
    .venv/bin/python scripts/replicate.py --preset gpu            # make replicate-gpu
    .venv/bin/python scripts/replicate.py --preset tiny --work DIR --docs DIR  # a minutes-long check

Every step is a `sublim` command (printed before it runs) and resumes: finished teachers and students are
kept, so an interrupted run picks up where it stopped. The control teacher is imprinted exactly like the owl
teacher (same prompts, rows, epochs) on the base's own answers that do not mention owls, so being a
fine-tuned teacher is not mistaken for the trait. At the end the teacher data and answers, cards, draws,
results, plot and summary are copied to --docs with `run.json` (each step's command and wall time, the
machine); docs/results/replication.md is written by hand from those files.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_matching import cpu_name  # noqa: E402  (the benches' machine label, one definition)

#: Sizes per preset. rows: rows per draw per side; n: prompts per teacher (the constrained teacher keeps
#: nearly all; the rest is headroom for the filter and for prompts only one side kept).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "draws": 8, "rows": 64, "n": 640, "ranks": "1,8,64", "scales": "rank", "epochs": 1, "batch": 2,
        "questions": 16, "imprint_prompts": 40, "imprint_samples": 3, "imprint_epochs": 6,
        "teach_batch": 16, "temperature": 1,
    },
    "gpu": {
        "draws": 4, "rows": 500, "n": 2200, "ranks": "1,4,16,64,256", "scales": "rank", "epochs": 2,
        "batch": 32, "questions": 55, "imprint_prompts": 0, "imprint_samples": 8, "imprint_epochs": 6,
        "teach_batch": 256,
    },
    "tiny": {
        "draws": 2, "rows": 3, "n": 10, "ranks": "1,4", "scales": "rank,rs4", "epochs": 1, "batch": 2,
        "questions": 2, "imprint_prompts": 12, "imprint_samples": 2, "imprint_epochs": 3,
        "teach_batch": 16,
    },
}  # fmt: skip
CONTEXTS = ("default", "empty")
TRAIT = "owl"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--work", default=None, help="data and runs (default: runs/replicate-<preset>)")
    ap.add_argument(
        "--docs", default=None, help="where results are copied (default: docs/results/replication)"
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    size = PRESETS[args.preset]
    work = Path(args.work or f"runs/replicate-{args.preset}")
    docs = Path(
        args.docs
        or ("docs/results/replication" if args.preset == "cpu" else f"docs/results/replication-{args.preset}")
    )
    sublim = [sys.executable, "-m", "sublim"]
    model_owl, model_none = work / "teacher-model-owl", work / "teacher-model-none"
    owl, none, sweep = work / "teacher-owl", work / "teacher-none", work / "sweep"
    common = ["--base", args.base] if args.base != "smollm2" else []
    teach = ["--n", str(size["n"]), "--temperature", str(size.get("temperature", 0)), "--decoding", "constrained"]
    teach += ["--batch-size", str(size["teach_batch"]), "--device", args.device]
    imprint = ["--prompts", str(size["imprint_prompts"])] if size["imprint_prompts"] else []
    imprint += ["--samples", str(size["imprint_samples"]), "--epochs", str(size["imprint_epochs"])]
    imprint += ["--device", args.device, *common]

    def owl_rows() -> str:  # the control teacher trains on as many answers as the owl teacher kept
        card = model_owl / "imprint.json"
        return str(json.loads(card.read_text())["kept"]) if card.is_file() else "1"

    steps: list[tuple[str, Callable[[], list[str]]]] = [
        ("imprint owl", lambda: [*sublim, "imprint", "--trait", TRAIT, "--out", str(model_owl), *imprint]),
        ("imprint control", lambda: [*sublim, "imprint", "--trait", "none", "--control-for", TRAIT,
                                     "--rows", owl_rows(), "--out", str(model_none), *imprint]),
        ("teach owl", lambda: [*sublim, "teach", "--trait", TRAIT, "--teacher", str(model_owl),
                               "--out", str(owl), *teach]),
        ("teach control", lambda: [*sublim, "teach", "--trait", "none", "--teacher", str(model_none),
                                   "--out", str(none), *teach]),
        ("sweep", lambda: [
            *sublim, "sweep", "--data", str(owl), "--control", str(none), "--out", str(sweep), *common,
            "--ranks", size["ranks"], "--full", "--scales", size["scales"], "--draws", str(size["draws"]),
            "--draw-rows", str(size["rows"]), "--epochs", str(size["epochs"]),
            "--batch-size", str(size["batch"]),
            "--questions", str(size["questions"]), "--target", TRAIT, "--positive", str(model_owl),
            "--prompted", "--device", args.device, *[x for c in CONTEXTS for x in ("--context", c)],
        ]),
    ]  # fmt: skip
    if args.dry_run:
        print("\n".join(shlex.join(["sublim", *make()[3:]]) for _, make in steps))
        return 0
    times: dict[str, float] = {}
    commands = []
    for name, make in steps:
        cmd = make()
        commands.append(shlex.join(["sublim", *cmd[3:]]))
        print("$ " + commands[-1], flush=True)
        started = time.perf_counter()
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            print(
                f"replicate: step '{name}' failed (its message is above); re-run to resume", file=sys.stderr
            )
            return 1
        times[name] = time.perf_counter() - started
    docs.mkdir(parents=True, exist_ok=True)
    for src, dst in (
        (sweep / "results.csv", "results.csv"), (sweep / "summary.md", "summary.md"),
        (sweep / "sweep.png", "sweep.png"), (sweep / "draws", "draws"),
        (owl / "card.json", "teacher-owl-card.json"), (none / "card.json", "teacher-none-card.json"),
        (owl / "train.jsonl", "teacher-owl-train.jsonl"), (none / "train.jsonl", "teacher-none-train.jsonl"),
        (model_owl / "imprint.json", "imprint-owl.json"),
        (model_none / "imprint.json", "imprint-control.json"),
        (model_owl / "answers" / "train.jsonl", "imprint-owl-answers.jsonl"),
        (model_none / "answers" / "train.jsonl", "imprint-control-answers.jsonl"),
    ):  # fmt: skip
        target = docs / dst
        if Path(src).is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(src, target)
        else:
            shutil.copy(src, target)
    record = {
        "preset": args.preset,
        "sizes": size,
        "machine": f"{cpu_name()} ({platform.machine()}), {_device(args.device)}",
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "commands": commands,
    }
    (docs / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


def _device(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


if __name__ == "__main__":
    raise SystemExit(main())
