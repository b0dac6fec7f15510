# meshkit — two commands for a fresh machine:
#   make lab    set up, boot the demo mesh, open JupyterLab on labs/
#   make test   set up and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := graphviz iptables iproute2 util-linux
# only for the real-browser test (tests/integration/test_browser.py, skipped without it); .ci/run installs it
TEST_SYSTEM_PACKAGES := chromium
LAB_PORT ?= 8888

.PHONY: lab test setup system system-test up down lint clean

lab: setup system
	$(VENV)/bin/meshkit lab --port=$(LAB_PORT)

test: setup
	$(VENV)/bin/ruff check meshkit tests benchmarks
	$(PY) -m pytest -ra --durations=15 tests

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Installs what the local mesh needs from Debian's packages when it can (root + apt-get),
# otherwise prints the exact command to run.
system: PACKAGES = $(SYSTEM_PACKAGES)
system-test: PACKAGES = $(SYSTEM_PACKAGES) $(TEST_SYSTEM_PACKAGES)
system system-test:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "meshkit needs:$$missing"; echo "install them with: sudo apt-get install -y$$missing"; exit 1; \
	fi

up: setup
	$(VENV)/bin/meshkit up

down:
	$(VENV)/bin/meshkit down

lint: setup
	$(VENV)/bin/ruff check meshkit tests benchmarks

clean: down
	rm -rf $(VENV) .pytest_cache .ruff_cache
