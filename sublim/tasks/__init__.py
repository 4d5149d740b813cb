"""Inspect tasks: preference elicitation (`sublim/animal_pref`, `sublim/tree_pref`, `sublim/preference`)."""
