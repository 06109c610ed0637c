# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test chromium prometheus postgresql lint typecheck bench bench-smoke flask-suite soak check clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m demo_app --traffic

# Browser tests drive Debian's chromium; as root on Debian/Ubuntu it is installed here.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: browser tests will be skipped (install Debian's chromium)"; fi

# The metrics tests scrape with Debian's prometheus and check with its promtool.
prometheus:
	@command -v promtool >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else echo "prometheus not found: metrics tests will be skipped (install Debian's prometheus)"; fi

# The PostgreSQL store's tests start a private server from Debian's postgresql binaries.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "postgresql not found: PostgreSQL store tests will be skipped (install Debian's postgresql)"; fi

test: $(STAMP) chromium prometheus postgresql
	$(PY) -m pytest --cov --cov-report=term:skip-covered

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict wsgimon

# Flask's own test suite (from its sdist, for the installed version) plain and with every app wrapped.
flask-suite: $(STAMP)
	$(PY) -m tests.flask_suite.run

# The fault scenarios against a real gunicorn (not in CI): load, SIGKILL, HUP, lock, read-only, delete.
soak: $(STAMP)
	$(PY) -m bench.soak --minutes 10

check: lint typecheck test flask-suite

BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): setup.cfg pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	touch $(BENCH_STAMP)

# The full comparison (about 40 minutes); needs wrk for the server part (apt-get install wrk).
bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BENCH_VENV)/bin/python -m bench --write bench/RESULTS.md

bench-smoke: $(STAMP)
	$(PY) -m bench --smoke

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
