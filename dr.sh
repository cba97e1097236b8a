#!/usr/bin/env bash
# The two commands of README.md, each doing all of its own set-up on a fresh Debian 12
# machine (bash and apt are all they assume):
#   ./dr.sh drill   sandbox up, inject failures, recover them with the playbooks, print what happened
#   ./dr.sh test    every test (what CI runs through .ci/run)
set -euo pipefail
cd "$(dirname "$0")" || exit 1
ROOT=$(pwd)
export VENV=${VENV:-$ROOT/.venv}
case "${1:-}" in
  drill|test) ;;
  *) echo "usage: $0 drill|test" >&2; exit 2 ;;
esac
# the test run's clock starts before the set-up: scripts/test.sh prints the whole run's time
export TRADEOPS_DR_TEST_STARTED=${TRADEOPS_DR_TEST_STARTED:-$(date +%s)}
WITH_DOCKER=$([ "$1" = test ] && echo 1 || echo 0) bash scripts/setup.sh
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
if [ "$1" = drill ]; then
  exec tradeops-dr drill all
fi
shift
exec bash scripts/test.sh "$@"
