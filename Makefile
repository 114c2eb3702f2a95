# Common commands. `make up` and `make test` are the whole set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= lab
# The lab keeps its Pulumi state on this machine, secrets under a passphrase: no Pulumi Cloud account.
LAB_ENV := PULUMI_BACKEND_URL=file://$(CURDIR)/.pulumi-state PULUMI_CONFIG_PASSPHRASE=$${PULUMI_CONFIG_PASSPHRASE-halb-lab}

.PHONY: up lab-up lab-down test unit lab-test lint deps venv check render golden docs bench clean

up: deps venv  ## the main job: validate the stack; on the lab, bring it up; then `pulumi up`
	$(PY) -m halb check --stack $(STACK)
	@if [ "$(STACK)" = lab ]; then $(PY) -m halb.lab up; fi
	@command -v pulumi >/dev/null || { \
	  echo "halb: the Pulumi CLI is not installed. Install it as https://www.pulumi.com/docs/install/ describes"; \
	  echo "      and run 'make up' again. Meanwhile 'make render' shows the files halb would install."; exit 1; }
	@if [ "$(STACK)" = lab ]; then \
	  mkdir -p .pulumi-state && $(LAB_ENV) pulumi stack select --create lab && \
	  $(LAB_ENV) pulumi up --stack lab --yes && $(LAB_ENV) pulumi stack output --stack lab; \
	else pulumi up --stack $(STACK) && pulumi stack output --stack $(STACK); fi

lab-up: deps venv
	$(PY) -m halb.lab up

lab-down: venv
	$(PY) -m halb.lab down

test: deps venv lint  ## everything CI runs: lint, types, unit tests, then the lab (root; about a minute)
	$(PY) -m pytest

unit: venv  ## the unit tests only (seconds)
	$(PY) -m pytest -m "not lab"

lab-test: deps venv
	$(PY) -m pytest -m lab

lint: venv
	$(VENV)/bin/ruff check halb tests bench __main__.py
	$(VENV)/bin/mypy

deps:
	./scripts/install-deps

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

check: venv
	$(PY) -m halb check --stack $(STACK)

render: venv
	rm -rf out/$(STACK) && $(PY) -m halb render --stack $(STACK) --out out/$(STACK)

golden: venv  ## accept the current rendering as the golden files
	UPDATE_GOLDEN=1 $(PY) -m pytest tests/test_render.py -k golden

docs: venv  ## regenerate the README's config reference from the model
	$(PY) -c "from pathlib import Path; from halb.docs import update_readme; p = Path('README.md'); p.write_text(update_readme(p.read_text()))"

bench: deps venv  ## failover and throughput: seed vs kubeadm guide vs halb (about 10 minutes); JSON=FILE to save
	$(PY) bench/bench.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
