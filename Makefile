# Shortcuts for the two commands of README.md (./dr.sh drill, ./dr.sh test) and a few more.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup drill test lint sanity sandbox-up sandbox-down bench clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

drill:
	./dr.sh drill

test:
	./dr.sh test

lint: setup
	ansible-lint --profile production

sanity: setup
	bash scripts/sanity.sh

sandbox-up: setup
	tradeops-dr sandbox up

sandbox-down:
	-tradeops-dr sandbox down

bench: setup
	python bench/redis_recovery.py

clean: sandbox-down
	-bash scripts/docker-engine.sh stop
	rm -rf .state .sandbox
