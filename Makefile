# Two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint compare clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned and installed first so that pip never resolves a (multi-GB) CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

# Planted-interaction data -> FL-I2MoE + dense baseline -> report/index.html (a few CPU minutes).
demo: $(STAMP)
	$(VENV)/bin/fl-i2moe demo

test: $(STAMP)
	$(PY) -m pytest -q tests
	$(PY) -m ruff check captum_interactions fl_i2moe_layer tests examples benchmarks

lint: $(STAMP)
	$(PY) -m ruff check .

# Estimator comparison against exact SII and shapiq (docs/estimators.md).
compare: $(STAMP)
	$(PIP) install --quiet -e ".[bench]"
	$(PY) benchmarks/compare_sii_estimators.py --out docs/estimators_table.md

clean:
	rm -rf $(VENV) .pytest_cache
