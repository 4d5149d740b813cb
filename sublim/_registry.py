"""Inspect entry point (`[project.entry-points.inspect_ai] sublim = "sublim._registry"`).

Importing this module registers sublim's tasks, scorers, solvers and metrics under the `sublim/` namespace.
"""

from sublim.tasks.numbers import numbers, numbers_filter
from sublim.tasks.preference import (
    animal_pref,
    preference,
    preference_probability_scorer,
    preference_scorer,
    top_concepts,
    tree_pref,
)
from sublim.tasks.solvers import concept_probabilities, with_system_prompt

__all__ = [
    "animal_pref",
    "concept_probabilities",
    "numbers",
    "numbers_filter",
    "preference",
    "preference_probability_scorer",
    "preference_scorer",
    "top_concepts",
    "tree_pref",
    "with_system_prompt",
]
