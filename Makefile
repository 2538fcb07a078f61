# Every target bootstraps .venv by itself: a fresh clone needs only `make run` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench sandbox clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/meterbill serve --host $(HOST) --port $(PORT) --seed-demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench lint
	$(BIN)/mypy src/meterbill/domain src/meterbill/ports src/meterbill/services src/meterbill/bootstrap
	$(BIN)/vulture

sandbox: $(STAMP)
	$(BIN)/python -m stripe_sandbox --host $(HOST) --port 12111

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
