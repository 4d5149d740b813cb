"""sublim: measure trait transfer ("subliminal learning") in language models.

The core (matching, concepts, the CLI) never imports torch; model code lives in `sublim.models`. The public
API below is imported lazily, so `import sublim` stays light: `sublim.compare` (the CI gate, returning a
`GateResult`), `sublim.analyze` (the pre-registered sweep analysis), `sublim.ConceptScorer` and
`sublim.estimate` (probability mode; loading a model needs the `[hf]` extra), `sublim.TrainConfig` and
`sublim.SweepConfig` (the training helpers' settings). See docs/guide/api.md.
"""

from typing import TYPE_CHECKING, Any

from sublim.concepts import Category, Concept, category_names, get_category, register_category
from sublim.errors import ConfigError, SublimError, UnknownCategoryError, UnknownConceptError
from sublim.lmeval import lm_eval_include_path
from sublim.matching import Match, Mention, Thresholds, extract, is_nonanswer, match

if TYPE_CHECKING:
    from sublim.experiment import analyze, read_results
    from sublim.gate import GateResult, compare, read_log
    from sublim.probability import ConceptDistribution, ConceptScorer, estimate
    from sublim.training.config import TrainConfig
    from sublim.training.sweep import SweepConfig

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first use)
_LAZY = {
    "compare": "sublim.gate",
    "GateResult": "sublim.gate",
    "read_log": "sublim.gate",
    "analyze": "sublim.experiment",
    "read_results": "sublim.experiment",
    "ConceptScorer": "sublim.probability",
    "ConceptDistribution": "sublim.probability",
    "estimate": "sublim.probability",
    "TrainConfig": "sublim.training.config",
    "SweepConfig": "sublim.training.sweep",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'sublim' has no attribute {name!r}")


__all__ = [
    "Category",
    "Concept",
    "ConceptDistribution",
    "ConceptScorer",
    "ConfigError",
    "GateResult",
    "Match",
    "Mention",
    "SublimError",
    "SweepConfig",
    "Thresholds",
    "TrainConfig",
    "UnknownCategoryError",
    "UnknownConceptError",
    "__version__",
    "analyze",
    "category_names",
    "compare",
    "estimate",
    "extract",
    "get_category",
    "is_nonanswer",
    "lm_eval_include_path",
    "match",
    "read_log",
    "read_results",
    "register_category",
]
