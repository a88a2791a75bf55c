# ics-monitor: every target installs what it needs itself (a .venv beside this file).
# The .venv's interpreter: the system's Python 3.11+ when it can make a venv and has the headers
# the compiled hot path needs, else python3 from the PATH (PYTHON=... chooses).  Debian's
# /usr/bin/python3.11 is statically linked and built with PGO and LTO; a default source build
# (pyenv's: a shared libpython, no PGO) took 14-20% more CPU for the same replay.
SYSTEM_PYTHON := $(shell for p in /usr/bin/python3.11 /usr/bin/python3; do \
  $$p -c 'import ensurepip, os, sys, sysconfig; sys.exit(sys.version_info < (3, 11) or not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  >/dev/null 2>&1 && { echo $$p; exit 0; }; done; echo python3)
PYTHON ?= $(SYSTEM_PYTHON)
VENV   := .venv
BIN    := $(VENV)/bin
# Per interpreter: a .venv made from another one is made again (``--clear``: venv over a venv of
# another Python mixes the two).
STAMP  := $(VENV)/.installed$(subst /,_,$(PYTHON))
DEMO_STATE ?= .state/demo

COMPILED := ics_monitor/.compiled-stamp
SOURCES := $(shell find ics_monitor -name '*.py' -o -name '*.c')

.PHONY: install compiled pure tools demo test lint bench bench-instructions soak fuzz golden-update clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The per-packet modules (ics_monitor/compiled.py) compiled in place with mypyc: 1.3-1.7x the packet
# rate.  Rebuilt when any source changes (mypyc reads the types of every module); without a working
# compiler the build warns and everything stays pure Python.  `make pure` removes it.
$(COMPILED): $(STAMP) setup.py $(SOURCES)
	$(BIN)/python -c "from ics_monitor import compiled; compiled.remove()"
	mkdir -p build
	ICS_MONITOR_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace --force --build-temp build/compiled \
	  >build/compiled.log 2>&1 || { tail -20 build/compiled.log; exit 1; }
	@$(BIN)/python -c "from ics_monitor import compiled; print('compiled hot path:', compiled.compiled_modules(), 'of', len(compiled.HOT_MODULES), 'modules')"
	@# Bytecode for the pure modules too: where PYTHONDONTWRITEBYTECODE is set, Python compiles
	@# every imported source on every start (0.07 s of each command; workers pay it again).
	$(BIN)/python -m compileall -q ics_monitor >/dev/null
	touch $(COMPILED)

compiled: $(COMPILED)

pure:
	$(BIN)/python -c "from ics_monitor import compiled; compiled.remove()"
	rm -f $(COMPILED)

# Reference tools for the conformance tests and the benchmarks (tshark, capinfos, tcpdump, tcpreplay).
# Installed with apt when missing and we may; otherwise those tests skip and say why.
tools:
	@if ! command -v tshark >/dev/null 2>&1 || ! command -v capinfos >/dev/null 2>&1 \
	    || ! command -v tcpdump >/dev/null 2>&1 || ! command -v tcpreplay >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing tshark/tcpdump/tcpreplay (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark tcpdump tcpreplay >/dev/null); \
	  else \
	    echo "note: tshark not installed and no root apt: conformance tests will be skipped"; \
	  fi; \
	fi
	@bash .ci/install-es.sh

# The main job on the bundled plant capture: learn the normal phase, replay normal + attack with
# the embedded SQLite store (no server), show assets and alerts.
demo: compiled
	rm -rf $(DEMO_STATE)
	$(BIN)/ics-monitor baseline learn --state $(DEMO_STATE) pcaps/demo/plant_normal.pcap
	$(BIN)/ics-monitor replay --state $(DEMO_STATE) pcaps/demo/plant_normal.pcap pcaps/demo/plant_attack.pcap

test: compiled tools
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: compiled tools
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/bench_workers.py
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python bench/bench_live.py; \
	else echo "bench_live: skipped (tcpreplay onto a mirrored link needs root for network namespaces)"; fi

# Not in CI: instructions a one-process replay executes (callgrind; needs valgrind), per protocol on
# 100k-packet captures: a figure that does not drift with the host, for comparing two commits.
bench-instructions: compiled
	$(BIN)/python bench/bench_instructions.py $(ARGS)

# Not in CI: 10 minutes of live traffic on the lab's mirrored link; the monitor's RSS must stay flat.
soak: compiled tools
	$(BIN)/python bench/soak.py

fuzz: compiled
	ICS_FUZZ_EXAMPLES=100000 $(BIN)/pytest -q -k "fuzz or mutat or random" tests/unit

golden-update: compiled
	GOLDEN_UPDATE=1 $(BIN)/pytest -q tests/golden

clean:
	-$(BIN)/python -c "from ics_monitor import compiled; compiled.remove()"
	rm -rf $(VENV) build $(COMPILED) .bench .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find ics_monitor tests -name __pycache__ -prune -exec rm -rf {} +
