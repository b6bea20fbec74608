# gifting: `make run` serves on an embedded Redis + PostgreSQL; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install lock versions run test lint typecheck unit soak test-external bench bench-quick clean browser

# Every Python package comes from uv.lock (hashes included); uv itself is
# pinned by hash in requirements/uv.txt and kept in .tools/, outside the
# project's environment, which `uv sync` keeps exact.
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON ?= $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

$(UV): requirements/uv.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	touch $(UV)

# `--locked`: fails, changing nothing, when pyproject.toml and uv.lock disagree
# (run `make lock` and commit uv.lock).
install: $(UV)
	@$(UV) sync --quiet --locked --all-extras --all-packages

lock: $(UV)
	$(UV) lock

# The versions this run uses, for the log.
versions: install
	@$(BIN)/python -c "import importlib.metadata as m; print('installed from uv.lock:', ', '.join(f'{p} {m.version(p)}' for p in ('ruff', 'mypy', 'pytest', 'redis', 'uvicorn', 'starlette', 'websockets', 'msgspec', 'asyncpg')))"

# Debian's packages the tests drive: Chromium for the pages (Playwright's own
# browser downloads are blocked here), HAProxy for the deployment's topology.
browser:
	@{ command -v chromium && command -v haproxy; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji haproxy >/dev/null; \
	  else echo "install Debian's chromium and haproxy packages for the browser and proxy tests"; fi; }

run: install
	GIFTING_DEV=$${GIFTING_DEV:-1} $(BIN)/gifting serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check gifting tests clients loadtest
	$(BIN)/ruff format --check --quiet gifting tests clients loadtest
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# A private --basetemp per run: pytest prunes old numbered temp folders of
# *other* runs, which would pull the data folders out from under their servers.
PYTEST = d=$$(mktemp -d /tmp/gifting-test.XXXXXX); $(BIN)/pytest -q -p no:cacheprovider --basetemp=$$d/t; rc=$$?; rm -rf $$d; exit $$rc

unit: install browser
	@$(PYTEST)

test: versions lint typecheck unit

# The long tests (marked `soak`, left out of `make test`): 10,000 connections on
# one hub, a minute of one user flooding, long crash and storm runs, the
# cluster failover. They print what they measured. Several minutes.
soak: install
	@d=$$(mktemp -d /tmp/gifting-soak.XXXXXX); $(BIN)/pytest -q -s -p no:cacheprovider -m soak --basetemp=$$d/t; rc=$$?; rm -rf $$d; exit $$rc

# The same tests against servers you run (REDIS_URL / DATABASE_URL must be set).
test-external: install browser
	@test -n "$$REDIS_URL" -a -n "$$DATABASE_URL" || { echo "set REDIS_URL and DATABASE_URL"; exit 2; }
	@$(PYTEST)

bench-quick: install
	$(BIN)/python -m loadtest bench --quick

bench: install
	$(BIN)/python -m loadtest bench

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
