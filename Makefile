# ics-monitor: every target installs what it needs itself (a .venv beside this file).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_STATE ?= .state/demo

.PHONY: install tools demo test lint bench soak fuzz golden-update clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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
demo: install
	rm -rf $(DEMO_STATE)
	$(BIN)/ics-monitor baseline learn --state $(DEMO_STATE) pcaps/demo/plant_normal.pcap
	$(BIN)/ics-monitor replay --state $(DEMO_STATE) pcaps/demo/plant_normal.pcap pcaps/demo/plant_attack.pcap

test: install tools
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install tools
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/bench_workers.py
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python bench/bench_live.py; \
	else echo "bench_live: skipped (tcpreplay onto a mirrored link needs root for network namespaces)"; fi

# Not in CI: 10 minutes of live traffic on the lab's mirrored link; the monitor's RSS must stay flat.
soak: install tools
	$(BIN)/python bench/soak.py

fuzz: install
	ICS_FUZZ_EXAMPLES=100000 $(BIN)/pytest -q -k "fuzz or mutat or random" tests/unit

golden-update: install
	GOLDEN_UPDATE=1 $(BIN)/pytest -q tests/golden

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache .hypothesis
