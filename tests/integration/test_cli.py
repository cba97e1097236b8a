"""tradeops-dr run and backups verify as a person types them (the kill-switch commands are
in test_kill_switch.py): options reach the playbook, and the exit code says what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_inventory

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "tradeops-dr")


def _cli(*args, env=None):
    return subprocess.run([CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env=env or dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))


def test_run_passes_check_tags_and_extra_vars(redis_seeded, tmp_path):
    inv = write_inventory(tmp_path / "inv.yml", redis_seeded.role_vars())
    redis_seeded.kill9()
    # -t diagnose: read-only even without --check; -e reaches the role (the report shows the endpoint)
    diag = _cli("run", "redis_failure.yml", "-i", str(inv), "-t", "diagnose", "-e",
                f"redis_restart_port={redis_seeded.port}")
    assert diag.returncode == 0, diag.stdout[-2000:] + diag.stderr[-2000:]
    assert f"DOWN - cannot connect to Redis at 127.0.0.1:{redis_seeded.port}" in diag.stdout
    assert not redis_seeded.running()
    # -C: the plan, nothing started
    check = _cli("run", "redis_failure.yml", "-i", str(inv), "-C")
    assert check.returncode == 0 and "successful (rc=0)" in check.stdout
    assert not redis_seeded.running()
    # and for real: Redis is back
    real = _cli("run", "redis_failure.yml", "-i", str(inv))
    assert real.returncode == 0 and redis_seeded.running()
    # an extra var that breaks the run makes the command fail (a short wait for the Redis that never answers there:
    # the inventory's 20 s made this the slowest CLI test)
    bad = _cli("run", "redis_failure.yml", "-i", str(inv), "-e", "redis_restart_port=1", "-e",
               "redis_restart_ready_timeout=2")
    assert bad.returncode != 0 and "FAILED" in bad.stderr


def test_backups_verify_runs_the_backup_playbook_in_verify_mode(pg, tmp_path):
    pg.seed("trading")
    root = tmp_path / "backups"
    hostvars = {**{f"pg_backup_{k}": v for k, v in pg.login().items()}, "pg_backup_databases": ["trading"],
                "pg_backup_root": str(root), "pg_backup_test_restore": False}
    inv = write_inventory(tmp_path / "inv.yml", hostvars, group="postgres_servers")
    made = _cli("run", "backup.yml", "-i", str(inv))
    assert made.returncode == 0, made.stdout[-2000:]
    (mpath,) = root.rglob("*.manifest.json")
    m = json.loads(mpath.read_text())
    assert m["status"] == "verified" and not m["verification"]["test_restore"]
    verify = _cli("backups", "verify", "-i", str(inv), "--test-restore")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    m = json.loads(mpath.read_text())
    assert m["verification"]["test_restore"]["row_counts"] == m["row_counts"]  # the test restore ran now
    # a tampered dump fails the verification, and the command says so
    dump = mpath.with_name(mpath.name.replace(".manifest.json", ".pgdump"))
    dump.write_bytes(dump.read_bytes()[:-100])
    again = _cli("backups", "verify", "-i", str(inv), "--test-restore")
    assert again.returncode != 0 and json.loads(mpath.read_text())["status"] == "failed"


@pytest.mark.skipif(Path("/var/backups/tradeops-dr/postgres").is_dir(), reason="this machine has the production root")
def test_backups_list_finds_the_sandbox_catalog_without_root(tmp_path):
    """A newcomer after `./dr.sh drill` types `tradeops-dr backups list`: it used to look only in
    /var/backups/tradeops-dr/postgres and find nothing."""
    catalog = tmp_path / "backups" / "postgres"
    catalog.mkdir(parents=True)
    out = _cli("--state-dir", str(tmp_path), "backups", "list")
    assert out.stdout.startswith(f"catalog {catalog} (--root to choose another)"), out.stdout + out.stderr
    assert f"no backups below {catalog}" in out.stdout and out.returncode == 1


def test_tradeops_dr_from_an_unactivated_venv_finds_its_tools(tmp_path):
    """.venv/bin/tradeops-dr with a PATH that does not name the venv: the sandbox's model part
    needs dvc, and the recovery's ansible-playbook; both are found beside the CLI's Python."""
    env = dict(os.environ, PATH="/usr/bin:/bin", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    probe = subprocess.run([CLI, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert probe.returncode == 0
    code = ("import os, shutil, sys; from tradeops_dr import cli; cli._venv_on_path(); "
            "print(shutil.which('dvc'), shutil.which('ansible-playbook'))")
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    bindir = str(Path(sys.executable).parent)
    assert found.stdout.split() == [f"{bindir}/dvc", f"{bindir}/ansible-playbook"]
