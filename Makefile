# Compatibility targets: each is one line calling `cargo xtask`. `make help` lists what exists.
.PHONY: help test ci lint lint-dockerfiles lint-hardcoded doctor setup

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
