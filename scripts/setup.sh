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

APT_PACKAGES=(redis-server redis-tools postgresql postgresql-client pgbackrest sqlite3 python3-venv git shellcheck)
# detection and response (issue 28): Prometheus (promtool), Alertmanager, the exporters; Java for ansible-rulebook
MONITORING_PACKAGES=(prometheus prometheus-alertmanager prometheus-redis-exporter prometheus-postgres-exporter
                     prometheus-node-exporter)
APT_PACKAGES+=("${MONITORING_PACKAGES[@]}" openjdk-17-jre-headless)
# process accounting (accton), for scripts/test.sh's CPU report of a whole run (TRADEOPS_DR_CPU_ACCOUNTING=1; its
# service is not started here: the test run turns accounting on and off itself)
APT_PACKAGES+=(acct)
if [ "${WITH_DOCKER:-1}" = 1 ]; then
  APT_PACKAGES+=(docker.io docker-compose debootstrap)
fi
# ../shared/servers (or TRADEOPS_DR_SERVERS): the real TimescaleDB and QuestDB builds, see below;
# QuestDB runs on Debian's Java 17.
SERVERS=${TRADEOPS_DR_SERVERS:-$ROOT/../shared/servers}
if [ -f "$SERVERS/SHA256SUMS" ]; then
  APT_PACKAGES+=(postgresql-15)  # QuestDB runs on the Java 17 installed above
