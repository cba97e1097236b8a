"""What a run leaves on disk: backups readable by their owner and group only, no module file
holding a password after ansible-playbook is killed with kill -9, and ansible-runner's
folders (which hold the run's environment) private and pruned."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_module

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def test_backups_are_not_world_readable(pg, tmp_path, capsys):
    from ansible_collections.tradeops.dr.plugins.modules import pg_backup

    pg.seed("trading")
    out, failed = run_module(pg_backup, dict(pg.login(), database="trading", backup_root=str(tmp_path / "b"),
                                             csv_tables=["public.positions"]), capsys)
    assert not failed, out
    folder = Path(out["backup"]["dump"]).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    # the catalog's root, created by this first dump, too (found by the Molecule rehearsal: it was 0755)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o750
    files = list(folder.iterdir())
    assert {p.suffix for p in files} == {".pgdump", ".csv", ".json"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f


def test_private_dirs_makes_missing_folders_private_and_leaves_existing_ones(tmp_path):
    from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    old = os.umask(0o002)
    try:
        assert _manifest.private_dirs(str(mine / "a" / "b")) == str(mine / "a" / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o755  # the user's folder keeps its mode
    for folder in (mine / "a", mine / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder
    assert _manifest.private_dirs(str(mine / "a")) == str(mine / "a")  # already there: nothing changes


def test_a_killed_run_leaves_no_module_file_holding_the_password(pg, tmp_path):
    """kill -9 of ansible-playbook and everything it started while a restore runs: with
    pipelining the module's arguments never touch the disk, so no AnsiballZ file with the
    password remains (the half-restored database is what the next diagnosis reports)."""
    from tradeops_dr import seed

    pg.seed("trading")
    seed.seed_postgres(pg.cluster, dbname="trading")
    backups = tmp_path / "backups"
    common = {f"pg_backup_{k}": v for k, v in pg.login().items()}
    inv = tmp_path / "inventory" / "hosts.yml"
    inv.parent.mkdir()
    host = dict(ansible_connection="local", ansible_python_interpreter=sys.executable, **common,
                **{f"timescale_restore_{k}": v for k, v in pg.login().items()},
                pg_backup_databases=["trading"], pg_backup_root=str(backups), pg_backup_test_restore=False,
                timescale_restore_database="trading", timescale_restore_backup_root=str(backups),
                timescale_restore_migration_command=["sleep", "8"])
    inv.write_text(yaml.safe_dump({"all": {"children": {"postgres_servers": {"hosts": {"db-1": host}}}}}))
    temps = tmp_path / "ansible-tmp"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_REMOTE_TMP=str(temps / "remote"),
               ANSIBLE_LOCAL_TEMP=str(temps / "local"), ANSIBLE_KEEP_REMOTE_FILES="0")
    ok = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/backup.yml", "-i", str(inv)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
    assert ok.returncode == 0, ok.stdout[-2000:]
    play = subprocess.Popen([str(BIN / "ansible-playbook"), "playbooks/database_failure.yml", "-i", str(inv),
                             "-e", "timescale_restore_action=restore"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not any(d.startswith("trading__restore_") for d in pg.databases()):
            assert time.monotonic() < deadline and play.poll() is None, "the restore never started"
            time.sleep(0.2)
    finally:
        # kill -9 of everything the run started, the module included (its own session too):
        # the worst moment, as an OOM kill or a lost machine would leave it
        victims = [play.pid] + descendants(play.pid)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        play.wait()
    # an AnsiballZ file carries the module's arguments (the password) base64-encoded in its payload
    left = [p for p in temps.rglob("*")
            if p.is_file() and (p.name.startswith("AnsiballZ_") or pg.password.encode() in p.read_bytes())]
    assert left == []
    assert not any(d.startswith("trading__pre_restore_") for d in pg.databases())


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def test_runner_folders_are_private_and_pruned(tmp_path, monkeypatch):
    from tradeops_dr import api

    monkeypatch.setenv("TRADEOPS_DR_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir(mode=0o755)
    for i in range(api.KEEP_RUNS + 5):
        d = tmp_path / "runs" / f"run-old{i:02d}"
        d.mkdir()
        os.utime(d, (1000 + i, 1000 + i))
    base = Path(api.runs_dir())
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    left = sorted(p.name for p in base.iterdir())
    assert len(left) == api.KEEP_RUNS - 1 and left[0] == "run-old06"  # the oldest went first
    inv = tmp_path / "hosts.yml"
    inv.write_text(f"all:\n  children:\n    redis_servers:\n      hosts:\n        r1:\n"
                   f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n")
    res = api.run_playbook("redis_failure.yml", inventory=str(inv), tags="diagnose",
                           extravars={"redis_restart_port": 1})
    assert Path(res.artifact_dir).is_relative_to(base)
    assert len(list(base.iterdir())) == api.KEEP_RUNS
