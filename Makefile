# Common commands. `make up` and `make test` are the whole set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_ARGS = $(if $(JSON),--json $(JSON)) $(ARGS)  # make bench-X JSON=FILE ARGS="--rounds 3": the part's options (--help)
STACK ?= lab

.PHONY: up engine deploy preview destroy bench-pair bench-engine bench-fuzz bench-holder bench-alerts bench-bgp bench-vsphere bench-watcher lab-up lab-down test unit lab-test lint deps venv check render golden docs docs-serve bench clean

up: deps venv engine  ## the main job: on the lab, bring it up and `pulumi up` the lab stack (STACK=lab-vsphere: as VMs of the simulated vCenter); STACK=dev: check, then pulumi up
	@case "$(STACK)" in \
	  lab|lab-vsphere|lab-multi|lab-tls|lab-bgp) $(PY) -m halb_lab up && $(PY) -m halb_lab deploy --stack $(STACK) ;; \
	  *) $(PY) -m halb check --stack $(STACK) && \
	     export PATH="$(CURDIR)/.engine/bin:$$PATH" && \
	     pulumi up --stack $(STACK) && pulumi stack output --stack $(STACK) ;; \
	esac

engine:  ## the Pulumi CLI, language host and the command, vsphere and random providers: installed ones, else built (Go modules, ../shared/vendor)
	@./scripts/build-engine

deploy: venv engine  ## `pulumi up` of the lab stack again (SET="path=value ..." for one deploy)
	$(PY) -m halb_lab deploy $(foreach s,$(SET),--set $(s))

preview: venv engine  ## `pulumi preview --diff` of the lab stack (SET="path=value ..." as for deploy)
	$(PY) -m halb_lab preview $(foreach s,$(SET),--set $(s))

destroy: venv engine  ## `pulumi destroy` of the lab stack: every declared delete, in reverse dependency order
	$(PY) -m halb_lab destroy

lab-up: deps venv engine
	$(PY) -m halb_lab up

lab-down: venv
	$(PY) -m halb_lab down

test: deps venv engine lint  ## everything CI runs: lint, types, unit tests, then the lab through the real engine (root)
	$(PY) -m pytest

unit: venv  ## the unit tests only (seconds)
	$(PY) -m pytest -m "not lab"

lab-test: deps venv engine
	$(PY) -m pytest -m lab

lint: venv
	$(VENV)/bin/ruff check halb halb_lab tests bench __main__.py
	$(VENV)/bin/ruff format --check halb halb_lab tests bench __main__.py
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

docs: venv  ## regenerate the docs' generated parts (config and CLI references, benchmark tables, the pair's diagram), then build the site with mkdocs --strict into site/
	$(PY) -m halb.docs
	$(PY) -m halb_lab.reference
	$(PY) -m bench.report
	if command -v dot >/dev/null; then dot -Tsvg docs/pair.dot -o docs/pair.svg; else echo "no graphviz (dot): docs/pair.svg left as it is"; fi
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

docs-serve: docs  ## serve the docs site on http://127.0.0.1:8000 for reading
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:8000

bench: deps venv engine  ## every part of the benchmark (python -m bench --list; about 5 hours), merged into bench/results.json with its provenance and the docs' tables rewritten; ARGS="--only pair engine" or "--skip holder" to choose
	$(PY) -m bench --write $(ARGS)

bench-pair: deps venv engine  ## failover, faults, lifecycle, throughput, scale: seed vs kubeadm guide vs halb (about 95 minutes); JSON=FILE to save, ARGS="--skip throughput ..." for its options (python -m bench.pair --help)
	$(PY) -m bench.pair $(BENCH_ARGS)

bench-engine: deps venv engine  ## the IaC loop through the real engine only: cold deploy, no-op preview and up, a one-server change, re-provision, destroy (median of 5; about 6 minutes)
	$(PY) -m bench.iac $(BENCH_ARGS)

bench-vsphere: deps venv engine  ## the vSphere path against the simulated vCenter: cold deploy, no-op preview, resize, destroy (median of 3), the rolling VM replacement drill (about 3 minutes)
	$(PY) -m bench.vsphere $(BENCH_ARGS)

bench-fuzz: deps venv  ## the config fuzzer, longer than CI runs it (ARGS="--examples N", default 3000; about 4 minutes)
	$(PY) -m bench.fuzz $(BENCH_ARGS)

bench-watcher: deps venv engine  ## the health watcher's cost: added latency and rps with it running and stopped (5 alternating rounds), its CPU, the hang drill x20 (about 8 minutes)
	$(PY) -m bench.watcher $(BENCH_ARGS)

bench-holder: deps venv engine  ## one VIP holder under every fault: keepalived kills, partitions, stuns, link loss, switchover, the fast profile; x20 each, seed vs kubeadm guide vs halb (about 2 hours)
	$(PY) -m bench.holder $(BENCH_ARGS)

bench-alerts: deps venv engine  ## each alert rule's fault-to-delivery time (every alert drill x5, Prometheus and Alertmanager on the lab) and the node exporter's cost (about 50 minutes)
	$(PY) -m bench.alerts $(BENCH_ARGS)

bench-bgp: deps venv engine  ## BGP mode on lab-bgp: haproxy killed and hung, a link cut (x20 each: withdrawal and failing time), the spread of 3000 new connections over 3 nodes (about 15 minutes)
	$(PY) -m bench.bgp $(BENCH_ARGS)

bench-vips: deps venv engine  ## several VIPs on lab-multi: per-VIP failover (haproxy killed, link cut; each node, x5) and active/active throughput (about 6 minutes)
	$(PY) -m bench.vips $(BENCH_ARGS)

bench-tls: deps venv engine  ## TLS on lab-tls: handshakes and keep-alive rps via haproxy vs nginx ending TLS itself, haproxy CPU per handshake, failed requests during certificate rotations (about 4 minutes)
	$(PY) -m bench.tls $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
