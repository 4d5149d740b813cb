"""`sublim analyze`: its flags and handler."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sublim.errors import SublimError

#: A sweep's pre-registered primary configuration (written by `sublim sweep --primary` into its dir), read by
#: `sublim analyze <dir>` when --primary is not given.
PRIMARY_FILE = "primary.json"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="the pre-registered transfer analysis of a sweep's results.csv (data draws as the unit)",
    )
    p.add_argument("results", help="a sweep's results.csv, or the sweep dir")
    p.add_argument("--context", default=None, help="primary eval context (default: default, else the first)")
    p.add_argument(
        "--primary",
        default=None,
        help="the pre-registered configuration, e.g. 'lora r8 (rank)', 'r8' or 'full' "
        "(default: the grid's median LoRA rank at scale 'rank')",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise level (default: 0.05)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--margin", type=float, default=None, help=argparse.SUPPRESS)  # v1's TOST margin
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from sublim.experiment import analyze, parse_primary, read_results, render
    from sublim.io import json_safe

    if args.margin is not None:
        raise SublimError(
            "--margin belonged to v1's equivalence test, which the interaction test replaced (issue #23): "
            "drop it"
        )
    if not (0 < args.alpha < 1):
        raise SublimError(f"--alpha {args.alpha} must lie in (0, 1)")
    if args.primary is not None:
        parse_primary(args.primary)  # a label that names no configuration: one line, before reading
    rows = read_results(args.results)
    primary = args.primary or _sweep_primary(Path(args.results))
    result = analyze(rows, primary=primary, context=args.context, alpha=args.alpha)
    if args.json:
        print(json.dumps(json_safe(dataclasses.asdict(result)), allow_nan=False))
    else:
        print(render(result))
    return 0


def _sweep_primary(results: Path) -> str | None:
    """The primary configuration the sweep that wrote `results` was given (its dir's primary.json)."""
    for where in (results, results.parent):
        try:
            primary = json.loads((where / PRIMARY_FILE).read_text()).get("primary")
        except (OSError, ValueError, AttributeError):
            continue
        return str(primary) if primary else None
    return None