fi
# apt_install WHY PACKAGE...: install (or upgrade to Debian's current version) as root, or say
# what is missing and stop.
apt_install() {
  local why=$1
  shift
  if [ "$(id -u)" != 0 ]; then
    echo "setup: $why: $* (run as root, or install them first)" >&2
    exit 1
  fi
  echo "setup: $why: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  # Debian starts a daemon it installs, and Prometheus, Alertmanager and the exporters listen on every
  # address by default: the tests start their own on 127.0.0.1, so nothing is started here (policy-rc.d
  # answers 101, "not allowed", for the install; an existing policy is left alone)
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
  fi
  local rc=0
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
  if [ $made_policy = 1 ]; then rm -f "$policy"; fi
  return $rc
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "missing Debian packages" "${missing[@]}"
fi

# The venvs' interpreter: Debian's own python3 (the one python3-venv above is for), not whatever python3 comes
# first on PATH. Debian builds it with profile-guided and link-time optimisation; a pyenv build without them (the
# first python3 on the CI machine) ran the same healthy full_recovery.yml with 18 % more CPU (docs/testing.md).
# PYTHON=... picks another one.
PYTHON=${PYTHON:-$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)}
# the real file of an interpreter, or of the one a venv was made from
base_of() { "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'; }
BASE=$(base_of "$PYTHON")
# remove_venv DIR WHY: a venv removed to be made again; a folder that is not a venv is never removed (exit 2)
remove_venv() {
  if [ ! -f "$1/pyvenv.cfg" ]; then
    echo "setup: $1 is not a venv: not removing it (VENV, TRADEOPS_DR_VENV_CACHE, TRADEOPS_DR_AIRFLOW_VENV)" >&2
    exit 2
  fi
  echo "setup: $1 $2: making it again"
  rm -rf "$1"
}
# venv_for DIR: true when DIR is a venv of $PYTHON; a venv of another interpreter is removed (made again below)
venv_for() {
  [ -x "$1/bin/python" ] || return 1
  [ "$(base_of "$1/bin/python" 2>/dev/null)" = "$BASE" ] && return 0
  remove_venv "$1" "was made with $(base_of "$1/bin/python" 2>/dev/null || echo 'a missing interpreter'), not $BASE"
  return 1
}
# CI keeps the venv between runs as it keeps the Docker images and the sanity and Airflow venvs
# (TRADEOPS_DR_VENV_CACHE, which .ci/run sets; issue 24: a new venv was 70-75 s of every run, before any test):
# .venv is then a link to it. It is made again from nothing whenever pyproject.toml, the extras or the interpreter
# change - never patched in place, so that a dependency dropped from pyproject.toml fails CI as it fails a fresh
# machine - and at each run only pip's editable install is pointed at this checkout.
CACHE=${TRADEOPS_DR_VENV_CACHE:-}
cached=0
if [ -n "$CACHE" ] && [ "$VENV" = "$ROOT/.venv" ]; then
  if [ -e "$VENV" ] && [ ! -L "$VENV" ]; then
    echo "setup: $VENV is a venv of this checkout: using it (TRADEOPS_DR_VENV_CACHE=$CACHE not used)"
  else
    mkdir -p "$(dirname "$CACHE")"
    # code this account runs (as root, in CI): not from a folder another account can write or owns
    for dir in "$(dirname "$CACHE")" "$CACHE"; do
      [ -e "$dir" ] || continue
      if [ "$(stat -L -c %u "$dir")" != "$(id -u)" ] || [ -n "$(find -L "$dir" -maxdepth 0 -perm /022)" ]; then
        echo "setup: $dir is not this account's alone (owner $(stat -L -c %U "$dir"), mode $(stat -L -c %a "$dir")):" \
             "not using it for the venv (TRADEOPS_DR_VENV_CACHE)" >&2
        exit 2
      fi
    done
    ln -sfn "$CACHE" "$VENV"
    cached=1
  fi
fi
stamp="$VENV/.tradeops-installed"
venv_dir=$VENV
[ $cached = 0 ] || venv_dir=$CACHE  # (not the link: venv_for removes a venv of another interpreter)
# what the venv was made for and where (its scripts name their interpreter by that path)
want="pyproject.toml $(sha256sum pyproject.toml | cut -d' ' -f1), extras [$EXTRAS], $BASE, at $venv_dir"
if [ $cached = 1 ] && [ -e "$CACHE" ] && [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  remove_venv "$CACHE" "(kept by CI) was made for another pyproject.toml, extras, interpreter or folder"
fi
if ! venv_for "$venv_dir"; then
  "$PYTHON" -m venv "$venv_dir"
fi
# pip through the venv's own path, not the link: the scripts it writes (pytest, ansible-playbook...) name their
# interpreter by the path pip ran from, and a kept venv outlives the clone that made it
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv_dir/bin/python" -m pip install -q --upgrade pip
  "$venv_dir/bin/python" -m pip install -q -e ".[${EXTRAS}]"
  echo "$want" >"$stamp"
else
  # installed for this pyproject.toml: the CLI's code is this checkout's (pip's editable install names the folder
  # it was made from - another clone, with a kept venv)
  here=$("$venv_dir/bin/python" -c 'import os, tradeops_dr; print(os.path.realpath(tradeops_dr.__file__))' 2>/dev/null || true)
  case "$here" in
    "$(realpath "$ROOT")/src/"*) ;;
    *) "$venv_dir/bin/python" -m pip install -q --no-deps -e . ;;
  esac
