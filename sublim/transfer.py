"""Deprecated: `sublim.transfer` is now `sublim.trait_shift` (named for what `sublim score` measures)."""

import warnings

from sublim.trait_shift import MOVERS, add_parser, run_score, score_checkpoint

warnings.warn(
    "sublim.transfer is deprecated: import from sublim.trait_shift", DeprecationWarning, stacklevel=2
)

__all__ = ["MOVERS", "add_parser", "run_score", "score_checkpoint"]
