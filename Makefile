# Two entry points: `make book` and `make test` (README). Everything else is a step they share.
SHELL := /bin/bash
.DEFAULT_GOAL := book

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Fashion-MNIST: Debian's dataset-fashion-mnist puts the idx files here (nclib.datasets looks there).
DEBIAN_FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: book book-seeds test venv data assets browser pytest book-strict browser-test book-checked clean lab publish

venv: $(STAMP)

# Some machines cap torch/torchvision through a pip constraint file; requirements.txt is the
# source of truth, so the install ignores any site constraint (PIP_CONSTRAINT overrides it).
# The pinned packages come from PyPI through uv (itself a pinned wheel from PyPI): it downloads and
# unpacks the ~6 GB of torch and its CUDA libraries in parallel and compiles the bytecode on every
# core, where pip does it one file after another (measured on the 2-core AMD EPYC machine, the
# machine busy: 57 s against 150 s, the same versions of all 190 packages). Where uv cannot reach
# the index (a site that serves PyPI through pip's own configuration only), pip installs them.
UV := uv==0.13.9
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=/dev/null $(BIN)/pip install --disable-pip-version-check -q $(UV) \
	  && UV_NATIVE_TLS=1 $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.txt \
	  || { echo "venv: uv could not install requirements.txt; installing with pip"; \
	       PIP_CONSTRAINT=/dev/null $(BIN)/pip install --disable-pip-version-check -q -r requirements.txt; }
	PIP_CONSTRAINT=/dev/null $(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $@

# Install Debian's package when apt-get is there and usable (root, or sudo without a password);
# otherwise nclib.datasets falls back to NCLIB_DATA or torchvision's download, and says so if neither works.
data:
	@if [ -d $(DEBIAN_FMNIST) ]; then \
	  echo "Fashion-MNIST: $(DEBIAN_FMNIST)"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "Fashion-MNIST: no apt-get here; nclib.datasets will try NCLIB_DATA, then torchvision's download"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null; \
	elif sudo -n true 2>/dev/null; then \
	  (sudo apt-get install -y -q dataset-fashion-mnist || (sudo apt-get update -q && sudo apt-get install -y -q dataset-fashion-mnist)) >/dev/null; \
	else \
	  echo "Fashion-MNIST: apt-get needs root; nclib.datasets will try NCLIB_DATA, then torchvision's download"; \
	fi

# The one script the HTML book needs beyond Sphinx's own, MathJax, is served by the book itself, so
# it renders offline and from any static host: a pinned npm package, fetched as a tarball (no
# node_modules), unpacked to _vendor/. No widget manager: the HTML explorers are precomputed.
VENDOR := _vendor
NPM_PACKAGES := mathjax@3.2.2
assets: $(VENDOR)/.installed

$(VENDOR)/.installed: Makefile
	@command -v npm >/dev/null || { echo "make assets needs npm (Node.js): apt-get install npm, or see nodejs.org"; exit 1; }
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/.packs
	cd $(VENDOR)/.packs && npm pack --silent $(NPM_PACKAGES) >/dev/null
	mkdir -p $(VENDOR)/.packs/mathjax
	tar -xzf $(VENDOR)/.packs/mathjax-3.2.2.tgz -C $(VENDOR)/.packs/mathjax
	mv $(VENDOR)/.packs/mathjax/package/es5 $(VENDOR)/mathjax
	find $(VENDOR) -name '*.map' -delete
	rm -rf $(VENDOR)/.packs
	touch $@

# The build executes every chapter. BOOK_JOBS chapters execute side by side (Sphinx's parallel
# reading, through book/_ext/parallel_build.py; jupyter-book's own command has no -j): most chapters
# train on one torch thread, so on 2 cores `auto` (one reader per core) halves the build. 1: serial.
BOOK_JOBS ?= auto
JUPYTER_BOOK_BUILD := $(BIN)/python book/_ext/parallel_build.py $(BOOK_JOBS)

book: venv data assets
	$(JUPYTER_BOOK_BUILD) . --keep-going
	@echo "book: _build/html/index.html"

# The book build with warnings as errors (-W) and nitpicky references (-n): a chapter that raises fails.
book-strict: venv data assets
	rm -rf _build/.doctrees _build/html
	$(JUPYTER_BOOK_BUILD) . -W -n --keep-going

# One pytest worker per logical CPU (pytest-xdist): the suite is mostly single-threaded torch and
# subprocesses, so two cores run it in a little over half the time of one. Work stealing: a few
# tests take a minute, and a worker that runs out of tests takes the other's queued ones. NumPy's
# BLAS on one thread per worker: beside the book build, a second thread per process thrashes
# (measured: a bootstrap 10× slower).
PYTEST_WORKERS ?= logical
pytest: venv data
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal --ignore=tests/browser --durations=15

# Debian's Chromium and ChromeDriver drive the built book headless (tests/browser). Installed like
# the data: with apt-get when it may be used; otherwise the test says what is missing.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "browser: $$(chromium --version)"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "browser: no apt-get; install Chromium and ChromeDriver to run the browser test"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q chromium chromium-driver || (apt-get update -q && apt-get install -y -q chromium chromium-driver)) >/dev/null; \
	elif sudo -n true 2>/dev/null; then \
	  (sudo apt-get install -y -q chromium chromium-driver || (sudo apt-get update -q && sudo apt-get install -y -q chromium chromium-driver)) >/dev/null; \
	else \
	  echo "browser: apt-get needs root; install chromium and chromium-driver to run the browser test"; \
	fi

# Serves _build/html on localhost and checks every page in a real browser (screenshots in
# _build/screenshots). Runs after book-strict, on the book it built, often alone once the rest of
# the suite is done: one browser per core (pytest-xdist), each with its own server.
browser-test: venv browser
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) tests/browser

