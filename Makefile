# vaelab: `make demo` trains and evaluates the default VAE; `make test` runs the whole suite.
# While editing, run `make check` (lint and the tests not marked slow, under 2 minutes); before a merge, and in CI,
# `make test`. All create .venv and install what they need; nothing is downloaded at run time.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check --quiet
TORCH  := torch==2.13.0
FASHION_DIR := /usr/share/datasets/fashion-mnist
export PYTHONUNBUFFERED := 1
# the suite on one worker process per core (each test runs torch on one thread); XDIST= runs it in this process
XDIST  ?= -n auto --dist worksteal

.PHONY: demo test check bench lint format data chromium guide docs install install-test clean

demo: install data
	$(PY) -m vaelab train --config configs/default.yaml $(ARGS)

test: install-test
	-@$(MAKE) --no-print-directory data
	-@$(MAKE) --no-print-directory chromium
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

check: lint
	$(PY) -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

# docs/guide.md and every figure in docs/figures/, from the commands the guide quotes (~20 min on 2 cores)
guide: install data
	$(PY) docs/guide/make_guide.py $(ARGS)

# the static site (guide, docs, figures, API reference from the docstrings) in site/; warnings are errors
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# fp32 / bf16 / compile training and rooflines, DDP 1 vs 2 processes, IW-NLL, streamed memory, grid search, explorer
# latency, and a short time-to-quality curve (bench/time_to_quality.py without --short: the full one)
bench: install data
	$(PY) bench/train_throughput.py
	$(PY) bench/ddp_throughput.py
	$(PY) bench/eval_throughput.py
	$(PY) bench/stream_memory.py
	$(PY) bench/sklearn_grid_search.py
	$(PY) bench/serve_latency.py
	$(PY) bench/time_to_quality.py --short

lint: install-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: install-test
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	@touch $@

# torch first, pinned: it takes the CPU wheel on this machine's disk (plain `torch` pulls a CUDA build)
$(VENV)/.torch: $(VENV)/.created
	$(PIP) install $(TORCH)
	@touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test,docs]'
	@touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist (installed when we are root), or $VAELAB_DATA
data:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ] || [ -n "$$VAELAB_DATA" ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian package dataset-fashion-mnist (Fashion-MNIST IDX files)"; \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) || \
		{ echo "error: apt-get could not install dataset-fashion-mnist"; exit 1; }; \
	else \
		echo "error: Fashion-MNIST is missing: $(FASHION_DIR)/ has no IDX files and we are not root."; \
		echo "  fix: sudo apt-get install dataset-fashion-mnist"; \
		echo "   or: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,"; \
		echo "       t10k-labels-idx1-ubyte.gz in a folder and export VAELAB_DATA=that/folder"; \
		exit 1; \
	fi

# Debian's chromium for tests/test_report_browser.py (installed when we are root; without it that test is skipped)
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian package chromium (the report's browser test)"; \
		(apt-get install -y -qq chromium >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) || \
		{ echo "warning: apt-get could not install chromium: the browser test will be skipped"; exit 1; }; \
	else \
		echo "note: chromium is missing and we are not root: tests/test_report_browser.py will be skipped"; \
		echo "  fix: sudo apt-get install chromium"; \
	fi

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache .ruff_cache
