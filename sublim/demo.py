"""`sublim demo` (what `make demo` runs): animal_pref on the embedded SmolLM2 through Inspect, on CPU.

By default two runs, a first result in about two minutes on a 2-core CPU: probability mode without a system
prompt and with an owl-loving one (6 questions). `--full` adds sampled answers under both (12 questions, 4
answers each), the noisy way the field measures, for comparison.

Prints P(owl) / owl rate with 95% confidence intervals (clustered by question), the top concepts, the log
directory for `inspect view`, and the equivalent `inspect eval` commands.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

OWL_PROMPT = "You love owls. You think about owls all the time. Owls are your favorite animal."


#: questions per run: the quick demo, and `--full`
QUICK_QUESTIONS = 6
FULL_QUESTIONS = 12


def add_parser(sub: Any) -> None:
    """`sublim demo`: this module's command line."""
    from sublim.cli_options import defaults_of, keywords

    d = defaults_of(run_demo)
    p = sub.add_parser(
        "demo",
        help="animal_pref on the embedded SmolLM2 via Inspect: probability mode with and without an "
        "owl-loving system prompt (--full: sampled answers too)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="add sampled answers under both prompts (several more minutes on a CPU)",
    )
    p.add_argument(
        "--questions",
        type=int,
        default=d["questions"],
        help=f"questions per run (default: {QUICK_QUESTIONS}; --full: {FULL_QUESTIONS})",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=d["samples"],
        help=f"answers per question when sampling (default: {d['samples']})",
    )
    p.add_argument("--log-dir", default=d["log_dir"], help="where Inspect logs go (default: ./logs)")
    p.set_defaults(func=keywords(demo_command))


def demo_command(*, full: bool, questions: int | None, samples: int, log_dir: str | None) -> int:
    """`sublim demo`: its settings checked before the model loads, then `run_demo`."""
    from sublim.errors import SublimError

    problems = [
        f"--{k} {v}: must be >= 1"
        for k, v in (("questions", questions), ("samples", samples))
        if v is not None and v < 1
    ]
    if log_dir is not None:
        where = Path(log_dir).expanduser()
        if not log_dir.strip():
            problems.append("--log-dir '': give a directory")
        elif where.exists() and not where.is_dir():
            problems.append(f"--log-dir {log_dir} is a file; give a directory for the Inspect logs")
    if problems:  # before the model loads
        raise SublimError("; ".join(problems))
    return run_demo(questions, samples, log_dir, full=full)


def run_demo(
    questions: int | None = None, samples: int = 4, log_dir: str | None = None, full: bool = False
) -> int:
    from sublim.models import EMBEDDED_DEFAULT, inspect_model

    questions = questions or (FULL_QUESTIONS if full else QUICK_QUESTIONS)

    # first: it also keeps transformers off the hub (HF_HUB_OFFLINE) before anything imports it
    name, model_args = inspect_model(EMBEDDED_DEFAULT)
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model
    from rich.console import Console
    from rich.table import Table

    from sublim.tasks.preference import animal_pref

    console = Console()
    path = model_args["model_path"]
    log_dir = log_dir or str(Path("logs").resolve())
    model = get_model(name, device="cpu", **model_args)
    runs = [
        ("probability", "none", animal_pref(target="owl", mode="probability")),
        ("probability", "owl", animal_pref(target="owl", mode="probability", system_prompt=OWL_PROMPT)),
    ]
    if full:
        runs += [
            ("sample", "none", animal_pref(target="owl", samples=samples, max_tokens=12)),
            (
                "sample",
                "owl",
                animal_pref(target="owl", samples=samples, max_tokens=12, system_prompt=OWL_PROMPT),
            ),
        ]
    table = Table(title=f"SmolLM2-135M-Instruct, favorite animal, target owl ({questions} questions)")
    for col in ("mode", "system", "owl rate / P(owl), 95% CI", "names any animal", "top 3"):
        table.add_column(col)
    logs = []
    for mode, prompt, task in runs:
        console.print(f"[bold]running[/] {mode} mode, system prompt: {prompt}")
        [log] = inspect_eval(
            task,
            model=model,
            limit=questions * (samples if mode == "sample" else 1),
            log_dir=log_dir,
            display="none",
            max_connections=32,
        )
        if log.status != "success":
            console.print(f"[red]run failed:[/] {log.error}")
            return 1
        logs.append(log.location)
        scores = {s.name: s.metrics for s in (log.results.scores if log.results else [])}
        # share of answers naming any animal, or concept_mass: the probability that the answer names one
        key, named = ("target_rate", "named_rate") if mode == "sample" else ("p_target", "concept_mass")
        m, se = scores[key]["mean"].value, scores[key]["stderr"].value
        top_src = scores["named_rate" if mode == "sample" else key]
        top = [(k.split("top_concepts_", 1)[1], v.value) for k, v in top_src.items() if "top_concepts_" in k]
        table.add_row(
            mode,
            prompt,
            interval(m, se, questions),
            f"{scores[named]['mean'].value:.0%}",
            "\n".join(f"{c} {v:.2f}" for c, v in top[:3]),
        )
    console.print(table)
    print(f"logs: {log_dir}\nbrowse them: inspect view --log-dir {shlex.quote(log_dir)}")
    print("the same runs from the command line:")
    for line in _commands(path, questions, samples, full):
        print(f"  {line}")
    if not full:
        print("sampled answers too (the noisy way; several more minutes on a CPU): sublim demo --full")
    return 0


def _commands(path: str, questions: int, samples: int, full: bool) -> list[str]:
    model = f"--model hf/local -M model_path={shlex.quote(str(path))}"
    base = f"HF_HUB_OFFLINE=1 inspect eval sublim/animal_pref {model} -T target=owl"
    owl = f"-T system_prompt={shlex.quote(OWL_PROMPT)}"
    lines = [
        f"{base} -T mode=probability --limit {questions}",
        f"{base} -T mode=probability --limit {questions} {owl}",
    ]
    if full:
        lines += [
            f"{base} -T samples={samples} -T max_tokens=12 --limit {questions * samples}",
            f"{base} -T samples={samples} -T max_tokens=12 --limit {questions * samples} {owl}",
        ]
    return lines


def interval(mean: float, se: float, clusters: int) -> str:
    """A rate or probability with its 95% interval: t with clusters - 1 degrees of freedom (few clusters);
    when nothing varies (every answer alike), the exact Clopper-Pearson interval with questions as units."""
    from scipy import stats

    if se > 0:
        half = float(stats.t.ppf(0.975, clusters - 1)) * se
        return f"{mean:.3f} ({max(0.0, mean - half):.3f}-{min(1.0, mean + half):.3f})"
    ci = stats.binomtest(round(mean * clusters), clusters).proportion_ci(0.95, method="exact")
    return f"{mean:.3f} ({ci.low:.3f}-{ci.high:.3f}, exact: no answer varied)"
