#!/usr/bin/env bash
# Every test of the collection: unit and integration tests (real redis-server and PostgreSQL
# on loopback, playbooks through ansible-runner), ansible-doc and ansible-lint, ansible-test
# sanity and the Molecule rehearsals in a private Docker engine (both in the background, beside
# pytest), and the execution environment built there with every drill run inside it.
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

# Beside pytest, in the background: the Molecule rehearsals (tradeops-dr rehearse all: every
# scenario under molecule/, one at a time, each scenario's time printed), then ansible-test sanity
# (it works on a copy of the tracked files). pytest keeps about one of the two cores busy (measured:
# 0.8 of a core), these the other; their logs are printed once pytest is done. Under CI a
# scenario whose server this machine lacks fails instead of being skipped.
BG=.state/background
rm -rf "$BG" && mkdir -p "$BG"
bg_pid=
do_rehearse=0
[ "${SKIP_DOCKER:-0}" != 1 ] && [ "${SKIP_MOLECULE:-0}" != 1 ] && do_rehearse=1
do_sanity=0
[ "${SKIP_SANITY:-0}" != 1 ] && do_sanity=1
if [ $do_rehearse = 1 ] || [ $do_sanity = 1 ]; then
  step "started in the background: $([ $do_rehearse = 1 ] && echo 'Molecule rehearsals, then ')$([ $do_sanity = 1 ] && echo 'ansible-test sanity') (logs after pytest)"
  strict=()
  [ "${CI:-}" = true ] && strict=(--strict)
  (
    if [ $do_rehearse = 1 ]; then
      tradeops-dr rehearse all --jobs "${REHEARSE_JOBS:-1}" "${strict[@]}" >"$BG/rehearse.log" 2>&1
      echo $? >"$BG/rehearse.rc"
    fi
    if [ $do_sanity = 1 ]; then
      bash scripts/sanity.sh >"$BG/sanity.log" 2>&1
      echo $? >"$BG/sanity.rc"
    fi
  ) &
  bg_pid=$!
fi

step "pytest: unit, integration, collection checks"
pytest -p no:cacheprovider tests "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  rc=1
fi
[ $rc -eq 0 ] || status=$rc

if [ -n "$bg_pid" ]; then
  step "waiting for the background steps (started before pytest)"
  wait "$bg_pid"
  for part in rehearse sanity; do
    if [ "$part" = rehearse ]; then want=$do_rehearse; title="Molecule rehearsals (tradeops-dr rehearse all)"
    else want=$do_sanity; title="ansible-test sanity"; fi
    [ "$want" = 1 ] || continue
    step "$title - its output"
    cat "$BG/$part.log" 2>/dev/null || echo "test.sh: the background step $part left no log" >&2
    rc=$(cat "$BG/$part.rc" 2>/dev/null || echo 1)
    [ "$rc" = 0 ] || { echo "test.sh: $title failed (rc $rc)" >&2; status=1; }
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
