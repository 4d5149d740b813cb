"""Adapter-training helpers: teacher data (`teacher`, `teach`), students (`training`), sweeps (`sweep`)."""
