#!/bin/sh
# The optional parts of the sandbox as an inventory script (Ansible runs executable files of an
# inventory folder): QuestDB, the inference and PMS stand-ins and the configuration repository are hosts of
# their groups only when this sandbox runs them. The Python below uses the standard library only;
# it runs with Debian's python3 (interpreter discovery here can pick a broken pyenv shim).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SANDBOX_PARTS_HERE=$(dirname "$0") exec "$PY" - "$@" <<'PYTHON'
"""The optional parts of the sandbox, as an inventory script: QuestDB, the inference and PMS stand-ins and
the configuration repository are hosts of their groups only when this sandbox runs them.

hosts.yml holds what every sandbox runs (Redis, PostgreSQL, the kill switch, the trading-side
stand-ins); this script reads sandbox.json (TRADEOPS_DR_SANDBOX, else .sandbox/ of the checkout)
and adds the parts `tradeops-dr sandbox up` started. A part left out (no QuestDB jar, no dvc)
is then simply not in the inventory: no probe of it, no failure for it (issue 31). Standard
library only: the shell lines above run it with Debian's python3."""

import json
import os
import sys

# part of sandbox.json -> (group, host)
PARTS = {
    "questdb": ("questdb_servers", "sandbox-questdb"),
    "model": ("model_servers", "sandbox-inference"),
    "config": ("config_hosts", "sandbox-config"),
    "pms": ("pms_servers", "sandbox-pms"),
}


def sandbox_dir():
    here = os.environ.get("SANDBOX_PARTS_HERE") or "."
    return os.environ.get("TRADEOPS_DR_SANDBOX") or os.path.join(here, "..", "..", ".sandbox")


def inventory(state):
    groups = {"_meta": {"hostvars": {}}}
    for part, (group, host) in PARTS.items():
        if state and state.get(part):
            groups[group] = {"hosts": [host]}
    return groups


def main(argv):
    if len(argv) > 1 and argv[1] == "--host":
        print("{}")
        return 0
    try:
        with open(os.path.join(sandbox_dir(), "sandbox.json")) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = None  # no sandbox yet: only the parts every sandbox has (hosts.yml)
    print(json.dumps(inventory(state)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
PYTHON
