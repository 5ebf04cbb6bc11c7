# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
DEMO_MEMBERS ?= 20000

.PHONY: install demo test bench clean lock

install: $(STAMP)

# Exact versions come from constraints.txt so every machine gets the same stack.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

demo: $(STAMP)
	$(BIN)/cartscout synth --members $(DEMO_MEMBERS) --seed 7 --cancer-enrichment 20 --out $(DEMO_DIR)/data
	$(BIN)/cartscout validate --data $(DEMO_DIR)/data --quarantine $(DEMO_DIR)/quarantine

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache mlruns mlflow.db