fi
# The tests' caches for the modules' AnsiballZ payloads, each a .pth of src/tradeops_dr/: the bytecode of what the
# payloads import (payload_bytecode.py) and the payloads themselves across ansible-playbook runs (ansiballz_cache.py);
# inert unless TRADEOPS_DR_PAYLOAD_BYTECODE / TRADEOPS_DR_ANSIBALLZ_CACHE name a folder, which scripts/test.sh sets for
# the tests alone. Installed at every setup, as the editable install's own .pth is, so that a kept venv has the current one.
site_packages=$("$venv_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for cache in payload_bytecode ansiballz_cache; do
  install -m 0644 "$ROOT/src/tradeops_dr/$cache.pth" "$site_packages/tradeops_dr_$cache.pth"
done

# A real Airflow for the pipeline tests and drills (issue 29): a venv of its own (Airflow pins its own SQLAlchemy,
# FastAPI and more; the collection only needs its REST client, in the venv above). Made for the test extras, kept in
# TRADEOPS_DR_AIRFLOW_VENV (CI keeps it outside the clone, as a cache) or .state/servers/airflow-<version>.
AIRFLOW_VERSION=3.3.2
AIRFLOW_VENV=${TRADEOPS_DR_AIRFLOW_VENV:-$ROOT/.state/servers/airflow-$AIRFLOW_VERSION}
if [[ ",$EXTRAS," == *",test,"* ]] && { ! venv_for "$AIRFLOW_VENV" || [ ! -f "$AIRFLOW_VENV/.tradeops-installed" ]; }; then
  echo "setup: installing Airflow $AIRFLOW_VERSION into $AIRFLOW_VENV (the pipeline tests run it)"
  # its scripts name the venv's own path: made in place, and marked complete only at the end
  rm -rf "$AIRFLOW_VENV"
  "$PYTHON" -m venv "$AIRFLOW_VENV"
  "$AIRFLOW_VENV/bin/python" -m pip install -q --upgrade pip
  "$AIRFLOW_VENV/bin/python" -m pip install -q "apache-airflow==$AIRFLOW_VERSION"
  touch "$AIRFLOW_VENV/.tradeops-installed"
fi

# The real TimescaleDB and QuestDB builds (no registry here carries them): from ../shared/servers
# (or TRADEOPS_DR_SERVERS) when present, verified against its SHA256SUMS first. Without them the
# tests that need these servers are skipped, saying how to get them (under CI=true they fail).
TSDB_VERSION=2.28.3
QDB_VERSION=8.1.2
if [ -f "$SERVERS/SHA256SUMS" ]; then
  if ! (cd "$SERVERS" && sha256sum --quiet -c SHA256SUMS); then
    echo "setup: $SERVERS/SHA256SUMS does not match the files beside it: nothing installed from there" >&2
    exit 1
  fi
  tsdb_tar="$SERVERS/timescaledb-$TSDB_VERSION/timescaledb-$TSDB_VERSION-pg15-amd64.tar.gz"
  if [ ! -f "/usr/share/postgresql/15/extension/timescaledb--$TSDB_VERSION.sql" ] && [ -f "$tsdb_tar" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: TimescaleDB $TSDB_VERSION needs root to install into PostgreSQL 15 (tar xzf $tsdb_tar -C /)" >&2
      exit 1
    fi
    dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q "install ok installed" || {
      echo "setup: TimescaleDB $TSDB_VERSION is built for Debian's postgresql-15, which is not installed" >&2; exit 1; }
    echo "setup: installing TimescaleDB $TSDB_VERSION into PostgreSQL 15"
    tar xzf "$tsdb_tar" -C /
  fi
  # The build links against 15.20 (Debian's security update): 15.18 lacks symbols it uses
  # ("undefined symbol: heap_datum_check" when the server preloads it).
  pg_version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
  if [ -n "$pg_version" ] && dpkg --compare-versions "$pg_version" lt 15.20; then
    apt_install "TimescaleDB $TSDB_VERSION needs postgresql-15 >= 15.20 (installed: $pg_version)" \
      postgresql-15 postgresql-client-15
  fi
  qdb_jar="$SERVERS/questdb-$QDB_VERSION/questdb-$QDB_VERSION.jar"
  if [ -f "$qdb_jar" ]; then
    mkdir -p .state/servers
    cmp -s "$qdb_jar" ".state/servers/questdb-$QDB_VERSION.jar" || install -m 0644 "$qdb_jar" ".state/servers/questdb-$QDB_VERSION.jar"
    # its class-data archive (src/tradeops_dr/builds.py): the sandbox's and the tests' QuestDB start in half the time
    command -v java >/dev/null && echo "setup: $("$VENV/bin/python" -c 'from tradeops_dr import builds; print(builds.make_questdb_archive())')"
  fi
else
  echo "setup: no $SERVERS: TimescaleDB $TSDB_VERSION and QuestDB $QDB_VERSION are not installed by this script."
  echo "setup:   TimescaleDB: Timescale's package timescaledb-2-postgresql-15, or a build of tag $TSDB_VERSION"
  echo "setup:   QuestDB: its no-JRE release, TRADEOPS_DR_QUESTDB_JAR=<its questdb.jar>, and openjdk-17-jre-headless"
  echo "setup:   the tests that need them are skipped and say so"
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
