# The two commands of README.md. Each does all of its own set-up (scripts/setup.sh).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup drill test lint sandbox-up sandbox-down clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

## The main job: sandbox up, inject failures, recover with the playbooks, print what happened.
drill: setup
	tradeops-dr drill redis

## Every test: unit, integration (real Redis/PostgreSQL on loopback), lint, molecule.
test: setup
	bash scripts/test.sh

lint: setup
	ansible-lint --profile production

sandbox-up: setup
	tradeops-dr sandbox up

sandbox-down:
	-tradeops-dr sandbox down

clean: sandbox-down
	rm -rf .state .sandbox
