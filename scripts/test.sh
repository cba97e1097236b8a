#!/usr/bin/env bash
# Every test of the collection: unit and integration tests (real redis-server and PostgreSQL
# on loopback, playbooks through ansible-runner), ansible-doc and ansible-lint, ansible-test
# sanity, the Molecule scenarios in a private Docker engine, and the execution environment built
# there with every drill run inside it.
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

if [ "${SKIP_DOCKER:-0}" != 1 ]; then
  for scenario in molecule/*/molecule.yml; do
    name=$(basename "$(dirname "$scenario")")
    step "molecule test -s $name"
    molecule test -s "$name" || status=1
  done
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
