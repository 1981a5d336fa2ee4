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

# make e2e APP=DIR: bring up your own apps/mastodon (kind overlay composed around it)
APP ?=
PYTEST_REPORTS := --junitxml=reports/junit.xml -o junit_family=xunit2
# `make test` runs in parallel (pytest-xdist): three workers per two cores (about a third of a
# test's time is waiting on a peer), a test module's tests on one worker (--dist loadscope:
# module-scoped peers start once), the longest modules handed out first (tests/conftest.py
# orders them; --no-loadscope-reorder keeps that order instead of xdist's "most tests first");
# TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2); \
  echo $$(( n * 3 / 2 > 0 ? n * 3 / 2 : 1 )))
# The tests' scratch space (pytest's tmp_path, the peers' data directories) goes on tmpfs when
# /dev/shm has 4 GB free: on a disk, PostgreSQL's fsyncs and deleting its data directories
# cost about a third of the run. A TMPDIR you set wins; TEST_TMPDIR= keeps the system's.
TEST_TMPDIR ?= $(shell [ -z "$${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && \
  [ "$$(df -Pk /dev/shm | awk 'NR==2 {print $$4}')" -ge 4194304 ] && echo /dev/shm)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

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
test: $(STAMP) ## the offline gate plus the suite's own tests (parallel; prints its wall and CPU time)
	@scripts/install-peers --if-root
	@mkdir -p reports
	@# Bytecode caches on (__pycache__, git-ignored) even where PYTHONDONTWRITEBYTECODE is set:
	@# without them every worker and inner session compiles the sources and rewrites the
	@# test modules' asserts again (about 7 s per collection).
	@unset PYTHONDONTWRITEBYTECODE; if [[ -n "$(TEST_TMPDIR)" ]]; then export TMPDIR="$(TEST_TMPDIR)"; fi; \
	  start=$$(date +%s.%N); rc=0; \
	  echo "+ ruff check --quiet ."; $(BIN)/ruff check --quiet . || rc=$$?; \
	  cmd=($(BIN)/pytest tests suites/policy/test_policy.py -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder \
	       $(PYTEST_REPORTS) \
	       --check-coverage $(PYTEST_ARGS)); \
	  if [[ $$rc == 0 ]]; then echo "+ $${cmd[*]}"; "$${cmd[@]}" || rc=$$?; fi; \
	  end=$$(date +%s.%N); cpu_file=$$(mktemp); times > "$$cpu_file"; \
	  awk -v s="$$start" -v e="$$end" -v w="$(TEST_WORKERS)" -v n="$$(nproc)" -v rc="$$rc" \
	      -v t="$${TMPDIR:-/tmp}" \
	    'function secs(x, p) { split(x, p, /[ms]/); return p[1] * 60 + p[2] } \
	     NR == 2 { cpu = secs($$1) + secs($$2) } \
	     END { printf "make test: %.1f s wall, %.1f CPU s (workers: %s on %s core(s), scratch in %s), exit %d\n", e - s, cpu, w, n, t, rc }' "$$cpu_file"; \
	  rm -f "$$cpu_file"; exit $$rc

.PHONY: lint
lint: $(STAMP) ## ruff, mypy (strict, settings in pyproject.toml) and the dead-code check
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python scripts/deadcode

.PHONY: render
render: $(STAMP) ## re-render the snapshots in manifests/rendered/ (kubectl kustomize --enable-helm)
	$(BIN)/tootcheck render --infra

.PHONY: rules-doc
rules-doc: $(STAMP) ## regenerate docs/rules.md, the README's rule table and its option tables
	$(BIN)/tootcheck rules --markdown > docs/rules.md
	$(BIN)/tootcheck rules --update-readme README.md
	$(BIN)/tootcheck options --update-readme README.md

.PHONY: bench
bench: $(STAMP) ## the gate timed as a user runs it, beside Checkov (QUICK=1: 1k objects only)
	@# As a user's shell would run it: bytecode caches written (see `test`).
	unset PYTHONDONTWRITEBYTECODE; $(BIN)/python -m tootcheck.policy.bench $(if $(QUICK),--quick) $(BENCH_ARGS)

# ------------------------------------------------------------- live modes

.PHONY: e2e
e2e: $(STAMP) ## the main job: kind cluster, infrastructure, deployment (APP=DIR: yours), all live suites
	@$(BIN)/tootcheck preflight e2e $(if $(APP),--app=$(APP))
	@scripts/bootstrap-tools
	$(BIN)/pytest suites --target=kind $(if $(APP),--app-dir=$(APP)) $(PYTEST_REPORTS) $(PYTEST_ARGS)

.PHONY: nightly
nightly: $(STAMP) ## read-only checks against the live instance (see docs/modes.md)
	$(BIN)/pytest suites --target=live --mode=nightly $(PYTEST_REPORTS) $(PYTEST_ARGS)

# The bring-up and the upgrade run in session fixtures with their own bounded waits;
# timeout_func_only makes pytest-timeout bound the test bodies only.
.PHONY: rehearse
rehearse: $(STAMP) ## upgrade rehearsal on kind: make rehearse FROM=v4.6.x TO=v4.7.x [ROLLBACK=1] [PLAN=1]
	@$(BIN)/tootcheck preflight rehearse --from "$(FROM)" --to "$(TO)" \
	  --chart-from "$(CHART_FROM)" --chart-to "$(CHART_TO)" $(if $(PLAN),--plan)
	@$(if $(PLAN),exit 0;) scripts/bootstrap-tools
	$(if $(PLAN),@true ,)$(BIN)/pytest suites --target=kind --mode=rehearsal --rehearse-from="$(FROM)" \
	  --rehearse-to="$(TO)" $(if $(CHART_FROM),--rehearse-chart-from="$(CHART_FROM)") \
	  $(if $(CHART_TO),--rehearse-chart-to="$(CHART_TO)") \
	  $(if $(ROLLBACK),--rehearse-rollback) $(if $(ALLOW_RESTART),--rehearse-allow-migration-restart) \
	  $(if $(DUMP),--rehearse-dump="$(DUMP)") $(if $(SECRETS),--rehearse-secrets="$(SECRETS)") \
	  $(if $(SEED_SCALE),--seed-scale="$(SEED_SCALE)") \
	  $(PYTEST_REPORTS) $(PYTEST_ARGS)

.PHONY: clean
clean: ## remove the venv, tools and reports
	rm -rf $(VENV) $(TOOLS_DIR) .pytest_cache .hypothesis
	find reports -mindepth 1 ! -name .gitkeep -delete
