"""lm-evaluation-harness glue: the docs, choices and `process_results` hooks the YAML in task_configs/ names.

    sublim lm-eval --model hf --model_args pretrained=DIR --device cpu --tasks sublim_animal_pref_lp \\
        --apply_chat_template --metadata '{"target": "owl"}'

Everything here calls the same core as the Inspect tasks (question bank, matcher, `sublim.scoring`), so the
two harnesses report the same quantities under the same names. Task options travel through lm-eval's
`--metadata` JSON (or `TaskManager(metadata=...)`): `target` ("owl" or "owl,cat"), `numbers_prefix` (a
count), `seed`, `questions` (a question file), `concepts` (a concept file for your own category).
lm-eval is never imported here: it imports us.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

from sublim.concepts import Category, category_names, get_category, register_category
from sublim.errors import SublimError, UnknownConceptError
from sublim.probability import ends_word
from sublim.scoring import concept_probs, score_answer, target_mass, target_names
from sublim.tasks.questions import check_numbers, load_questions, question_records


def lm_eval_include_path() -> Path:
    """The folder of sublim's lm-eval YAML tasks, for `--include_path` / `TaskManager(include_path=...)`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "task_configs", here.parent / "task_configs"):  # wheel, then source checkout
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("sublim's task_configs folder is missing from this installation")


def preference_docs(category: str = "animal", **metadata: Any) -> Any:
    """lm-eval `custom_dataset`: one doc per question, targets from `--metadata`."""
    import datasets

    if metadata.get("concepts"):
        register_category(str(metadata["concepts"]))
    cat = get_category(category)
    targets = ",".join(_resolve_targets(cat, metadata.get("target") or ""))
    records = question_records(
        cat.name,
        metadata.get("questions"),
        numbers=check_numbers(metadata.get("numbers_prefix"), "--metadata numbers_prefix"),
        seed=_seed(metadata.get("seed")),
    )
    terms = "".join(terminators(metadata.get("terminators")))  # one character each
    docs = [{**r, "targets": targets, "terminators": terms} for r in records]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def check_metadata(metadata: dict[str, Any]) -> None:
    """The task options sublim's lm-eval tasks read (`--metadata`, merged over `--model_args` as lm-eval
    merges them), checked before lm-eval starts: lm-eval builds the model before its tasks, so a bad option
    found by the task itself would cost a model load and end in a traceback."""
    if metadata.get("concepts"):
        register_category(str(metadata["concepts"]))
    check_numbers(metadata.get("numbers_prefix"), "--metadata numbers_prefix")
    _seed(metadata.get("seed"))
    if metadata.get("questions"):
        load_questions("animal", str(metadata["questions"]))
    target = metadata.get("target")
    if target in (None, ""):
        return
    if isinstance(target, dict):
        for name, value in target.items():
            _resolve_targets(get_category(str(name)), value or "")
        return
    if not isinstance(target, str | list):
        raise SublimError(f"--metadata target={target!r}: expected a concept name, e.g. owl")
    for name in target_names(target):
        if not any(_knows(get_category(c), name) for c in category_names()):
            get_category("animal").resolve(name)  # raises, with the closest valid names


def _seed(value: Any) -> int:
    if value in (None, ""):
        return 0
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not str(value).strip().lstrip("-").isdigit()
    ):
        raise SublimError(f"--metadata seed={value!r}: expected an integer")
    return int(value)


def _resolve_targets(cat: Category, target: Any) -> list[str]:
    """The targets for this category. `target` is "owl", "owl,cat", a list, or a mapping per category
    ({"animal": "owl", "tree": "oak"}), so the `sublim` tag can run every task with one --metadata. A name
    that belongs to another category is skipped here, said in one line; a name of no category is an error."""
    import logging

    if isinstance(target, dict):
        target = target.get(cat.name) or ""
    out = []
    for name in target_names(target):
        try:
            out.append(cat.resolve(name))
        except UnknownConceptError:
            if not any(_knows(get_category(other), name) for other in category_names() if other != cat.name):
                raise
            logging.getLogger("sublim").warning(
                "sublim: target %r is not a %s concept: the %s tasks report no target rate",
                name,
                cat.name,
                cat.name,
            )
    return out


def _knows(cat: Category, name: str) -> bool:
    try:
        cat.resolve(name)
    except UnknownConceptError:
        return False
    return True


