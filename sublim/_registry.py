"""Inspect entry point (`[project.entry-points.inspect_ai] sublim = "sublim._registry"`).

Inspect imports this module to find sublim's tasks, scorers and solvers by name (`sublim/<name>`). Tasks
register here as they are added (`sublim.tasks`).
"""
