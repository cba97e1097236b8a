"""Faults at the worst moment of a database restore, with real processes and a real
PostgreSQL 15: the controller killed with kill -9 while the module works, and two restores
started at once. Bounded: each waits at most 90 s for the processes it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import COLLECTIONS, ROOT, run_module
from tradeops_dr.sandbox import pid_alive

pytestmark = pytest.mark.integration
MODULE = ROOT / "plugins" / "modules" / "pg_restore_swap.py"
SEEDED = {"public.trades": 5000, "public.positions": 5}


@pytest.fixture
def damaged(pg, tmp_path, capsys):
    """A verified backup of trading, then the damage a restore is for."""
    from ansible_collections.tradeops.dr.plugins.modules import pg_backup, pg_backup_verify

    pg.seed("trading")
    out, failed = run_module(pg_backup, dict(pg.login(), database="trading", backup_root=str(tmp_path / "b")), capsys)
    assert not failed, out
    out, failed = run_module(pg_backup_verify, dict(pg.login(), backup=out["backup"]["manifest"]), capsys)
    assert not failed, out
    pg.sql("trading", "DELETE FROM trades WHERE side = 'buy'")
    return out["verification"]["manifest"], pg.counts("trading")


def module_argv(pg, tmp_path, manifest, name, **extra) -> list[str]:
    args = tmp_path / f"{name}.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
        pg.login(), database="trading", backup=manifest, safety_dump="none", terminate_connections=True, **extra)}))
    return [sys.executable, str(MODULE), str(args)]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(COLLECTIONS))


def wait_gone(pid: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout}s"
        time.sleep(0.2)


def test_a_restore_whose_controller_is_killed_stops_before_the_swap(pg, tmp_path, damaged):
    manifest, damaged_counts = damaged
    pidfile = tmp_path / "module.pid"
    # the controller (ansible-playbook's place) starts the module and waits for it
    controller = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys; p = subprocess.Popen(sys.argv[2:]); open(sys.argv[1], 'w').write(str(p.pid)); "
        "p.wait()"), str(pidfile), *module_argv(pg, tmp_path, manifest, "killed", migration_command=["sleep", "4"])],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(d.startswith("trading__restore_") for d in pg.databases()):
        assert time.monotonic() < deadline and controller.poll() is None, "the restore never started"
        time.sleep(0.1)
    module_pid = int(pidfile.read_text())
    os.kill(controller.pid, signal.SIGKILL)  # kill -9 at the named step: the migration is running
    controller.wait()
    wait_gone(module_pid)
    dbs = pg.databases()
    assert not any(d.startswith("trading__pre_restore_") for d in dbs), "the module swapped after its run was gone"
    assert not any(d.startswith("trading__restore_") for d in dbs), "the incomplete restore was left behind"
    assert pg.counts("trading") == damaged_counts
    assert pg.sql("postgres", "SELECT datallowconn FROM pg_database WHERE datname = 'trading'")[0][0] is True


def test_two_restores_at_once_one_swaps_the_other_is_refused(pg, tmp_path, damaged):
    manifest, _damaged_counts = damaged
    procs = [subprocess.Popen(module_argv(pg, tmp_path, manifest, f"run{i}", migration_command=["sleep", "2"]),
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = []
    for proc in procs:
        stdout, _stderr = proc.communicate(timeout=120)
        outs.append(json.loads(stdout))
    ok = [o for o in outs if not o.get("failed")]
    refused = [o for o in outs if o.get("failed")]
    assert len(ok) == 1 and len(refused) == 1, outs
    assert "another restore of trading is running" in refused[0]["msg"] and "nothing was changed" in refused[0]["msg"]
    asides = [d for d in pg.databases() if d.startswith("trading__pre_restore_")]
    assert asides == [ok[0]["restore"]["aside"]]
    assert pg.counts("trading") == SEEDED
