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
machine); scripts/replication_report.py writes docs/results/replication.md and sensitivity.md from them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
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

#: Sizes per preset. rows: rows per draw per side; n: prompts per teacher (headroom for pairs dropped as
#: echoes or counting runs); doses: the sensitivity curve's planted fractions (dose 0 always runs), at
#: `plant_rank` over `plant_draws` draws; more_n: prompts of a second batch per teacher (--seed 1: other
#: prompts), pooled with the first (SmolLM2-135M echoes the prompt's numbers in about a third of its rows at
#: T = 1, and those pairs are dropped); primary: the pre-registered configuration of the primary test.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "draws": 8, "rows": 64, "n": 640, "ranks": "1,8,64", "scales": "rank", "epochs": 1, "batch": 2,
        "questions": 16, "imprint_prompts": 40, "imprint_samples": 3, "imprint_epochs": 6,
        "teach_batch": 16, "temperature": 1, "primary": "r8", "more_n": 700,
        "doses": "0.02,0.1,0.25,0.45", "plant_rank": 8, "plant_draws": 4,
    },
    "gpu": {
        "draws": 8, "rows": 600, "n": 6000, "ranks": "4,16,64", "scales": "rank", "epochs": 1, "batch": 8,
        "questions": 55, "imprint_prompts": 0, "imprint_samples": 8, "imprint_epochs": 6,
        "teach_batch": 256, "temperature": 1, "primary": "r16", "more_n": 6000,
        "doses": "0.005,0.01,0.02,0.05,0.1", "plant_rank": 16, "plant_draws": 4,
        # one arm near the published open-model dose (10k rows, 3 epochs, LoRA r8, lr 2e-4): the pooled
        # teachers keep about half their 12,000 prompts, so 5,000 rows in one draw
        "literature": {"rows": 5000, "epochs": 3, "rank": 8, "batch": 16},
    },
    "tiny": {
        "draws": 2, "rows": 4, "n": 12, "ranks": "1,4", "scales": "rank,rs4", "epochs": 1, "batch": 2,
        "questions": 2, "imprint_prompts": 12, "imprint_samples": 2, "imprint_epochs": 3,
        "teach_batch": 16, "temperature": 1, "primary": "r4", "more_n": 0,
        "doses": "0.25", "plant_rank": 4, "plant_draws": 2,
    },
}  # fmt: skip
CONTEXTS = ("default", "empty")
TRAIT = "owl"
#: What the primary test is, written to run.json before any student trains (`sublim.experiment`).
PREREGISTRATION = {
    "outcome": "ln P(owl), the whole-word probability of naming an owl, mean over questions",
    "contrast": "trait student - control student of the same data draw (same prompts, same steps)",
    "test": "one-sided paired t-test over data draws (H1: trait > control)",
    "context": CONTEXTS[0],
    "alpha": 0.05,
    "secondary": "tested only if the primary is significant (Holm over them): interaction (primary LoRA "
    "minus full fine-tuning), curvature over log2 rank weighted by each config's own variance, context "
    "dependence; otherwise reported as estimates with intervals",
    "sensitivity": "per draw, one-sided exact sign-flip test over questions of (planted student - control) "
    "ln P(owl) at alpha 0.05; detection rate per dose over draws",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument(
        "--part",
        choices=("replication", "sensitivity", "literature"),
        default="replication",
        help="replication: the pre-registered trait-vs-control design; sensitivity: the planted-dose curve "
        "(after the replication: it reuses its teachers and its dose-0 students); literature: one arm near "
        "the published dose (presets that define it)",
    )
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--work", default=None, help="data and runs (default: runs/replicate-<preset>)")
    ap.add_argument("--docs", default=None, help="where results are copied (default: docs/results/<part>)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--pool", nargs="+", metavar="DIR", help=argparse.SUPPRESS)  # OUT SRC...: one step
    args = ap.parse_args()
    if args.pool:
        pool(Path(args.pool[0]), [Path(p) for p in args.pool[1:]])
        return 0
    size = PRESETS[args.preset]
    work = Path(args.work or f"runs/replicate-{args.preset}")
    suffix = "" if args.preset == "cpu" else f"-{args.preset}"
    docs = Path(args.docs or f"docs/results/{args.part}{suffix}")
    steps = _steps(args, size, work)
    if args.dry_run:
        print("\n".join(_shown(make()) for _, make in steps))
        print(_estimate(size, args.part, Path(f"docs/results/replication{suffix}/run.json")), file=sys.stderr)
        return 0
    record: dict[str, Any] = {
        "preset": args.preset,
        "part": args.part,
        "sizes": size,
        "preregistration": {**PREREGISTRATION, "primary_config": size["primary"]},
    }
    _preregister(docs / "run.json", record)
    times: dict[str, float] = {}
    commands = []
    for name, make in steps:
        cmd = make()
        commands.append(_shown(cmd))
        print("$ " + commands[-1], flush=True)
        started = time.perf_counter()
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            print(
                f"replicate: step '{name}' failed (its message is above); re-run to resume", file=sys.stderr
            )
            return 1
        times[name] = time.perf_counter() - started
    _copy(work, docs, args.part)
    record = json.loads((docs / "run.json").read_text())
    record.update(
        students=len(
            {r["run"] for r in _read_csv(work / "sweep" / "results.csv") if r["kind"] in ("lora", "full")}
        ),
        machine=f"{cpu_name()} ({platform.machine()}), {_device(args.device)}",
        seconds={k: round(v, 1) for k, v in times.items()},
        commands=commands,
    )
    (docs / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


def _steps(
    args: argparse.Namespace, size: dict[str, Any], work: Path
) -> list[tuple[str, Callable[[], list[str]]]]:
    """Each step's name and command: teachers (imprinted owl and matched control), their numbers, then the
    replication sweep or the sensitivity sweep (the same sweep dir, so dose 0's students are reused)."""
    sublim = [sys.executable, "-m", "sublim"]
    model_owl, model_none = work / "teacher-model-owl", work / "teacher-model-none"
    owl, none, sweep = work / "teacher-owl", work / "teacher-none", work / "sweep"
    data_owl, data_none = (
        (work / "teacher-owl-pool", work / "teacher-none-pool") if size["more_n"] else (owl, none)
    )
    common = ["--base", args.base] if args.base != "smollm2" else []
    teach = ["--n", str(size["n"]), "--temperature", str(size["temperature"]), "--decoding", "constrained"]
    teach += ["--batch-size", str(size["teach_batch"]), "--device", args.device]
    imprint = ["--prompts", str(size["imprint_prompts"])] if size["imprint_prompts"] else []
    imprint += ["--samples", str(size["imprint_samples"]), "--epochs", str(size["imprint_epochs"])]
    imprint += ["--device", args.device, *common]

    def owl_rows() -> str:  # the control teacher trains on as many answers as the owl teacher kept
        card = model_owl / "imprint.json"
        return str(json.loads(card.read_text())["kept"]) if card.is_file() else "1"

    design = [
        "--data", str(data_owl), "--control", str(data_none), "--out", str(sweep), *common,
        "--scales", size["scales"],
        "--draw-rows", str(size["rows"]), "--epochs", str(size["epochs"]), "--batch-size", str(size["batch"]),
        "--questions", str(size["questions"]), "--target", TRAIT, "--score", "target", "--drop-degenerate",
        "--match-lengths", "--device", args.device,
    ]  # fmt: skip
    if args.part == "replication":
        last = [
            *sublim, "sweep", *design, "--ranks", size["ranks"], "--full", "--draws", str(size["draws"]),
            "--primary", size["primary"], "--positive", str(model_owl), "--prompted",
            *[x for c in CONTEXTS for x in ("--context", c)],
        ]  # fmt: skip
    elif args.part == "literature":
        if "literature" not in size:
            raise SystemExit(f"replicate: preset {args.preset} has no literature arm")
        arm = size["literature"]
        last = [
            *sublim, "sweep", *design, "--out", str(work / "literature"), "--ranks", str(arm["rank"]),
            "--draws", "1", "--draw-rows", str(arm["rows"]), "--epochs", str(arm["epochs"]),
            "--batch-size", str(arm["batch"]), "--context", CONTEXTS[0],
        ]  # fmt: skip
    else:
        last = [
            *sublim, "sweep", *design, "--ranks", str(size["plant_rank"]),
            "--draws", str(size["plant_draws"]),
            "--primary", f"r{size['plant_rank']}", "--plant", str(model_owl / "answers" / "train.jsonl"),
            "--plant-dose", size["doses"], "--context", CONTEXTS[0],
        ]  # fmt: skip
    return [
        ("imprint owl", lambda: [*sublim, "imprint", "--trait", TRAIT, "--out", str(model_owl), *imprint]),
        ("imprint control", lambda: [*sublim, "imprint", "--trait", "none", "--control-for", TRAIT,
                                     "--rows", owl_rows(), "--out", str(model_none), *imprint]),
        ("teach owl", lambda: [*sublim, "teach", "--trait", TRAIT, "--teacher", str(model_owl),
                               "--out", str(owl), *teach]),
        ("teach control", lambda: [*sublim, "teach", "--trait", "none", "--teacher", str(model_none),
                                   "--out", str(none), *teach]),
        *(_more(sublim, size, work, teach) if size["more_n"] else []),
        (f"sweep ({args.part})", lambda: last),
    ]  # fmt: skip


def _more(
    sublim: list[str], size: dict[str, Any], work: Path, teach: list[str]
) -> list[tuple[str, Callable[[], list[str]]]]:
    """A second batch of prompts per teacher (--seed 1), then each side's two batches pooled into one file."""
    more = [*teach[teach.index("--temperature") :], "--n", str(size["more_n"]), "--seed", "1"]
    out: list[tuple[str, Callable[[], list[str]]]] = []
    for side, trait in (("owl", TRAIT), ("none", "none")):
        model, first, second = (
            work / f"teacher-model-{side}",
            work / f"teacher-{side}",
            work / f"teacher-{side}-s1",
        )
        out.append(
            (
                f"teach {side} (seed 1)",
                lambda m=model, s=second, t=trait: [
                    *sublim,
                    "teach",
                    "--trait",
                    t,
                    "--teacher",
                    str(m),
                    "--out",
                    str(s),
                    *more,
                ],
            )
        )
        out.append(
            (
                f"pool {side}",
                lambda f=first, s=second, side=side: [
                    sys.executable,
                    str(Path(__file__).relative_to(ROOT)),
                    "--pool",
                    str(work / f"teacher-{side}-pool"),
                    str(f),
                    str(s),
                ],
            )
        )
    return out  # fmt: skip


def pool(out: Path, sources: list[Path]) -> None:
    """Rows of several `sublim teach` outputs in one train.jsonl: the k-th source's ids get the prefix
    `b<k>-` (k > 0), so prompts of different batches never pair with each other; card.json names the
    sources and their sha256."""
    import hashlib

    rows = []
    for k, src in enumerate(sources):
        for line in (src / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            if k:
                row["id"] = f"b{k}-{row['id']}"
            rows.append(json.dumps(row, ensure_ascii=False))
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("\n".join(rows) + "\n")
    card = {
        "pooled": [
            {"dir": str(s), "sha256": hashlib.sha256((s / "train.jsonl").read_bytes()).hexdigest()}
            for s in sources
        ],
        "rows": len(rows),
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")


def _estimate(size: dict[str, Any], part: str, measured: Path) -> str:
    """What the part costs in students, optimizer steps and scored questions, and its wall time from the
    seconds per student of a committed run of the same preset (none on record: say so)."""
    if part == "replication":
        configs = len(size["ranks"].split(",")) + 1  # + full fine-tuning
        students = configs * size["draws"] * 2
        steps = students * math.ceil(size["rows"] / size["batch"]) * size["epochs"]
    elif part == "literature":
        arm = size["literature"]
        students, steps = 2, 2 * math.ceil(arm["rows"] / arm["batch"]) * arm["epochs"]
    else:  # dose 0 and the controls come from the replication's sweep dir
        students = len(size["doses"].split(",")) * size["plant_draws"]
        steps = students * math.ceil(size["rows"] / size["batch"]) * size["epochs"]
    contexts = len(CONTEXTS) if part == "replication" else 1
    lines = [
        f"estimate: {students} students, {steps:,} optimizer steps (batch {size['batch']}), "
        f"{students * size['questions'] * contexts:,} scored questions; "
        f"teachers: {2 * (size['n'] + size['more_n']):,} rows"
    ]
    record = json.loads(measured.read_text()) if measured.is_file() else {}
    if record.get("sizes") == size and "sweep (replication)" in record.get("seconds", {}):
        per_student = record["seconds"]["sweep (replication)"] / record["students"]
        lines.append(
            f"estimate: ~{students * per_student / 60:.0f} min for the sweep at the {per_student:.0f} s per "
            f"student measured on {record['machine']}"
        )
    else:
        lines.append(f"estimate: no measured run of this preset on record ({measured}): no wall time")
    return "\n".join(lines)


def _preregister(path: Path, record: dict[str, Any]) -> None:
    """run.json with the design and the primary test, written before any student trains; a resumed run keeps
    the first one (and refuses to run a different design under it)."""
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("preregistration") == record["preregistration"] and old.get("sizes") == record["sizes"]:
            return
        if old.get("preregistration") is not None and "seconds" not in old:
            raise SystemExit(
                f"replicate: {path} pre-registers another design; move it away to start a new one"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(json.dumps({**record, "preregistered_at": stamp}, indent=2) + "\n")


def _copy(work: Path, docs: Path, part: str) -> None:
    """The run's files into --docs: results, summary, plot, draws; for the replication also the teachers'
    data, cards and imprint answers."""
    sweep, owl, none = work / "sweep", work / "teacher-owl", work / "teacher-none"
    model_owl, model_none = work / "teacher-model-owl", work / "teacher-model-none"
    pairs = [
        (sweep / "results.csv", "results.csv"), (sweep / "summary.md", "summary.md"),
        (sweep / "sweep.png", "sweep.png"), (sweep / "draws" / "draws.json", "draws.json"),
    ]  # fmt: skip
    if part == "replication":
        pairs += [
            (owl / "card.json", "teacher-owl-card.json"), (none / "card.json", "teacher-none-card.json"),
            (owl / "train.jsonl", "teacher-owl-train.jsonl"),
            (none / "train.jsonl", "teacher-none-train.jsonl"),
            (model_owl / "imprint.json", "imprint-owl.json"),
            (model_none / "imprint.json", "imprint-control.json"),
            (model_owl / "answers" / "train.jsonl", "imprint-owl-answers.jsonl"),
            (model_none / "answers" / "train.jsonl", "imprint-control-answers.jsonl"),
        ]  # fmt: skip
        for side in ("owl", "none"):  # the pooled data the sweep trained on, and the second batch's card
            if (work / f"teacher-{side}-pool").is_dir():
                pairs += [
                    (work / f"teacher-{side}-pool" / "train.jsonl", f"teacher-{side}-pool-train.jsonl"),
                    (work / f"teacher-{side}-pool" / "card.json", f"teacher-{side}-pool-card.json"),
                    (work / f"teacher-{side}-s1" / "card.json", f"teacher-{side}-s1-card.json"),
                ]
    for src, dst in pairs:
        shutil.copy(src, docs / dst)


def _shown(cmd: list[str]) -> str:
    """A step's command as a user would type it."""
    if cmd[1:3] == ["-m", "sublim"]:
        return shlex.join(["sublim", *cmd[3:]])
    return shlex.join(["python", *cmd[1:]])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _device(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


if __name__ == "__main__":
    raise SystemExit(main())
