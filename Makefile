# Agent Warden. `make demo` and `make test` work on a fresh machine: they install what they need.
SHELL := /bin/bash
NPM ?= npm

.PHONY: all install build test demo bench lint clean e2e

all: build

# `npm install`, not `npm ci`: npm 11 omits other platforms' optional packages (@swc/core-*) from
# the lock file and `npm ci` then refuses it. The lock file still pins every version installed here.
node_modules/.installed: package.json package-lock.json
	$(NPM) install --no-audit --no-fund
	@touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json

lint: install
	npx tsc -p tsconfig.test.json

test: build
	npx tsc -p tsconfig.test.json
	npx jest --ci

demo: build
	./bin/warden demo

# pgbench and pgbouncer come from Debian packages; the bench skips a peer that is absent.
bench: build
	node dist/bench/pg-bench.js
	@if [ "$${BENCH_LARGE:-1}" != 0 ]; then node dist/bench/pg-large-result.js; fi

# Tests in e2e/ need a kind cluster; without one they skip, saying why.
e2e: build
	@if ls e2e/*.test.ts >/dev/null 2>&1; then npx jest --ci --roots '<rootDir>/e2e'; \
	else echo "no end-to-end tests yet: they arrive with the operator (e2e/)"; fi

clean:
	rm -rf dist node_modules
