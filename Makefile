# Thin wrappers; each target is described in README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run tally-agent test fuzz bench lint imports audit browser system-packages clean

$(STAMP): pyproject.toml agent/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Duebook needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools
	$(BIN)/python -m pip install -q -e '.[dev,embedded]'
	# The Tally connector agent, a package of its own (installed on the office computer on its
	# own); here for its tests and for make run's agent.
	$(BIN)/python -m pip install -q -e ./agent
	touch $(STAMP)

## make run: PostgreSQL, Redis and a sandbox mail server (embedded unless DATABASE_URL /
## REDIS_URL are set), migrations, a demo tenant, then web + worker + scheduler in one terminal.
run: $(STAMP) system-packages
	$(BIN)/python -m app.devserver run

## make tally-agent CODE=ABCD2345: with make run going, in a second terminal: the connector agent
## from this repository, paired with the code the Tally page shows (no CODE: paired already),
## relaying between make run and its stand-in TallyPrime until Ctrl-C. Its token is kept under
## var/run/tally-agent, not in your own credential store.
tally-agent: $(STAMP)
	@test -f var/run/tally-url -a -f var/run/web-url || { echo "Start make run first: it starts the stand-in Tally."; exit 2; }
	@export DUEBOOK_AGENT_HOME="$$(pwd)/var/run/tally-agent" DUEBOOK_AGENT_NO_KEYRING=1; \
	if [ -n "$(CODE)" ]; then $(BIN)/duebook-tally-agent pair --server "$$(cat var/run/web-url)" --code "$(CODE)" || exit 2; fi; \
	exec $(BIN)/duebook-tally-agent run --tally "$$(cat var/run/tally-url)"

## make test: the import contracts (the floor plan), then the whole suite against real
## PostgreSQL, Redis, SMTP and chromium; pytest's last line gives the suite's time.
test: $(STAMP) browser system-packages imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make fuzz: the API against its OpenAPI document in full (Schemathesis, 200 examples of each
## operation's valid and invalid input, random each run; `make test` runs a few, fixed).
fuzz: $(STAMP) system-packages
	API_FUZZ_EXAMPLES=$${API_FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest tests/test_api_fuzz.py -q

## make bench: the benchmarks in bench/, each printing product figure, baseline and ratio.
bench: $(STAMP) system-packages
	$(BIN)/python -m bench $(BENCH_ARGS)

## make lint: ruff (style and mistakes) and the import contracts of pyproject.toml.
lint: $(STAMP) imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The layers (tenants < app.core < areas < web and jobs) and the seams between areas, as
## import-linter contracts in pyproject.toml: a new upward import fails here.
imports: $(STAMP)
	$(BIN)/lint-imports

## make audit: the installed dependency set against known vulnerabilities (OSV's PyPI export
## when given as OSV_EXPORT=/path/to/all.zip, else PyPI's JSON API); whatever no reachable
## source could check is listed as NOT CHECKED and the exit status is 2, never a clean pass.
audit: $(STAMP)
	$(BIN)/python tools/dependency_audit.py $(if $(OSV_EXPORT),--osv-export "$(OSV_EXPORT)")

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

## Debian's libraries for invoice PDFs: WeasyPrint needs pango, and without HarfBuzz's subsetting
## library it falls back to fontTools, about 4x slower per PDF; DejaVu Sans has the rupee sign.
## Installed when missing and we may (root with apt-get); otherwise a NOTE names what is missing.
## Not Debian: nothing checked here (the worker warns at start when subsetting is slow).
PDF_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
system-packages:
	@command -v dpkg-query >/dev/null 2>&1 || exit 0; missing=""; \
	for pkg in $(PDF_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's$$missing for invoice PDFs..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "NOTE:$$missing missing and cannot be installed here (needs root and apt-get)."; \
		echo "      Invoice PDFs need pango; without libharfbuzz-subset0 they render ~4x slower."; \
	fi

## make clean: var/, and make run's PostgreSQL data when it lives outside the clone (as root in a
## mode-700 home; var/run/postgres-location names it).
clean:
	@if [ -f var/run/postgres-location ]; then \
		kept="$$(dirname "$$(cat var/run/postgres-location)")"; \
		case "$$kept" in \
			/*/duebook-[0-9a-f]*) echo "rm -rf $$kept"; rm -rf "$$kept" ;; \
			*) echo "NOTE: not removing $$kept (not a Duebook data folder)" ;; \
		esac; \
	fi
	rm -rf var
