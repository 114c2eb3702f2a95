# Common commands. `make up` and `make test` are the whole set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: up test unit lint deps venv check render golden docs clean

up: deps venv  ## the main job: validate and render the stack, then `pulumi up` it
	$(PY) -m halb check --stack $(STACK)
	$(PY) -m halb render --stack $(STACK) --out out/$(STACK)
	@command -v pulumi >/dev/null || { echo "halb: the Pulumi CLI is not installed; see https://www.pulumi.com/docs/install/ then run 'make up' again. Rendered files are in out/$(STACK)/."; exit 1; }
	pulumi up --stack $(STACK)

test: deps venv lint unit  ## everything CI runs

unit: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check halb tests __main__.py
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

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
