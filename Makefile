# datapath — composable Linux datapath modules for CNI plugins and node agents.
# Every target that needs the toolchain depends on `setup`, which is idempotent and quiet when done.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export PATH := $(ROOT)/.toolchain/bin:$(PATH)

.PHONY: help setup build lint typecheck test demo bench docs install-cni pack api-report clean

help:
	@echo "make demo   run the reference agent (needs root)"
	@echo "make test   lint, typecheck, docs validation, unit and privileged suites"
	@echo "make bench  run every benchmark and rewrite BENCHMARKS.md"
	@echo "make docs   generate the API reference into docs/api/"
	@echo "make pack   pack every public package into .packs/ and check the tarballs (publint, attw)"
	@echo "make install-cni PREFIX=/opt/cni/bin   install the datapath-cni reference plugin"

setup:
	@bash scripts/setup.sh

build: setup
	@pnpm -r --silent run build

lint: setup
	@pnpm exec biome check .

typecheck: setup
	@pnpm exec tsc -p tsconfig.json

test: setup
	@echo "== lint (biome)" && pnpm exec biome check --error-on-warnings . >/dev/null 2>.test-lint.log || { cat .test-lint.log; rm -f .test-lint.log; exit 1; }; rm -f .test-lint.log
	@echo "== dependency graph" && node scripts/check-graph.mjs
	@echo "== docs links (READMEs, docs/)" && node scripts/check-docs.mjs
	@echo "== typecheck (tsc)" && pnpm exec tsc -p tsconfig.json
	@echo "== docs (typedoc, validated, every warning an error)" && pnpm exec typedoc --logLevel Warn --out .test-results/docs
	@echo "== API reports" && node scripts/api-report.mjs --check
	@echo "== pack (publint, attw) and consumer smoke test" && node scripts/pack.mjs && node scripts/consumer-smoke.mjs
	@echo "== unit and privileged suites (vitest)" && node scripts/test.mjs

demo: setup
	@node scripts/demo.mjs

bench: setup
	@node scripts/bench.mjs

docs: setup
	@pnpm exec typedoc
	@echo "API reference written to docs/api/index.html"

pack: setup
	@node scripts/pack.mjs

api-report: build
	@node scripts/api-report.mjs

PREFIX ?= /opt/cni/bin
install-cni: setup
	@node --import tsx packages/cni-plugin/scripts/install.mjs "$(PREFIX)"

clean:
	rm -rf node_modules packages/*/node_modules packages/*/dist packages/*/prebuilds examples/*/node_modules docs/api .test-results .toolchain/*.stamp
