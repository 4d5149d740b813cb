"""Concept vocabularies: built-in categories generated from WordNet, plus user concept files."""

from sublim.concepts.category import RELATIONS, Category, Concept, wu_palmer
from sublim.concepts.lexicon import english_stem, food_words, is_compound_of, lexicon, plural_forms
from sublim.concepts.registry import (
    category_names,
    get_category,
    load_concept_file,
    register_category,
)

__all__ = [
    "RELATIONS",
    "Category",
    "Concept",
    "category_names",
    "english_stem",
    "food_words",
    "get_category",
    "is_compound_of",
    "lexicon",
    "load_concept_file",
    "plural_forms",
    "register_category",
    "wu_palmer",
]
