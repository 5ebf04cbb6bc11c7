# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
DEMO_MEMBERS ?= 60000
DEMO_ENRICHMENT ?= 50
# The demo keeps its own embedded MLflow store (SQLite + artifact folder) inside DEMO_DIR.
DEMO_MLFLOW := sqlite:///$(abspath $(DEMO_DIR))/mlflow.db

.PHONY: install demo test clean lock

install: $(STAMP)

# Exact versions come from constraints.txt so every machine gets the same stack.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,spark,tune]"
	touch $@

demo: $(STAMP)
	$(BIN)/cartscout synth --members $(DEMO_MEMBERS) --seed 7 --cancer-enrichment $(DEMO_ENRICHMENT) --out $(DEMO_DIR)/data
	$(BIN)/cartscout validate --data $(DEMO_DIR)/data --quarantine $(DEMO_DIR)/quarantine
	cd $(DEMO_DIR) && MLFLOW_TRACKING_URI=$(DEMO_MLFLOW) $(CURDIR)/$(BIN)/cartscout train --data data
	cd $(DEMO_DIR) && (MLFLOW_TRACKING_URI=$(DEMO_MLFLOW) $(CURDIR)/$(BIN)/cartscout promote challenger --reason "make demo" \
	  || MLFLOW_TRACKING_URI=$(DEMO_MLFLOW) $(CURDIR)/$(BIN)/cartscout promote challenger --force --reason "make demo: first model on a small synthetic population")
	MLFLOW_TRACKING_URI=$(DEMO_MLFLOW) $(BIN)/cartscout score --data $(DEMO_DIR)/data --out $(DEMO_DIR)/scores --no-progress
	@echo ""
	@echo "Worklist: $(DEMO_DIR)/scores/worklist.csv   report: $(DEMO_DIR)/scores/report.html"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri $(DEMO_MLFLOW)"
	@echo "Start the API (demo API key 'demo-key'):"
	@echo "  export MLFLOW_TRACKING_URI=$(DEMO_MLFLOW) CARTSCOUT_AUTH=apikey"
	@echo "  export CARTSCOUT_API_KEY_HASHES='[\"'\$$($(BIN)/python -c 'from service.auth import hash_api_key; print(hash_api_key(\"demo-key\"))')'\"]'"
	@echo "  $(BIN)/cartscout serve --port 8000"
	@echo "Then score a FHIR bundle:"
	@echo "  curl -s -H 'Authorization: Bearer demo-key' -H 'Content-Type: application/fhir+json' \\"
	@echo "       --data-binary @tests/fixtures/fhir/Andy_Schaden_d630c6ca-046c-470a-8f3a-4dbc3850e7ae.json localhost:8000/v1/fhir/score"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache mlruns mlartifacts mlflow.db
