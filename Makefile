# tootcheck: policy-and-conformance suite for kirchner.social.
# `make test` needs only Python 3.11+; `make e2e` needs Docker and a network.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS_DIR := .tools
export PATH := $(CURDIR)/$(TOOLS_DIR)/bin:$(PATH)

PYTEST_REPORTS := --junitxml=reports/junit.xml -o junit_family=xunit2

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# ------------------------------------------------------------------ set-up

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the dependencies into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --upgrade pip && \
	   $(BIN)/python -m pip install -c constraints.txt -e '.[test]'; } > $(VENV)/install.log 2>&1 \
	  || { tail -30 $(VENV)/install.log; echo "error: pip install failed (see $(VENV)/install.log)"; exit 1; }
	@touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv and install the dependencies (idempotent)

.PHONY: peers
peers: ## install the system peers the self-tests use (apt-get; needs root)
	@scripts/install-peers

.PHONY: tools
tools: ## fetch pinned kind, kubectl and helm into .tools/bin (checksums verified)
	@scripts/bootstrap-tools

# ------------------------------------------------------------------- tests

.PHONY: test
test: $(STAMP) ## the offline gate plus the suite's own tests
	@scripts/install-peers --if-root
	@mkdir -p reports
	$(BIN)/ruff check --quiet .
	$(BIN)/pytest tests suites/policy/test_policy.py $(PYTEST_REPORTS) --check-coverage $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

.PHONY: render
render: $(STAMP) ## re-render the snapshots in manifests/rendered/ (kubectl kustomize --enable-helm)
	$(BIN)/tootcheck render

.PHONY: rules-doc
rules-doc: $(STAMP) ## regenerate docs/rules.md and the README's rule table from the registry
	$(BIN)/tootcheck rules --markdown > docs/rules.md
	$(BIN)/tootcheck rules --update-readme README.md

.PHONY: bench
bench: $(STAMP) ## the gate timed as a user runs it, beside Checkov (QUICK=1: 1k objects only)
	$(BIN)/python -m tootcheck.policy.bench $(if $(QUICK),--quick) $(BENCH_ARGS)

# ------------------------------------------------------------- live modes

.PHONY: e2e
e2e: $(STAMP) ## the main job: kind cluster, infrastructure, deployment, all live suites
	@$(BIN)/tootcheck preflight e2e
	@scripts/bootstrap-tools
	$(BIN)/pytest suites --target=kind $(PYTEST_REPORTS) $(PYTEST_ARGS)

.PHONY: nightly
nightly: $(STAMP) ## read-only checks against the live instance (see docs/modes.md)
	$(BIN)/pytest suites --target=live --mode=nightly $(PYTEST_REPORTS) $(PYTEST_ARGS)

# The bring-up and the upgrade run in session fixtures with their own bounded waits;
# timeout_func_only makes pytest-timeout bound the test bodies only.
.PHONY: rehearse
rehearse: $(STAMP) ## upgrade rehearsal on kind: make rehearse FROM=v4.6.x TO=v4.7.x
	@$(BIN)/tootcheck preflight rehearse --from "$(FROM)" --to "$(TO)" \
	  --chart-from "$(CHART_FROM)" --chart-to "$(CHART_TO)"
	@scripts/bootstrap-tools
	$(BIN)/pytest suites --target=kind --mode=rehearsal --rehearse-from="$(FROM)" \
	  --rehearse-to="$(TO)" $(if $(CHART_FROM),--rehearse-chart-from="$(CHART_FROM)") \
	  $(if $(CHART_TO),--rehearse-chart-to="$(CHART_TO)") \
	  $(PYTEST_REPORTS) $(PYTEST_ARGS)

.PHONY: clean
clean: ## remove the venv, tools and reports
	rm -rf $(VENV) $(TOOLS_DIR) .pytest_cache .hypothesis
	find reports -mindepth 1 ! -name .gitkeep -delete
