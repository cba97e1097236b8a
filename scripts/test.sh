#!/usr/bin/env bash
# Every test of the collection: unit and integration tests (real redis-server and PostgreSQL
# on loopback, playbooks through ansible-runner), ansible-doc and ansible-lint, ansible-test
# sanity, the Molecule rehearsals in a private Docker engine (in the background, beside pytest),
# and the execution environment built there with every drill run inside it.
# SKIP_DOCKER=1, SKIP_MOLECULE=1, SKIP_SANITY=1, SKIP_EE=1 leave parts out (for development).
# Called by `make test` after scripts/setup.sh; .ci/run calls `make test`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"

status=0
step() { echo; echo "=== $*"; }

if [ "${SKIP_DOCKER:-0}" != 1 ]; then
  step "private Docker engine and the locally built base image"
  eval "$(bash scripts/docker-engine.sh env)"
  trap 'bash scripts/docker-engine.sh stop' EXIT
  bash scripts/docker-engine.sh image || exit 1
  export TRADEOPS_DR_REQUIRE_DOCKER=1
fi

# The Molecule rehearsals (tradeops-dr rehearse all: every scenario under molecule/, one at a time,
# each scenario's time printed) run in the background while pytest runs: pytest keeps one of the
# two cores busy, the containers the other (measured: about 0.8 of a core for pytest). Under CI a
# scenario whose server this machine lacks fails instead of being skipped.
rehearse_pid=
if [ "${SKIP_DOCKER:-0}" != 1 ] && [ "${SKIP_MOLECULE:-0}" != 1 ]; then
  step "Molecule rehearsals: started in the background (log .state/rehearse/suite.log; summary after pytest)"
  mkdir -p .state/rehearse
  strict=()
  [ "${CI:-}" = true ] && strict=(--strict)
  tradeops-dr rehearse all --jobs "${REHEARSE_JOBS:-1}" "${strict[@]}" >.state/rehearse/suite.log 2>&1 &
  rehearse_pid=$!
fi

step "pytest: unit, integration, collection checks"
pytest -p no:cacheprovider tests "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  rc=1
fi
[ $rc -eq 0 ] || status=$rc

if [ "${SKIP_SANITY:-0}" != 1 ]; then
  step "ansible-test sanity"
  bash scripts/sanity.sh || status=1
fi

if [ -n "$rehearse_pid" ]; then
  step "Molecule rehearsals (tradeops-dr rehearse all): waiting for them; per-scenario logs in .state/rehearse/"
  wait "$rehearse_pid"
  rc=$?
  # the progress and the summary (a failed scenario's last log lines are in it, indented with |)
  cat .state/rehearse/suite.log
  [ $rc -eq 0 ] || { echo "test.sh: the Molecule rehearsals failed (rc $rc)" >&2; status=1; }
fi

if [ "${SKIP_DOCKER:-0}" != 1 ] && [ "${SKIP_EE:-0}" != 1 ]; then
  step "execution environment: ansible-builder build, then every drill inside the image"
  ee_sandbox=$(mktemp -d /tmp/tradeops-ee-sandbox.XXXXXX)
  chmod 0755 "$ee_sandbox"  # PostgreSQL runs as the postgres user under root
  if bash scripts/ee.sh build && bash scripts/ee.sh info; then
    TRADEOPS_DR_SANDBOX=$ee_sandbox bash scripts/ee.sh drill all || status=1
  else
    status=1
  fi
  TRADEOPS_DR_SANDBOX=$ee_sandbox tradeops-dr sandbox down >/dev/null 2>&1
  rm -rf "$ee_sandbox"
fi

exit $status
