# ics-monitor: every target installs what it needs itself (a .venv beside this file).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_CAPTURES ?= pcaps/modbus/pymodbus_polling.pcap pcaps/modbus/pymodbus_all_functions.pcap pcaps/foundation/eth_le_us.pcap

.PHONY: install tools demo test lint bench fuzz golden-update clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Reference tools for the conformance tests and the benchmark (tshark, capinfos, tcpdump).
# Installed with apt when missing and we may; otherwise those tests skip and say why.
tools:
	@if ! command -v tshark >/dev/null 2>&1 || ! command -v capinfos >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing tshark/tcpdump (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark tcpdump >/dev/null); \
	  else \
	    echo "note: tshark not installed and no root apt: conformance tests will be skipped"; \
	  fi; \
	fi

demo: install
	$(BIN)/ics-monitor summary $(DEMO_CAPTURES)

test: install tools
	$(BIN)/pytest -n 2 -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install tools
	$(BIN)/python bench/bench.py

fuzz: install
	ICS_FUZZ_EXAMPLES=100000 $(BIN)/pytest -q -k "fuzz or mutat or random" tests/unit

golden-update: install
	GOLDEN_UPDATE=1 $(BIN)/pytest -q tests/golden

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache .hypothesis
