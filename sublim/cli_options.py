"""The options several `sublim` commands share, defined once (each command's `add_parser` adds them), and the
checks behind them: the device and the seed (`check_device`, `seed_problem`: the library's own settings checks
call these too), KEY=VALUE pairs and integer lists. Defaults come from the library (`defaults_of` reads a
dataclass's fields or a function's keyword defaults), so the CLI and the Python API cannot drift apart.

Nothing here imports torch at import time (a named CUDA device is checked with it): building the parser stays
cheap and `sublim match` loads no model code.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

from sublim.errors import SublimError

#: the --device help every model command shows
DEVICE_HELP = "auto (CUDA when present, bfloat16 there; else the CPU), cpu, cuda, cuda:N (default: auto)"
#: what a command that resumes its own run says --overwrite is for
RESUMES = "this command's run of the same inputs, which is then resumed or, if complete, left as is"
#: the Namespace entry of a command's `field_flags` overrides
_FIELD_FLAGS = "field_flags"
#: argparse's own entries in a Namespace, never a handler's keyword
_ARGPARSE_KEYS = ("command", "func", _FIELD_FLAGS)


def defaults_of(source: Any) -> dict[str, Any]:
    """Field -> default of a dataclass, or parameter -> default of a function (those that have one): the one
    place a command's defaults come from."""
    if dataclasses.is_dataclass(source):
        out = {}
        for f in dataclasses.fields(source):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out
    return {
        name: p.default
        for name, p in inspect.signature(source).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def keywords(handler: Callable[..., int]) -> Callable[[argparse.Namespace], int]:
    """A command handler that takes keywords, called with argparse's Namespace (its own keys dropped)."""

    def call(args: argparse.Namespace) -> int:
        return handler(**{k: v for k, v in vars(args).items() if k not in _ARGPARSE_KEYS})

    call.__name__ = call.__qualname__ = handler.__name__
    return call


def field_flags(p: argparse.ArgumentParser, **overrides: str) -> None:
    """The flags of a command's config fields where the field is not the flag's dest (`SweepConfig.contexts`
    is set by `--context`); every other field's flag is the option whose dest it is (`flag_namer`)."""
    p.set_defaults(**{_FIELD_FLAGS: overrides})


def flag_namer(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Callable[[str], str | None]:
    """Field -> the flag the user typed for it on the command `args` ran, so a `ConfigError` that names
    fields reads in flags: the command's `field_flags` overrides, else the option whose dest is the field
    (dest `lora_rank` <-> `--lora-rank`), else for a nested field (`train.epochs`) the option of its last
    part; None where the command has no such flag (the field's name is then shown)."""
    leaf = parser
    while subs := [a for a in leaf._actions if isinstance(a, argparse._SubParsersAction)]:
        name = getattr(args, subs[0].dest, None)
        if name not in subs[0].choices:
            break
        leaf = subs[0].choices[name]
    dests = {
        a.dest: max(a.option_strings, key=len) for a in leaf._actions if a.option_strings and a.dest != "help"
    }
    overrides: dict[str, str] = getattr(args, _FIELD_FLAGS, None) or {}

    def flag(field: str) -> str | None:
        return overrides.get(field) or dests.get(field) or dests.get(field.rpartition(".")[2])

    return flag


def key_values(
    pairs: Sequence[str] | None, flag: str, form: str = "KEY=VALUE", example: str = ""
) -> dict[str, str]:
    """Repeated `KEY=VALUE` options (-M, --slurm) as a dict, values as written; a pair without "=" or key is
    one line naming the flag."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SublimError(f"{flag} {pair!r}: expected {form}" + (f", e.g. {example}" if example else ""))
        out[key.strip()] = value
    return out


def int_list(text: str, flag: str) -> list[int]:
    """Comma-separated integers (--ranks, --seeds, --ban); blanks between commas are skipped."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SublimError(f"{flag} {text!r}: expected comma-separated integers, e.g. 1,4,16") from None


def regular_file(path: str, flag: str) -> None:
    """Refuse a path that exists but is not a regular file (a FIFO would block forever), saying what it is;
    a missing file is left to the reader, which names what it expected."""
    from sublim.io import file_problem

    problem = file_problem(path)
    if problem and problem != "no such file":
        raise SublimError(f"{flag} {path} {problem}; give a file")


# ----------------------------------------------------------------- devices and seeds, checked before any load

DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


_DEVICE_HINT = "use auto (CUDA when present), cpu, cuda, cuda:N or mps"


def _device_problem(device: str) -> str | None:
    """Why sublim cannot place a model on `device`, or None. A named accelerator must be visible (torch is
    imported only to ask)."""
    if not DEVICES.match(device):
        return _DEVICE_HINT
    if device.startswith("cuda"):
        import torch

        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return f"no such CUDA device here ({torch.cuda.device_count()} visible); use auto or cpu"
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            return "no MPS device here; use auto or cpu"
    return None


def check_device(device: str) -> str:
    """`device` if sublim can place a model there (auto, cpu, mps, cuda, cuda:N), else one clear error."""
    problem = _device_problem(device)
    if problem:
        raise SublimError(f"--device {device!r}: {problem}")
    return device


def device_argument(text: str) -> str:
    """`check_device` as an argparse type (argparse prints the message as its one-line usage error)."""
    problem = _device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


#: the seeds every library sublim seeds accepts (numpy's legacy seeding stops at 2**32 - 1)
MAX_SEED = 2**32 - 1


def seed_problem(seed: int, flag: str = "--seed") -> str | None:
    """Why `seed` cannot seed a run (None when it can), checked before anything loads or --out is claimed."""
    if not 0 <= seed <= MAX_SEED:
        return f"{flag} {seed}: expected an integer from 0 to {MAX_SEED}"
    return None


def seed_argument(text: str) -> int:
    """A --seed as an argparse type: an integer in [0, MAX_SEED] (one line from argparse otherwise)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer from 0 to {MAX_SEED}") from None
    if seed_problem(seed):
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer from 0 to {MAX_SEED}")
    return seed


# ----------------------------------------------------------------------------------------- shared options


def add_device(p: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    """--device, checked when parsed (an unknown or absent accelerator is argparse's one-line error)."""
    p.add_argument("--device", type=device_argument, default="auto", help=help)


def add_overwrite(p: argparse.ArgumentParser, keeps: str = RESUMES) -> None:
    """--overwrite: without it an existing --out is refused unless it holds `keeps`."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace an existing --out (default: refuse it unless it holds {keeps})",
    )


def add_out(p: argparse.ArgumentParser, default: str | None, help: str) -> None:
    """--out, checked when parsed (`sublim.io.out_argument`: a path sublim can create)."""
    from sublim.io import out_argument

    p.add_argument("--out", type=out_argument, default=default, help=help)


def add_seed(p: argparse.ArgumentParser, default: int = 0, help: str | None = None) -> None:
    """--seed: an integer every seeded library accepts (`seed_argument`)."""
    p.add_argument("--seed", type=seed_argument, default=default, help=help)


def add_base(p: argparse.ArgumentParser, flag: str = "--base", default: str = "smollm2") -> None:
    """The model a command starts from (--base, or --model where the command has no student)."""
    p.add_argument(flag, default=default, help=f"hub id, local dir, .gguf file, or {default} (default)")


def add_category(
    p: argparse.ArgumentParser, default: str = "animal", short: bool = False, help: str | None = None
) -> None:
    """--category (-c where `short`): the concept category."""
    flags = ("--category", "-c") if short else ("--category",)
    p.add_argument(*flags, default=default, help=help)


def add_concepts(p: argparse.ArgumentParser) -> None:
    """--concepts FILE, repeatable: extra concept files registered before the command runs."""
    p.add_argument("--concepts", action="append", metavar="FILE", help="extra concept file (YAML/JSON)")


def add_json(p: argparse.ArgumentParser, help: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=help)
