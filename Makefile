# Compatibility targets: each is one line calling `cargo xtask`. `make help` lists what exists.
.PHONY: help test ci lint lint-dockerfiles lint-hardcoded doctor setup test-e2e test-e2e-quickstart-helm test-e2e-quickstart-manifest test-e2e-all-parallel cleanup

help:
	cargo xtask --help

test:
	cargo xtask ci

ci:
	cargo xtask ci

lint:
	cargo xtask lint

lint-dockerfiles:
	cargo xtask lint-dockerfiles

lint-hardcoded:
	cargo xtask lint-hardcoded

doctor:
	cargo xtask doctor

setup:
	cargo xtask setup

test-e2e:
	cargo xtask e2e --flow full

test-e2e-quickstart-helm:
	cargo xtask e2e --flow quickstart-helm

test-e2e-quickstart-manifest:
	cargo xtask e2e --flow quickstart-manifest

test-e2e-all-parallel:
	cargo xtask e2e --parallel

cleanup:
	cargo xtask cleanup --stale
