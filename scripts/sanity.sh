#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/tradeops/dr on a real
# path (it resolves links), so it runs on a copy of the tracked files.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# --venv would download get-pip from a host these machines cannot reach: run --local in a
# venv of its own, whose pinned sanity requirements cannot disturb the main one.
# the venv ansible-test runs in and installs its sanity requirements into: .ci/run keeps it outside the clean
# clone (TRADEOPS_DR_SANITY_VENV, as it keeps the Docker images), rebuilt when ansible-core's version changes
SANITY_VENV=${TRADEOPS_DR_SANITY_VENV:-$ROOT/.state/sanity-venv}
CORE=$("$ROOT/.venv/bin/python" -c 'import ansible; print(ansible.__version__)')
# on the interpreter the main venv was made from (scripts/setup.sh: Debian's python3)
BASE=$("$ROOT/.venv/bin/python" -c 'import os, sys; print(os.path.realpath(sys._base_executable))')
# made anew unless a complete one of this ansible-core and interpreter is there (the marker is written last: an
# interrupted install is not taken for a complete one)
READY=$SANITY_VENV/.tradeops-dr-sanity-ready
# ansible-test's HOME (below) keeps the venvs it makes for its tests: they follow the interpreter too
SANITY_HOME=${TRADEOPS_DR_SANITY_HOME:-$ROOT/.state/sanity-home}
if [ "$(cat "$READY" 2>/dev/null)" != "$CORE $BASE" ]; then
  if [ -e "$SANITY_VENV" ] && [ ! -f "$SANITY_VENV/pyvenv.cfg" ]; then
    echo "sanity.sh: $SANITY_VENV exists and is not a venv: not removing it (TRADEOPS_DR_SANITY_VENV)" >&2
    exit 2
  fi
  rm -rf "$SANITY_VENV" "$SANITY_HOME/.ansible/test/venv"
  "$BASE" -m venv "$SANITY_VENV"
  "$SANITY_VENV/bin/python" -m pip install -q --upgrade pip
  "$SANITY_VENV/bin/python" -m pip install -q "ansible-core==$CORE" redis docker psycopg2-binary
  echo "$CORE $BASE" >"$READY"
fi
export PATH="$SANITY_VENV/bin:$PATH"
# ansible-test passes only HOME and PATH (and a few more) to the pip it runs: give it a HOME
# of its own whose pip config carries this machine's pip settings (index, certificate).
# ansible-test's HOME: it makes the venvs of several sanity tests under ~/.ansible/test/venv (keyed by their pinned
# requirements), so .ci/run keeps it beside the venv (TRADEOPS_DR_SANITY_HOME) instead of making them in every clone
mkdir -p "$SANITY_HOME/.config/pip"
"$SANITY_VENV/bin/python" - "$SANITY_HOME/.config/pip/pip.conf" <<'PY'
import configparser, os, subprocess, sys
conf = configparser.ConfigParser()
conf.read([os.path.expanduser("~/.config/pip/pip.conf"), os.path.expanduser("~/.pip/pip.conf")])
if not conf.has_section("global"):
    conf.add_section("global")
for var, key in (("PIP_CERT", "cert"), ("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
                 ("PIP_FIND_LINKS", "find-links"), ("PIP_DEFAULT_TIMEOUT", "timeout")):
    if os.environ.get(var):
        conf.set("global", key, os.environ[var])
with open(sys.argv[1], "w") as handle:
    conf.write(handle)
PY
export HOME=$SANITY_HOME
PIP_VERSION=$("$SANITY_VENV/bin/python" -c 'import re, ansible_test, pathlib; print(re.search(r"pip=.([0-9.]+).", (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()).group(1))')
mkdir -p "$HOME/.ansible/test/cache"
cp scripts/get_pip_offline.py "$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DEST="$WORK/ansible_collections/tradeops/dr"
mkdir -p "$DEST"
git ls-files -z --cached --others --exclude-standard | (cd "$ROOT" && xargs -0 cp --parents -t "$DEST")
cd "$DEST"
git init -q && git add -A  # ansible-test lists the collection's files through git
exec ansible-test sanity --local --requirements --python "$("$SANITY_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