# The suite and the strict build run side by side (each is mostly one process per core, with idle
# stretches the other fills); the browser test reads the built book as soon as it is built, beside
# the rest of the suite.
test:
	$(MAKE) -j2 --output-sync=target pytest book-checked

book-checked: book-strict
	$(MAKE) browser-test

# The chapters as live notebooks: JupyterLab on localhost, rooted at book/. Jupytext (its server
# extension, enabled by the install) opens each percent-format chapter as a notebook and saves it
# back to its .py file (book/jupytext.toml); jupyter-config/ makes "notebook" the default viewer of a
# .py file, for this command only (a user's own JupyterLab settings still win). The kernel is
# .venv's, with nclib and live ipywidgets. LAB_ARGS e.g. --port=8890 --no-browser. As root (a
# container) JupyterLab refuses to start without --allow-root; it listens on localhost only.
LAB_ROOT ?= $(CURDIR)/book
LAB_ARGS ?=
lab: venv data
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter-config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} \
	  $(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_ROOT) --ServerApp.ip=127.0.0.1 \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# The strict build, staged as the only content of the local gh-pages branch (ghp-import: a new
# commit on top of the branch's history; -n adds .nojekyll, so that GitHub Pages serves _static/
# and _images/ as they are). Nothing is pushed: `git push origin gh-pages` publishes it (README).
PUBLISH_BRANCH ?= gh-pages
publish: book-strict
	$(BIN)/ghp-import -n -b $(PUBLISH_BRANCH) \
	  -m "Book built from $$(git rev-parse --short HEAD 2>/dev/null || echo 'an uncommitted tree')" _build/html
	@echo "publish: _build/html staged on the local branch $(PUBLISH_BRANCH); publish it with: git push origin $(PUBLISH_BRANCH)"

# Robustness check (not part of `make test`: it builds the book twice more): every chapter's `seed`
# parameter set to each of SEEDS, injected as papermill injects parameters, strict build each time;
# then the verdicts of every build (seed 0: the last `make book`/`make test` build) are recorded in
# results/stability/<this CPU model>.json, which the book's stability page renders beside the other
# machines' records (commit it; the test after `make test`'s build checks it against the build).
SEEDS ?= 1 2
.PHONY: book-seeds
book-seeds: venv data assets
	set -e; for s in $(SEEDS); do \
	  $(BIN)/python -m nclib.chapters copy --out _build/seed$$s/src --set seed=$$s; \
	  $(JUPYTER_BOOK_BUILD) _build/seed$$s/src -W -n --keep-going; \
	  echo "book-seeds: seed $$s built: _build/seed$$s/src/_build/html/index.html"; \
	done
	$(BIN)/python -m nclib.stability record --build 0=_build $(foreach s,$(SEEDS),--build $(s)=_build/seed$(s)/src/_build)

clean:
	rm -rf _build _vendor .pytest_cache .hypothesis

# Paper-scale experiments: chapters 7–8 run under papermill (or as plain scripts where papermill is
# not installed) and record every run, resumably, under results/<experiment>/<scale>/.
# On a GPU machine:  make experiments DEVICE=cuda
# Variables: DEVICE (auto|cpu|cuda), SCALE (paper|reference|cpu|tiny), EXPERIMENT (all|margins_tpt|
# non_conservative), WORKERS (local worker processes sharing the runs through claims, each with
# cores/WORKERS torch threads; auto: what make bench measured fastest on this CPU model, see
# nclib/scheme.py; a cluster runs the same command once per task, see README),
# EXPERIMENT_ARGS (e.g. --deterministic, --param epochs=100, --claim-timeout 300). Uses .venv when it
# exists, else python3 (a GPU image with its own torch); data come from NCLIB_DATA / NCLIB_CIFAR.
# `python -m nclib.experiments status` then counts the records against each manifest.
DEVICE ?= auto
SCALE ?= paper
EXPERIMENT ?= all
WORKERS ?= auto
EXPERIMENT_ARGS ?=
EXP_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)

.PHONY: experiments
experiments:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(EXP_PYTHON) -m nclib.experiments run \
	  --experiment $(EXPERIMENT) --scale $(SCALE) --device $(DEVICE) --workers $(WORKERS) $(EXPERIMENT_ARGS)

# Speed on the machine we have (no accelerator is lent to this project): every ratio in one run
# (bench/cpu_speed.py, about 18 minutes on 2 cores), then `make test` from a fresh clone of the last
# commit against its 8-minute goal (bench/make_test_time.py, as long as make test), both recorded
# with provenance under results/bench/. Nothing else should run on the machine meanwhile.
BENCH_ARGS ?= --record results/bench
.PHONY: bench bench-gpu
bench: venv data
	$(BIN)/python bench/cpu_speed.py $(BENCH_ARGS)
	$(BIN)/python bench/make_test_time.py $(BENCH_ARGS)

# The accelerator path (batched vmap sweeps, data on the device, bf16 autocast, channels_last),
# which we could not measure: nclib's batched sweep against the one-model DataLoader loop.
bench-gpu: venv data
	$(BIN)/python bench/sweep_throughput.py --size paper --device cuda --record results/bench
