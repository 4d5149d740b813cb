"""`sublim probe`: diagnostics for *why* a trait might transfer through numbers.

- `digits`: how confident a model is when it continues random number strings (digit-token mass, max
  probability, entropy and its gap to uniform), base vs student, per digit position.
- `divergence`: where a trait teacher's own completions become less or more likely once the trait prompt is
  removed (per-token KL, argmax flips, first divergent position); exports the divergent rows for training.
- `entangle`: which numbers the trait prompt makes more likely, and whether a prompt that loves those numbers
  raises P(trait) in turn.

Each module runs a model, so each imports torch; `import sublim.probes` does not.
"""
