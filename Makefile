# One command for the demo, one for every test. Both install what they need:
# Debian packages (nginx, apache2, openssl, sshd) and a Python venv in .venv/.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/.cache/collections
# Integration workers: many tests wait on servers and responders, so one more worker than
# cores fills those waits (measured on 2 cores: 4 workers ended every lane together, 2 left
# integration running alone for the last six minutes).
PYTEST_WORKERS ?= 3
# Each stage installs what it needs first; run-all-tests runs deps once, then the stages
# side by side with STAGE_DEPS= so they do not install concurrently.
STAGE_DEPS ?= deps

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_HOST_KEY_CHECKING := False
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help deps system-deps venv collection-link awx-collection demo test unit integration sanity lint molecule build bench clean

help:
	@echo "make demo   - play the OCSP responder outage end to end on the loopback lab"
	@echo "make test   - install everything, run every test (unit, integration, sanity, lint, molecule, build)"
	@echo "make bench  - run the benchmarks in bench/"

system-deps:
	@tests/bin/install-system-deps

$(VENV)/.installed: requirements.txt test-requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r test-requirements.txt
	touch $@

venv: $(VENV)/.installed

collection-link:
	@mkdir -p $(COLLECTIONS)/ansible_collections/ocsp
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/ocsp/stapling

# awx.awx, extracted from the `ansible` wheel, for the AWX definitions' lint and tests.
awx-collection: venv
	@VENV=$(VENV) tests/bin/install-awx-collection

deps: system-deps venv collection-link awx-collection

demo: deps
	$(BIN)/python -m tests.lab demo

unit: $(STAGE_DEPS)
	$(BIN)/pytest -q -p no:cacheprovider --durations=10 tests/unit

integration: $(STAGE_DEPS)
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist worksteal --durations=15 tests/integration

sanity: $(STAGE_DEPS)
	tests/bin/run-sanity

lint: $(STAGE_DEPS)
	cd $(CURDIR) && $(BIN)/ansible-lint --offline -q

molecule: $(STAGE_DEPS)
	tests/bin/run-molecule

build: $(STAGE_DEPS)
	tests/bin/check-build

bench: deps
	$(BIN)/python -m bench

# Every stage runs even when another fails, so one run reports everything; the target
# fails if any stage failed. Stages run side by side (tests/bin/run-all-tests: TEST_LANES,
# TEST_SERIAL=1); molecule runs MOLECULE_JOBS scenarios at once.
test:
	@tests/bin/run-all-tests

clean:
	rm -rf $(VENV) .cache .pytest_cache tests/output *.tar.gz
