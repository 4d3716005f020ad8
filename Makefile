# Compatibility targets: each is one line calling `cargo xtask`. `make help` lists what exists.
.PHONY: help test doctor ci

help:
	cargo xtask --help

test:
	cargo xtask ci

ci:
	cargo xtask ci

doctor:
	cargo xtask doctor
