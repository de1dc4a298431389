# `make demo` and `make test` work on a fresh machine with only Python 3.11 and pip.
PYTHON ?= python3
VENV := .venv
CHECKOV_VENV := .venv-checkov
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

IMAGE ?= sports-highlights:dev
LOCAL_BASE ?= sports-highlights-base:bookworm

.PHONY: demo test browser image bench airflow clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# SoccerNet's evaluator (checked against ours in tests) needs only numpy and tqdm; its declared
# dependencies (video readers, captioning metrics, a hub client) are for downloading data sets.
SOCCERNET := SoccerNet==0.2.0

$(VENV)/.dev: $(VENV)/.core
	$(BIN)/pip install --quiet -e '.[aws,serve,airflow,test]'
	$(BIN)/pip install --quiet --no-deps $(SOCCERNET)
	touch $@

# checkov pins boto3 1.35 and ships a module named hcl2, so it lives in a venv of its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $@

demo: $(VENV)/.core
	$(BIN)/highlights demo --out $(DEMO_OUT)

# Headless Chromium and its WebDriver (Debian packages) for the report's browser test. Installed
# once, quietly, where we may (root with apt-get); elsewhere that test skips (and fails under CI).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null; \
	else echo "chromium/chromedriver missing and not root: the browser test will skip"; fi

test: $(VENV)/.dev $(CHECKOV_VENV)/.installed browser
	$(BIN)/ruff check highlights processing dags plugins tests benchmarks
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory image; \
	else echo "make test: Docker is not running, so the model-image tests will skip"; fi
	HIGHLIGHTS_IMAGE=$(IMAGE) $(BIN)/python -m pytest

# The model image (tests/test_image_*.py run it). Its base: BASE_IMAGE if given (say
# python:3.11-slim), else one made from Debian packages by debootstrap, which needs no image
# registry (model_container/build-local-base; the official base where debootstrap is absent).
image:
	@if [ -n "$(BASE_IMAGE)" ]; then base="$(BASE_IMAGE)"; \
	elif command -v debootstrap >/dev/null; then \
		model_container/build-local-base $(LOCAL_BASE) && base=$(LOCAL_BASE); \
	else base=; fi; \
	BASE_IMAGE=$$base PYTHON=$(PYTHON) model_container/build-image $(IMAGE)

$(DEMO_OUT)/model/manifest.json: $(VENV)/.core
	$(BIN)/highlights demo --out $(DEMO_OUT) --quiet

# Airflow standalone (SQLite, LocalExecutor) on http://127.0.0.1:8080 with the highlights DAGs.
# Log in as admin; the password is in airflow-home/simple_auth_manager_passwords.json.generated.
# Drop videos into airflow-home/highlights/incoming/: each gets its own run, several at once;
# results appear in airflow-home/highlights/out/. Pools come from dags/pools.json.
# Without AIRFLOW_MODEL/AIRFLOW_TARGETS it uses the demo's model (made first if missing).
AIRFLOW_MODEL ?= $(CURDIR)/$(DEMO_OUT)/model
AIRFLOW_TARGETS ?= ["PenaltyKick"]
AIRFLOW_ENV = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	AIRFLOW_VAR_HIGHLIGHTS_LOCAL='{"model_dir": "$(AIRFLOW_MODEL)", "settle_seconds": 3}' \
	AIRFLOW_VAR_HIGHLIGHTS_TARGETS='$(AIRFLOW_TARGETS)' \
	AIRFLOW_HOME="$(CURDIR)/airflow-home" \
	AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" \
	AIRFLOW__CORE__PLUGINS_FOLDER="$(CURDIR)/plugins" \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False \
	AIRFLOW__CORE__PARALLELISM=6 \
	AIRFLOW__CORE__EXECUTOR=LocalExecutor \
	AIRFLOW__HIGHLIGHTS__MAX_ACTIVE_RUNS=3 \
	AIRFLOW__HIGHLIGHTS__INBOX_POLL_SECONDS=5 \
	AIRFLOW__API__HOST=127.0.0.1 \
	AIRFLOW__API__PORT=8080 \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:8080/execution/ \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
airflow: $(VENV)/.dev $(if $(filter $(CURDIR)/$(DEMO_OUT)/model,$(AIRFLOW_MODEL)),$(DEMO_OUT)/model/manifest.json)
	mkdir -p airflow-home/highlights/incoming
	$(AIRFLOW_ENV) airflow db migrate
	$(AIRFLOW_ENV) airflow pools import dags/pools.json
	$(AIRFLOW_ENV) airflow standalone

bench: $(VENV)/.core
	$(BIN)/python benchmarks/detect_speed.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(DEMO_OUT) .highlights-cache
