# Agent Warden. `make demo` and `make test` work on a fresh machine: they install what they need.
SHELL := /bin/bash
NPM ?= npm

.PHONY: all install build build-dev test demo bench lint format format-check clean e2e chart-crds fuzz policy-validator pack image docs example-python

all: build

# `npm ci`: exactly what the lock file says, and it never rewrites it. The lock holds every
# platform's optional packages (the embedded PostgreSQL binaries, @swc/core's), so the same file
# installs on Linux and macOS, x64 and arm64; test/install.test.ts keeps it so. After changing
# package.json: `npm install --package-lock-only`, and commit both.
node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json

# What CI checks besides the tests: types (tests included), then the ESLint rules and layer zones
# of eslint.config.mjs, then the formatting (Prettier). Existing violations recorded in eslint-suppressions.json do not fail it;
# new ones do (`npx eslint --prune-suppressions` once some are fixed).
lint: install
	npx tsc -p tsconfig.test.json
	npx eslint --max-warnings 0 .
	npx prettier --check --log-level warn .

# Rewrites the TypeScript and JavaScript in the house style (.prettierrc.json, .editorconfig).
format: install
	npx prettier --write --log-level warn .

format-check: install
	npx prettier --check --log-level warn .

test: build
	npx tsc -p tsconfig.test.json
	# The OpenTelemetry exporters load node:http with a dynamic import(), which Jest runs only with VM modules on.
	NODE_OPTIONS=--experimental-vm-modules npx jest --ci

demo: build
	./bin/warden demo

# The Python LangChain agent of examples/python-langchain, for real, through the sidecar: a venv with
# its requirements (cached in ~/.cache/agent-warden/ by their hash; the first run pip-installs),
# embedded PostgreSQL, a scripted OpenAI-compatible model and an MCP server. Prints the agent's
# conversation: masked rows and tool results, denied statements. Needs python3 >= 3.10 (or WARDEN_PYTHON).
example-python: install
	NODE_OPTIONS=--experimental-vm-modules npx jest --ci --runInBand --verbose test/python-example.test.ts

# pgbench, pgbouncer and nginx come from Debian packages; the benches skip a peer that is absent.
# The benches and the test support they use build into dist-dev/ (tsconfig.dev.json), never dist/.
build-dev: install
	npx tsc -p tsconfig.dev.json

# `make bench` (~6 min): PostgreSQL (pgbench), HTTP (saturation and a fixed rate), MCP tools/call
# (JSON and SSE answers), the sidecar's start and memory, then ONE table of them all
# (bench/summary.ts; dist-dev/bench-summary.json).
# Longer runs: BENCH_SECONDS, BENCH_ROUNDS, BENCH_STARTS (see each file's header).
# BENCH_EXTRA=1 adds the webhook latency and a 1 GB result streamed through the sidecar.
bench: build-dev
	node dist-dev/bench/pg-bench.js
	node dist-dev/bench/http-bench.js
	node dist-dev/bench/mcp-bench.js
	node dist-dev/bench/startup.js
	node dist-dev/bench/summary.js
	@if [ "$${BENCH_EXTRA:-0}" = 1 ]; then node dist-dev/bench/webhook.js && node dist-dev/bench/pg-large-result.js; fi

# The differential fuzzer (test/fuzz) for longer: hostile SQL and protocol sequences through the
# real sidecar to a real PostgreSQL, checked against the policy. `make test` runs it briefly.
# FUZZ_SEED picks the programs (printed by every run), FUZZ_ITERATIONS how many, FUZZ_TIME_LIMIT_S
# stops earlier; FUZZ_SHRINK_RUNS bounds minimising a failure; FUZZ_VERBOSE=1 shows stuck connections;
# FUZZ_AVOID="DO $$|row_to_json" leaves out statements of classes already known, to look past them.
FUZZ_ITERATIONS ?= 3000
FUZZ_TIME_LIMIT_S ?= 1200
fuzz: install
	FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) FUZZ_TIME_LIMIT_S=$(FUZZ_TIME_LIMIT_S) NODE_OPTIONS=--experimental-vm-modules \
	  npx jest --ci --roots '<rootDir>/test/fuzz'

# Tests in e2e/ build the image, start a kind cluster (Docker + kind) and install the chart; where
# either is missing they skip, saying why. WARDEN_E2E_KEEP=1 keeps the cluster;
# WARDEN_E2E_CLUSTER=existing WARDEN_E2E_IMAGE=... uses the current kubeconfig's cluster instead.
e2e: build chart-crds
	WARDEN_E2E=1 npx jest --ci --runInBand --verbose --roots '<rootDir>/e2e' --testTimeout=1800000

# crds/ is the one source of truth; Helm does not follow symlinks out of a chart, so the chart
# carries copies (in its crds subchart, which crds.install switches). test/chart.test.ts fails
# when they drift: run this after editing a CRD.
chart-crds:
	rm -f charts/agent-warden/charts/crds/crds/*.yaml
	cp crds/*.yaml charts/agent-warden/charts/crds/crds/

# The sidecar validates policies with ajv's standalone code generated from the CRD ahead of time
# (common/policy/schema-validator.generated.ts; compiling at start cost ~200 ms and ~10 MB).
# common/policy/schema-validator.test.ts fails when it drifts: run this after editing the CRD.
policy-validator: install
	UPDATE_VALIDATOR=1 NODE_OPTIONS=--experimental-vm-modules npx jest --ci common/policy/schema-validator

# The generated docs: docs/policy-reference.md's field reference (from the CRD) and statement-class
# table (tools/gen-policy-reference.ts), docs/cli.md (the command tree, cli/cli-doc.ts) and the
# generated blocks of docs/injection.md (a real injection run). Their tests fail when they drift
# (test/policy-reference, cli/cli-doc, operator/inject/injection-doc): run this after changing them.
docs: build-dev
	node dist-dev/tools/gen-policy-reference.js
	node dist-dev/cli/cli-doc.js
	UPDATE_DOCS=1 NODE_OPTIONS=--experimental-vm-modules npx jest --ci operator/inject/injection-doc

# The npm package (and krew plugin archive) that stands alone: `npm install -g` of it gives `warden`
# and `kubectl-warden` with nothing fetched (release/pack.mjs; release/RELEASING.md says how to publish).
pack: install
	node release/pack.mjs

# The image, with Docker (buildx when present) or Podman. A local build is loaded into the engine:
# `kind load docker-image $(IMAGE)` puts it into a kind cluster. Multi-arch and push:
# `make image IMAGE_PLATFORMS=linux/amd64,linux/arm64 IMAGE_PUSH=1` (see release/image.sh).
VERSION = $(shell node -p "require('./package.json').version")
IMAGE ?= ghcr.io/agent-warden/agent-warden:$(VERSION)
image:
	IMAGE=$(IMAGE) bash release/image.sh

clean:
	rm -rf dist dist-dev .tmp node_modules
