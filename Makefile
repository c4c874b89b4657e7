# Two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck audit compare compare-large bench bench-quick device-wheels clean

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
	$(MAKE) --no-print-directory bench-quick
	$(PY) -m ruff check captum_interactions fl_i2moe_layer tests examples benchmarks
	$(PY) -m mypy
	$(MAKE) --no-print-directory docs

lint: $(STAMP)
	$(PY) -m ruff check .

# The type checker on both packages (configured in pyproject.toml; part of `make test`).
typecheck: $(STAMP)
	$(PY) -m mypy

# Wrong calls of every public entry point, classified (docs/usage.md, "Errors").
audit: $(STAMP)
	$(PY) benchmarks/bad_input_audit.py

# Estimator comparison against exact SII and shapiq (docs/estimators.md).
compare: $(STAMP)
	$(PY) benchmarks/compare_sii_estimators.py --out docs/estimators_table.md

# The benchmark suite (docs/benchmarks.md): each module is its own run, so that one failure
# keeps the others' figures. CPU: about 1 h 15 min on 2 cores; run it on an idle machine.
# BENCH_DEVICE=cuda on a GPU machine; BENCH_ARGS for extra pytest options (e.g. -k).
BENCH_DEVICE ?= auto
BENCH_MODULES ?= accuracy large_players throughput memory kernels
BENCH_ARGS ?=
bench: $(STAMP)
	@status=0; for m in $(BENCH_MODULES); do \
	  $(PY) -m pytest -q -p no:cacheprovider benchmarks/test_$$m.py --device $(BENCH_DEVICE) \
	    --benchmark-json benchmarks/results/pytest-benchmark-$$m.json $(BENCH_ARGS) \
	    || { echo "benchmarks/test_$$m.py FAILED (its finished records are kept)"; status=1; }; \
	done; \
	$(PY) benchmarks/report.py && exit $$status

# Issue 11's comparison alone: 64-1024 players, ours against shapiq's SPEX, ProxySPEX and the
# other approximators, CPU, one thread (torch, BLAS and OpenMP), one seed; records appended to
# benchmarks/results/cpu.jsonl, tables written to benchmarks/results/large_players.md. Several
# hours on 2 cores; select with -k on the test ids (n<players>, b<budget>), e.g.
# make compare-large BENCH_ARGS='-k "n81 and b2048"'. BENCH_CAP_SCALE=4 lets shapiq run 4x
# longer; BENCH_REFERENCE_ROWS sets the Transformers' reference rows (default 262144).
compare-large: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q \
	  -p no:cacheprovider benchmarks/test_large_players.py --device cpu --threads 1 \
	  --benchmark-json benchmarks/results/pytest-benchmark-large_players.json $(BENCH_ARGS); \
	status=$$?; \
	$(PY) benchmarks/report.py --section large --out benchmarks/results/large_players.md \
	  && exit $$status

# Smoke run of every benchmark (tiny sizes, no timing asserted); part of `make test`.
bench-quick: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider benchmarks --quick --benchmark-disable --threads 1

# The documentation site (docs/site, Sphinx) -> docs/site/_build/html, warnings as errors; the
# tutorial notebooks are executed on CPU during the build (cached); needs no network.
.PHONY: docs
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet "torch==2.13.0" -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs/site docs/site/_build/html

# Wheels the GPU machine's image lacks, for benchmarks/gpu_check.sh (carried as .device_wheels).
device-wheels: $(STAMP)
	$(PIP) download --quiet --no-deps --dest .device_wheels "captum==$$($(PY) -c 'import captum; print(captum.__version__)')"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
