# Two commands set kinema up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= outputs

.PHONY: demo test lint bench install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch goes in first and pinned, so nothing later can pull a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/kinema generate "a big red circle moving right on a black background" -o $(OUT)/demo.mp4 --seed 0
	@echo "The world checker's verdict (the built-in model passes about 4 clips in 5 of seen pairs:"
	@echo "src/kinema/weights/builtin/README.md has its numbers):"
	@$(BIN)/kinema world check $(OUT)/demo.mp4 "a big red circle moving right on a black background" || true

test: $(STAMP)
	$(BIN)/python -m pytest

# lint-imports holds DESIGN.md's layers (the contracts in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/lint-imports --no-logo --no-cache

clean:
	rm -rf $(VENV) $(OUT)
