#!/usr/bin/env bash
# Install everything tradeops.dr needs on a Debian 12 machine, idempotently:
# Debian packages (servers and client tools used by the sandbox and the tests), a virtualenv
# with the Python dependencies, and the link that puts this checkout on Ansible's
# collections path as tradeops.dr (Galaxy is not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
EXTRAS=${EXTRAS:-test}

APT_PACKAGES=(redis-server redis-tools postgresql postgresql-client sqlite3 python3-venv git shellcheck)
if [ "${WITH_DOCKER:-1}" = 1 ]; then
  APT_PACKAGES+=(docker.io docker-compose debootstrap)
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them first)" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
stamp="$VENV/.tradeops-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[${EXTRAS}]"
  touch "$stamp"
fi

# The collection on its collections path (ansible.cfg: collections_path = .state/collections).
mkdir -p .state/collections/ansible_collections/tradeops
ln -sfn "$ROOT" .state/collections/ansible_collections/tradeops/dr
for shadow in "$HOME/.ansible/collections/ansible_collections/tradeops/dr" /usr/share/ansible/collections/ansible_collections/tradeops/dr; do
  if [ -e "$shadow" ] && [ "$(readlink -f "$shadow")" != "$ROOT" ]; then
    echo "setup: WARNING: $shadow is another copy of tradeops.dr and comes first on Ansible's collections path;" \
         "remove it so that this checkout is the one that runs" >&2
  fi
done
# (not `ansible --version | head -1`: ansible dies of a broken pipe when head exits first)
echo "setup: ready (ansible-core $("$VENV/bin/python" -c 'import ansible.release; print(ansible.release.__version__)'), venv $VENV)"
