"""`sublim match` and `sublim concepts`: the matcher and the concept vocabulary from the command line.

Both run on the core install: nothing here (or in what it imports) loads torch. They sit in their own module
because their libraries (`sublim.matching`, `sublim.concepts`) hold no command-line code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sublim.cli_options import add_category, add_concepts, add_json, keywords, regular_file
from sublim.errors import SublimError


def add_match_parser(sub: Any) -> None:
    p = sub.add_parser(
        "match",
        help="match answers against a target concept (one JSON object per answer)",
        description="Print how each answer relates to the target: level (exact, fuzzy, related, none), "
        "concept, relation and score, one JSON object per line. Answers come from the arguments, or one per "
        "line on stdin.",
    )
    p.add_argument("responses", nargs="*", metavar="ANSWER")
    p.add_argument("--target", "-t", required=True, help="target concept, e.g. owl")
    add_category(p, short=True, help="concept category (default: animal)")
    add_concepts(p)
    p.add_argument(
        "--related-min",
        type=float,
        default=None,
        help="least score of a related match, in [0, 1] (default 0.75; see docs/results/matching-related.md)",
    )
    p.add_argument(
        "--related", metavar="FILE", help="a `sublim neighbours --out` file: the target's measured neighbours"
    )
    p.set_defaults(func=keywords(run_match))


def add_concepts_parser(sub: Any) -> None:
    p = sub.add_parser("concepts", help="list categories, or the concepts of one")
    p.add_argument("category", nargs="?")
    add_json(p)
    add_concepts(p)
    p.set_defaults(func=keywords(run_concepts))


def _register(concepts: list[str] | None) -> None:
    from sublim.concepts import register_category

    for path in concepts or []:
        regular_file(path, "--concepts")
        register_category(path)


def _stdin_responses() -> list[str]:
    """One response a line, split at "\\n" only (a U+2028 inside an answer does not split it); bytes that
    are not UTF-8 become U+FFFD: the output is JSON."""
    text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []


def run_match(
    *,
    responses: list[str],
    target: str,
    category: str,
    concepts: list[str] | None,
    related_min: float | None,
    related: str | None,
) -> int:
    """`sublim match`: one JSON object per answer (from the arguments, else stdin)."""
    from sublim.concepts import get_category
    from sublim.matching import match, matcher_options

    _register(concepts)
    answers = list(responses)
    if not answers and not sys.stdin.isatty():
        answers = _stdin_responses()
    answers = [r.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for r in answers]
    if not answers:
        raise SublimError("no responses given: pass them as arguments or one per line on stdin")
    cat = get_category(category)
    resolved = cat.resolve(target)  # fail before printing anything
    thresholds, related_sets = matcher_options(cat, related_min, related)
    for response in answers:
        m = match(response, resolved, cat, thresholds=thresholds, related=related_sets.get(resolved, ()))
        print(json.dumps({"response": response, **m.to_dict()}, ensure_ascii=False))
    return 0


def run_concepts(*, category: str | None, json: bool, concepts: list[str] | None) -> int:
    """`sublim concepts`: the categories with their sizes, or one category's concepts (and aliases)."""
    import json as json_module

    from sublim.concepts import category_names, get_category

    _register(concepts)
    if not category:
        for name in category_names():
            print(f"{name}\t{len(get_category(name))} concepts")
        return 0
    cat = get_category(category)
    if json:
        print(json_module.dumps({n: list(c.aliases) for n, c in cat.concepts.items()}, indent=1))
    else:
        for name, concept in sorted(cat.concepts.items()):
            others = ", ".join(concept.aliases[1:])
            print(name + (f"\t({others})" if others else ""))
    return 0