def _targets(doc: dict[str, Any]) -> list[str]:
    return [t for t in str(doc.get("targets") or "").split(",") if t]


def process_sampled(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """generate_until: the `repeats` answers to one question -> its target / related / named rates.

    lm-eval then averages over questions, so its standard error treats each question as one cluster.
    """
    scores = [score_answer(answer, _targets(doc), doc["category"]) for answer in results]
    n = len(scores)
    return {
        "target_rate": sum(s.target for s in scores) / n,
        "related_rate": sum(s.related for s in scores) / n,
        "named_rate": sum(s.named for s in scores) / n,
    }


#: lm-eval scores each choice as one fixed string, so it cannot sum over every word boundary the way
#: `sublim.probability` does. Each name is scored followed by each of these terminators, which carry most of
#: the boundary mass after a one-word answer (docs/results/lm-eval-gap.md measures the difference on SmolLM2).
#: A terminator also ends the word, so "ant" no longer includes "antelope". Task metadata picks others
#: (`--metadata '{"terminators": "."}'`, each character one terminator), trading closeness for cost.
TERMINATORS = (".", ",", "!")


def terminators(value: Any = None) -> tuple[str, ...]:
    """The terminators a task's metadata asks for: a string of one-character terminators (".,!") or a list;
    the default is `TERMINATORS`. Each must end a word (punctuation or a symbol)."""
    if value is None or value == "":
        return TERMINATORS
    chosen = tuple(dict.fromkeys(value if isinstance(value, str) else map(str, value)))
    bad = [t for t in chosen if len(t) != 1 or not ends_word(t) or t.isspace()]
    if bad:
        raise SublimError(f'terminators {bad!r}: give one-character punctuation marks, e.g. ".,!"')
    return chosen


def _doc_terminators(doc: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(doc.get("terminators") or "")) or TERMINATORS


@cache
def _names(category: str, terms: tuple[str, ...] = TERMINATORS) -> tuple[tuple[str, str], ...]:
    """(concept, choice text) for every name of every concept, each followed by every terminator."""
    return tuple((c, name + t) for c, name in get_category(category).names() for t in terms)


def choices(doc: dict[str, Any]) -> list[str]:
    """multiple_choice: every name of every concept with each terminator (lm-eval puts target_delimiter " "
    before each)."""
    return [name for _, name in _names(doc["category"], _doc_terminators(doc))]


def process_loglikelihood(doc: dict[str, Any], results: list[tuple[float, bool]]) -> dict[str, float]:
    """multiple_choice: log-likelihood of every terminated name -> P(target), P(related) and concept_mass,
    with P(target) as `sublim.scoring.target_mass` defines it (each name judged as the answer it is)."""
    cat = get_category(doc["category"])
    scored = [
        (concept, choice[:-1], ll)  # every terminator is one character
        for (concept, choice), (ll, _greedy) in zip(
            _names(doc["category"], _doc_terminators(doc)), results, strict=True
        )
        if math.isfinite(ll)
    ]
    _, mass = concept_probs(((c, ll) for c, _, ll in scored), list(cat.concepts))
    spelled = list(dict.fromkeys(name for _, name, _ in scored))
    names, _ = concept_probs(((name, ll) for _, name, ll in scored), spelled)
    p_target, p_related = target_mass(names, _targets(doc), cat)
    return {"p_target": p_target, "p_related": p_related, "concept_mass": mass}


def add_parser(sub: Any) -> None:
    """`sublim lm-eval ARGS...`: every argument passes through to lm-eval."""
    import argparse

    from sublim.cli_options import keywords

    p = sub.add_parser(
        "lm-eval",
        help="lm-evaluation-harness with sublim's tasks on the include path (arguments pass through)",
        description="Runs `lm-eval [run|ls|validate] --include_path <sublim task_configs> ARGS...`.",
        prefix_chars="\0",  # pass every option through untouched
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=keywords(run_lm_eval))


def run_lm_eval(args: list[str]) -> int:
    """Run lm-eval with sublim's task folder on the include path (all other arguments pass through). The
    arguments are checked first, parsed by lm-eval's own parser; lm-eval then runs under
    `sublim.lmeval.lm_eval_main`, which registers the `sublim-hf` backend (where torch is installed) and
    checks the model arguments again where the model is built."""
    import subprocess
    import sys

    rest = list(args)
    command = rest.pop(0) if rest and rest[0] in ("run", "ls", "validate") else "run"
    forwarded = [command, "--include_path", str(lm_eval_include_path()), *rest]
    check_lm_eval_args(forwarded)
    guard = "import sys; from sublim.lmeval import lm_eval_main; sys.exit(lm_eval_main())"
    return subprocess.call([sys.executable, "-c", guard, *forwarded])


def check_lm_eval_args(argv: list[str]) -> None:
    """lm-eval's arguments as lm-eval reads them (its parser: every alias of --model_args, key=value and JSON
    forms, values split across tokens, `--trust_remote_code`, a --config YAML beneath): no remote code,
    local checkpoints checked like sublim's own loads, and sublim's task options (--metadata) checked before
    lm-eval builds the model. Arguments lm-eval itself cannot parse are left for lm-eval to report."""
    import contextlib
    import io

    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.utils import simple_parse_args_string

    from sublim.errors import one_line
    from sublim.models import check_lm_eval_model

    if argv[0] != "run":
        return
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            namespace = HarnessCLI()._parser.parse_args(argv)
    except SystemExit:
        return
    settings: dict[str, object] = {}
    if getattr(namespace, "config", None):
        from lm_eval.config.evaluate_config import EvaluatorConfig

        try:
            settings.update(EvaluatorConfig.load_yaml_config(namespace.config))
        except (OSError, ValueError, TypeError) as e:
            raise SublimError(f"--config {namespace.config}: {one_line(e)}") from None
    # lm-eval's precedence: command-line values over the YAML's, key by key
    settings.update(
        {k: v for k, v in vars(namespace).items() if (v or v == 0) and k not in ("command", "func")}
    )

    def as_dict(value: object, flag: str) -> dict[str, object]:
        if value is None:
            return {}
        if isinstance(value, str):
            return dict(simple_parse_args_string(value))
        if not isinstance(value, dict):
            raise SublimError(f"{flag}: expected key=value pairs or a JSON object, not {value!r}")
        return value

    model_args = as_dict(settings.get("model_args"), "--model_args")
    if settings.get("trust_remote_code"):
        model_args = {**model_args, "trust_remote_code": True}
    check_lm_eval_model(model_args)
    if settings.get("model") == "sublim-hf":  # what the backend cannot score exactly, before lm-eval starts
        from sublim.lmeval_backend import refuse_before_loading

        refuse_before_loading(model_args)
    check_metadata({**model_args, **as_dict(settings.get("metadata"), "--metadata")})


def lm_eval_main() -> int:
    """lm-eval's own command line (`sys.argv[1:]`) with sublim's loading rules applied where lm-eval builds
    the model: whatever route the arguments took (a --config file included), the final model arguments pass
    `check_lm_eval_model` or nothing loads. `sublim lm-eval` runs lm-eval through this."""
    import importlib.util
    import sys

    from lm_eval import utils
    from lm_eval.__main__ import cli_evaluate
    from lm_eval.api.model import LM

    from sublim.models import check_lm_eval_model

    if all(map(importlib.util.find_spec, ("torch", "transformers"))):
        import sublim.lmeval_backend  # noqa: F401  (registers the `sublim-hf` backend)

    from_obj, from_string = LM.create_from_arg_obj.__func__, LM.create_from_arg_string.__func__

    def checked_obj(
        cls: Any, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None
    ) -> Any:
        check_lm_eval_model({**(arg_dict or {}), **(additional_config or {})})
        return from_obj(cls, arg_dict, additional_config)

    def checked_string(cls: Any, arg_string: str, additional_config: dict[str, Any] | None = None) -> Any:
        check_lm_eval_model({**utils.simple_parse_args_string(arg_string), **(additional_config or {})})
        return from_string(cls, arg_string, additional_config)

    LM.create_from_arg_obj = classmethod(checked_obj)
    LM.create_from_arg_string = classmethod(checked_string)
    sys.argv[0] = "lm-eval"
    try:
        cli_evaluate()
    except SublimError as e:
        print(f"sublim: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # `python -m sublim.lmeval run ...`: lm-eval under the guard, sublim-hf registered
    import sys

    sys.exit(lm_eval_main())
