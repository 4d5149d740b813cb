"""Inspect registry."""
