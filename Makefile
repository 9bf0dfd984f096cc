# Thin wrappers; each target is described in README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test bench lint browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Duebook needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,embedded]'
	touch $(STAMP)

## make run: PostgreSQL, Redis and a sandbox mail server (embedded unless DATABASE_URL /
## REDIS_URL are set), migrations, a demo tenant, then web + worker + scheduler in one terminal.
run: $(STAMP)
	$(BIN)/python -m app.devserver run

## make test: the whole suite against real PostgreSQL, Redis, SMTP and chromium.
test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: the benchmarks in bench/, each printing product figure, baseline and ratio.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

## Debian's chromium for the page tests. Installed when we may (root with apt-get); otherwise
## the page tests are skipped with a message that names what is missing.
browser:
	@if [ -x "$(CHROMIUM)" ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the page tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "NOTE: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get):"; \
		echo "      page tests will be skipped. Install Debian's 'chromium' package to run them."; \
	fi

clean:
	rm -rf var
