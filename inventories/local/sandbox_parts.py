#!/usr/bin/python3
"""The optional parts of the sandbox, as an inventory script: QuestDB, the inference stand-in and
the configuration repository are hosts of their groups only when this sandbox runs them.

hosts.yml holds what every sandbox runs (Redis, PostgreSQL, the kill switch, the trading-side
stand-ins); this script reads sandbox.json (TRADEOPS_DR_SANDBOX, else .sandbox/ of the checkout)
and adds the parts `tradeops-dr sandbox up` started. A part left out (no QuestDB jar, no dvc)
is then simply not in the inventory: no probe of it, no failure for it (issue 31). Standard
library only: Ansible runs it with the Debian interpreter this shebang names."""

import json
import os
import sys

# part of sandbox.json -> (group, host)
PARTS = {
    "questdb": ("questdb_servers", "sandbox-questdb"),
    "model": ("model_servers", "sandbox-inference"),
    "config": ("config_hosts", "sandbox-config"),
}


def sandbox_dir():
    here = os.path.dirname(os.path.abspath(__file__))
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
