"""sublim: measure trait transfer ("subliminal learning") in language models.

The core (matching, concepts, the CLI) never imports torch; model code lives in `sublim.models`.
"""

from sublim.concepts import Category, Concept, category_names, get_category, register_category
from sublim.errors import SublimError, UnknownCategoryError, UnknownConceptError
from sublim.lmeval import lm_eval_include_path
from sublim.matching import Match, Mention, Thresholds, extract, is_nonanswer, match

__version__ = "0.1.0"

__all__ = [
    "Category",
    "Concept",
    "Match",
    "Mention",
    "SublimError",
    "Thresholds",
    "UnknownCategoryError",
    "UnknownConceptError",
    "__version__",
    "category_names",
    "extract",
    "get_category",
    "is_nonanswer",
    "lm_eval_include_path",
    "match",
    "register_category",
]
