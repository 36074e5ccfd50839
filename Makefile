# The two commands of the README: `make demo` and `make test`. Both work from a fresh clone.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install system-deps demo test lint docs clean-demo gpu-pylibs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[test]'
	touch $@

# Debian packages the tests use for real: pdflatex (tables' real client), poppler (PDF -> PNG).
system-deps:
	bash tests/system-deps.sh

demo: install
	$(BIN)/snakemake --cores 2 --configfile config/demo.yaml

test: install system-deps docs
	$(BIN)/snakemake --lint
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests benchmarks docs/_hooks

# The manual (mkdocs.yml, docs/): reference pages generated from the code by docs/_hooks/,
# warnings are errors, nothing fetched from the network; the site lands in site/.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean-demo:
	rm -rf results/demo resources/demo

# pytest and its pure-Python dependencies unpacked into benchmarks/pylibs/, for a lent GPU machine
# that has PyTorch but no pytest: carry the folder, and benchmarks/run_gpu.sh puts it on PYTHONPATH.
gpu-pylibs: install
	rm -rf benchmarks/pylibs && mkdir -p benchmarks/pylibs/.wheels
	$(BIN)/pip download --no-deps --only-binary=:all: -d benchmarks/pylibs/.wheels \
		pytest pluggy iniconfig packaging pygments
	cd benchmarks/pylibs && for w in .wheels/*.whl; do $(CURDIR)/$(BIN)/python -m zipfile -e $$w .; done
	rm -rf benchmarks/pylibs/.wheels
