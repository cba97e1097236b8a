"""A run that reaches no host is a failure, never a silent success: every playbook, the CLI
and the Python API, with an inventory that does not exist, one without the play's group, and
a --limit that matches nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradeops_dr import run_playbook

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml") if p.name != "require_hosts.yml")
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))


def _play(playbook: str, inventory: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ansible-playbook"), f"playbooks/{playbook}", "-i", inventory, *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_an_inventory_that_does_not_exist_fails(playbook, tmp_path):
    # a path that cannot exist (never inventories/prod: a user's checkout may hold a real one)
    missing = str(tmp_path / "inventories" / "prod")
    res = _play(playbook, missing)
    assert res.returncode != 0, res.stdout[-1500:]
    assert missing in res.stdout + res.stderr


# playbooks whose hosts are not the inventory's: what they refuse instead of "no host"
REFUSAL = {"drill.yml": "not marked: somewhere",  # drills run on localhost, only against drill targets
           # an alert's response names its playbook first (the rulebook does); that one then refuses the inventory
           "alert_response.yml": "an alert runs one of"}
NOT_THE_INVENTORYS = {"awx_setup.yml": "talks to AWX's API from localhost; the inventory is AWX's"}


@pytest.mark.parametrize("playbook", [pytest.param(p, marks=pytest.mark.skip(reason=NOT_THE_INVENTORYS[p]))
                                      if p in NOT_THE_INVENTORYS else p for p in PLAYBOOKS])
def test_an_inventory_without_the_group_of_the_play_fails(playbook, tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  children:\n    unrelated:\n      hosts:\n        somewhere:\n")
    res = _play(playbook, str(inv), "--check")
    assert res.returncode != 0, res.stdout[-1500:]
    assert REFUSAL.get(playbook, "this run would reach no host") in res.stdout and "Nothing was done" in res.stdout


def test_the_cli_and_the_api_fail_when_no_host_is_reached(tmp_path):
    cli = subprocess.run([str(BIN / "tradeops-dr"), "run", "redis_failure.yml", "-i", str(tmp_path / "nope")], cwd=ROOT,
                         env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode != 0 and "successful" not in cli.stdout
    inv = tmp_path / "hosts.yml"
    inv.write_text(f"all:\n  children:\n    redis_servers:\n      hosts:\n        r1:\n"
                   f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n")
    res = run_playbook("redis_failure.yml", inventory=str(inv), limit="no-such-host", tags="diagnose",
                       private_data_dir=str(tmp_path / "runner"))
    assert not res.ok and res.status == "failed"
    assert any("reached no host" in f.msg or "no hosts to target" in f.msg for f in res.failures), res.failures
