"""The `sublim` command line. Subcommands import what they need when they run (torch only for models)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

from sublim.errors import ConfigError, SublimError, one_line, require_extra

#: commands that need an optional extra: checked before they start, so a core install gets one line saying
#: what to install (`teach` and `model-path` need [hf] only for the embedded model: checked where they start)
_HF = ("torch", "transformers")
COMMAND_EXTRAS = {
    "demo": ("hf", _HF),
    "train": ("hf", (*_HF, "peft", "accelerate")),
    "imprint": ("hf", (*_HF, "peft", "accelerate")),
    "sweep": ("hf", (*_HF, "peft", "accelerate", "matplotlib")),
    "score": ("hf", _HF),
    "neighbours": ("hf", _HF),
    "probe": ("hf", (*_HF, "matplotlib")),
    "lm-eval": ("lm-eval", ("lm_eval",)),
}

DEBUG_ENV = "SUBLIM_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage stays behind --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: one line, resumable state, exit 143."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    from sublim.errors import _STOPPED, stop_requested

    def handler(signum: int, frame: FrameType | None) -> None:
        error: BaseException = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        stop_requested(error)  # kept: a finalizer that swallows it cannot make the run go on
        raise error

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _STOPPED.clear()


def build_parser() -> argparse.ArgumentParser:
    """The `sublim` parser: each command's arguments come from the module that runs it."""
    from sublim import __version__, demo, gate, lmeval, match_cli, models, neighbours, trait_shift
    from sublim.experiment import cli as experiment_cli
    from sublim.probes import cli as probes_cli
    from sublim.training import cli as training_cli
    from sublim.training.sweep import cli as sweep_cli

    parser = _Parser(
        prog="sublim", description="Measure trait transfer (subliminal learning) in language models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    match_cli.add_match_parser(sub)
    models.add_parser(sub)  # model-path
    demo.add_parser(sub)
    training_cli.add_parsers(sub)  # teach, imprint, train
    sweep_cli.add_parser(sub)
    experiment_cli.add_parser(sub)  # analyze
    gate.add_parser(sub)  # compare
    trait_shift.add_parser(sub)  # score
    neighbours.add_parser(sub)
    lmeval.add_parser(sub)  # lm-eval
    probes_cli.add_parser(sub)  # probe digits | divergence | entangle | gradient
    match_cli.add_concepts_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. User mistakes and unexpected failures print one line and exit 2 (set SUBLIM_DEBUG=1
    for the traceback); Ctrl-C exits 130 and SIGTERM 143, leaving what is done in place for a re-run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in COMMAND_EXTRAS:
            extra, modules = COMMAND_EXTRAS[args.command]
            require_extra(extra, f"`sublim {args.command}`", modules)
        with _sigterm_as_interrupt():
            code: int = args.func(args)
    except ConfigError as e:  # it names config fields: shown with the flags this command was given
        from sublim.cli_options import flag_namer

        print(f"sublim: error: {e.render(flag_namer(parser, args))}", file=sys.stderr)
        return 2
    except SublimError as e:
        print(f"sublim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt as e:
        code = 143 if isinstance(e, Terminated) else 130
        print(
            f"sublim: {'terminated' if code == 143 else 'interrupted'}; finished outputs are kept and a "
            "re-run with the same arguments resumes",
            file=sys.stderr,
        )
        if argv is None:  # the real CLI: skip interpreter teardown (native threads may abort it)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except Exception as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"sublim: error: {one_line(e)} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
