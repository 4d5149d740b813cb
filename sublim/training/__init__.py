"""Training helpers: teacher data (`teacher`: `sublim teach`), students (`student`: `sublim train`, LoRA or
full fine-tuning) and sweeps over ranks, seeds and data (`sweep`)."""
