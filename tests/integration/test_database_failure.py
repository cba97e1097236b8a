"""playbooks/backup.yml and playbooks/database_failure.yml through ansible-runner against a real
PostgreSQL 15: backups verified by a test restore, damage restored from them, a stopped
server started without a restore, refusals that change nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import artifacts_text, free_port, record, write_inventory
from tradeops_dr import run_playbook
from tradeops_dr.paths import STANDINS
from tradeops_dr.sandbox import pid_alive, wait_for

pytestmark = pytest.mark.integration

SEEDED = {"public.trades": 5000, "public.positions": 5}


def conn_vars(pg, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in pg.login().items()}


def backup_vars(pg, root: Path, **kw) -> dict:
    return dict(conn_vars(pg, "pg_backup"), pg_backup_databases=["trading"], pg_backup_root=str(root),
                pg_backup_csv_tables={"trading": ["public.positions"]}, **kw)


def restore_vars(pg, root: Path, **kw) -> dict:
    cluster = pg.cluster
    return dict(conn_vars(pg, "timescale_restore"), timescale_restore_database="trading",
                timescale_restore_backup_root=str(root), timescale_restore_min_row_counts=SEEDED,
                timescale_restore_service=dict(name="postgresql", manager="process",
                                               start_command=cluster.start_command(), pidfile=str(cluster.pidfile)),
                **kw)


def manifests(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.manifest.json"))]


@pytest.fixture(scope="module")
def golden(pg_server, tmp_path_factory):
    """The seeded database and its verified backup through backup.yml, made once for the module (a backup.yml
    run per test cost about 6 s, issue 24): each test gets the database again from this template and its own
    copy of the backup folder (the manifests name their files relative to it)."""
    folder = tmp_path_factory.mktemp("golden")
    pg_server.seed("trading")
    root = folder / "backups"
    inv = write_inventory(folder / "inventory.yml", backup_vars(pg_server, root), group="postgres_servers")
    res = run_playbook("playbooks/backup.yml", inventory=str(inv), private_data_dir=str(folder / "runner"))
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert pg_server.password not in artifacts_text(res)
    pg_server.sql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'trading'")
    pg_server.sql("postgres", "ALTER DATABASE trading RENAME TO trading_golden")
    yield root
    pg_server.sql("postgres", "DROP DATABASE IF EXISTS trading_golden")


@pytest.fixture
def backed_up(pg, golden, tmp_path):
    pg.sql("postgres", "CREATE DATABASE trading TEMPLATE trading_golden")
    root = tmp_path / "backups"
    shutil.copytree(golden, root)
    return root


def test_backup_playbook_dumps_verifies_and_checks_staleness(pg, run, backed_up):
    (m,) = manifests(backed_up)
    assert m["status"] == "verified" and m["row_counts"] == SEEDED
    assert m["verification"]["test_restore"]["row_counts"] == SEEDED
    assert {f["kind"] for f in m["files"].values()} == {"dump", "csv"}
    assert not any(d.startswith("trading__verify") for d in pg.databases())


def test_backup_check_mode_writes_nothing_and_stale_catalog_fails(pg, run, tmp_path):
    pg.seed("trading")
    root = tmp_path / "b"
    res = run("playbooks/backup.yml", backup_vars(pg, root), group="postgres_servers", check=True)
    assert not root.exists() or not list(root.rglob("*.pgdump"))
    # a check-mode run cannot make a verified backup, so the staleness check reports there is none
    assert res.status == "failed" and "no verified backup of trading exists" in artifacts_text(res)


def test_dropped_table_and_deleted_rows_are_restored_and_the_damage_kept_aside(pg, run, backed_up):
    pg.sql("trading", "DROP TABLE positions")
    pg.sql("trading", "DELETE FROM trades WHERE side = 'buy'")
    res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "database_recovery")
    assert rec["restored"] is True and rec["started"] is False and rec["row_counts"] == SEEDED
    assert pg.counts("trading") == SEEDED
    assert any("public.positions is missing" in p for p in rec["problems_found"])
    assert any("public.trades has" in p for p in rec["problems_found"])
    aside = rec["aside"]
    assert pg.sql(aside, "SELECT count(*) FROM trades WHERE side = 'buy'")[0][0] == 0  # the damage, kept
    assert rec["safety_dump"]["dump"].startswith(str(backed_up / "safety"))
    assert 0 <= float(rec["data_loss_window_s"]) < 900 and float(rec["recovery_seconds"]) > 0
    assert pg.password not in artifacts_text(res)
    # a second run finds a healthy database and changes nothing
    before = pg.databases()
    again = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers")
    assert again.status == "successful" and record(again, "database_recovery")["restored"] is False
    assert pg.databases() == before and aside in before


def test_the_applications_that_use_the_database_are_stopped_first_and_healthy_after(pg, run, backed_up, tmp_path):
    """Issue 30 (runbook 000 scenario 1): stop the application services that use the database, restore, start them,
    GET /health. The application (a stand-in holding a session, as a pool does) is stopped before the swap and
    answers 200 on the restored database after it; its pids are the evidence."""
    pw = tmp_path / "pg-password"
    pw.write_text(pg.password)
    pw.chmod(0o600)
    port = free_port()
    pidfile = tmp_path / "db_app.pid"
    service = dict(name="db-app", manager="process", foreground=True, pidfile=str(pidfile), stop_timeout=5,
                   log_file=str(tmp_path / "db_app.log"),
                   start_command=[sys.executable, str(STANDINS / "db_app.py"), "--port", str(port), "--pidfile",
                                  str(pidfile), "--pg-port", str(pg.port), "--pg-user", pg.user, "--pg-password-file",
                                  str(pw), "--database", "trading", "--max-seconds", "600"])
    health = f"http://127.0.0.1:{port}/health"
    app = subprocess.Popen(service["start_command"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        wait_for(lambda: (_get(health)[0] == 200, _get(health)), 20, "the application's health")
        first = app.pid
        pg.sql("trading", "DROP TABLE positions")
        assert _get(health)[0] == 503  # the application sees the damage
        ran_at = time.time()
        res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up, timescale_restore_dependants=[
            dict(service=service, health_url=health)], timescale_restore_dependants_timeout=20),
            group="postgres_servers")
        assert res.status == "successful", artifacts_text(res)[-3000:]
        rec = record(res, "database_recovery")
        assert rec["restored"] is True and rec["dependants"] == ["db-app"]
        assert app.wait(timeout=10) is not None  # the first process was stopped (SIGTERM), not left holding a session
        second = int(pidfile.read_text())
        code, body = _get(health)
        assert second != first and pid_alive(second) and code == 200, (code, body)
        assert body["pid"] == second and body["positions"] == SEEDED["public.positions"]
        assert body["started"] > ran_at  # started by the run, after the restore
    finally:
        for pid in {app.pid, *([int(pidfile.read_text())] if pidfile.exists() else [])}:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        app.wait(timeout=10)


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError as exc:
        return 0, str(exc)


def test_corrupted_rows_check_mode_predicts_and_changes_nothing(pg, run, backed_up):
    pg.sql("trading", "UPDATE trades SET price = -1 WHERE id <= 10")
    pg.sql("trading", "DELETE FROM positions WHERE symbol = 'ES'")
    before = pg.databases()
    res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers", check=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert "rename trading to trading__pre_restore_" in artifacts_text(res)
    assert pg.databases() == before and pg.counts("trading")["public.positions"] == 4
    # forced restore (corrupted values, counts intact elsewhere) puts the backup's rows back
    res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up, timescale_restore_action="restore"),
              group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert pg.sql("trading", "SELECT count(*) FROM trades WHERE price < 0")[0][0] == 0
    assert pg.counts("trading") == SEEDED


def test_stopped_server_is_started_and_not_restored(pg, run, backed_up):
    pg.cluster.stop()
    try:
        res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers")
    finally:
        pg.cluster.start()
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "database_recovery")
    assert rec["started"] is True and rec["restored"] is False and rec["row_counts"] == SEEDED
    assert not any(d.startswith("trading__") for d in pg.databases())


def test_no_backups_at_all_is_refused_and_nothing_changes(pg, run, tmp_path):
    pg.seed("trading")
    pg.sql("trading", "DROP TABLE positions")
    before = pg.databases()
    res = run("playbooks/database_failure.yml", restore_vars(pg, tmp_path / "empty"), group="postgres_servers")
    assert res.status == "failed"
    assert "No verified backup of trading" in artifacts_text(res)
    assert pg.databases() == before


def test_diagnose_tag_is_read_only(pg, run, backed_up):
    pg.sql("trading", "DELETE FROM trades")
    res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers",
              tags="diagnose")
    assert res.status == "successful"
    assert "public.trades has 0 rows, at least 5000 expected" in artifacts_text(res)
    assert pg.counts("trading")["public.trades"] == 0


def _aged_copy(backed_up: Path, src: Path, days: int, tag: str) -> Path:
    """A copy of the backup `src` as if it had been taken `days` ago (verified, with its own files)."""
    import shutil
    import time

    m = json.loads(src.read_text())
    folder = backed_up / time.strftime("%Y-%m-%d", time.gmtime(time.time() - days * 86400))
    folder.mkdir(exist_ok=True)
    old_dump = m["dump"]
    m["dump"] = old_dump.replace(".pgdump", f"_{tag}.pgdump")
    m["files"] = {m["dump"]: m["files"][old_dump]}
    m["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days * 86400))
    shutil.copyfile(src.parent / old_dump, folder / m["dump"])
    path = folder / m["dump"].replace(".pgdump", ".manifest.json")
    path.write_text(json.dumps(m))
    return path


def test_disk_full_prunes_by_retention_and_skips_compression_without_timescaledb(pg, run, backed_up):
    (src,) = backed_up.rglob("trading_*.manifest.json")
    old = [_aged_copy(backed_up, src, 40, "a"), _aged_copy(backed_up, src, 35, "b")]
    kept = _aged_copy(backed_up, src, 10, "c")  # within the 30 days
    assert len(manifests(backed_up)) == 4
    res = run("playbooks/database_failure.yml", restore_vars(
        pg, backed_up, timescale_restore_action="disk_full", timescale_restore_compress_hypertables=["public.trades"]),
        group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert "has no timescaledb extension" in artifacts_text(res)
    for path in old:  # older than 30 days, and neither the newest nor the newest verified: pruned
        assert not path.exists() and not path.with_name(path.name.replace(".manifest.json", ".pgdump")).exists()
    assert kept.exists() and len(manifests(backed_up)) == 2  # the newest (and newest verified) is never pruned


def test_cli_lists_the_catalog_with_the_newest_verified_backup(backed_up, tmp_path):
    import subprocess
    import sys

    cli = [sys.executable, "-m", "tradeops_dr.cli", "backups", "list", "--root"]
    out = subprocess.run(cli + [str(backed_up)], capture_output=True, text=True, check=False)
    (m,) = manifests(backed_up)
    assert out.returncode == 0 and f"newest verified: {backed_up}/" in out.stdout
    assert " trading " in out.stdout and " verified " in out.stdout and m["dump"] in out.stdout
    empty = subprocess.run(cli + [str(tmp_path / "none")], capture_output=True, text=True, check=False)
    assert empty.returncode == 1 and "no backups below" in empty.stdout


# --------------------------------------------------------------------------- faults around the swap

def test_a_database_left_refusing_connections_is_diagnosed_and_put_right(pg, run, backed_up):
    """What a kill -9 inside the swap's window leaves: trading refusing connections, and a
    half-restored database. The diagnosis says so (no connect error), the recovery allows
    connections again without restoring anything, and the leftover is named, not dropped."""
    pg.sql("postgres", "CREATE DATABASE trading__restore_20261123t031500z")
    pg.sql("postgres", "ALTER DATABASE trading WITH ALLOW_CONNECTIONS false")
    diag = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers",
               tags="diagnose")
    assert diag.status == "successful", artifacts_text(diag)[-3000:]
    assert "database trading refuses connections (ALLOW_CONNECTIONS false)" in diag.stdout
    assert "left by earlier restores: trading__restore_20261123t031500z" in diag.stdout
    res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "database_recovery")
    assert rec["restored"] is False
    assert pg.sql("postgres", "SELECT datallowconn FROM pg_database WHERE datname = 'trading'")[0][0] is True
    assert pg.counts("trading") == SEEDED
    assert "trading__restore_20261123t031500z" in pg.databases()  # reported, never dropped
    again = run("playbooks/database_failure.yml", restore_vars(pg, backed_up), group="postgres_servers")
    assert again.status == "successful" and again.changed == 0


def test_a_second_restore_is_refused_while_one_holds_the_lock(pg, run, backed_up):
    from ansible_collections.tradeops.dr.plugins.module_utils import _postgres

    holder = pg.connect()
    with holder.cursor() as cur:  # what a running restore holds, on its own session
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext('restore trading'))", (_postgres.LOCK_CLASS,))
        assert cur.fetchone()[0] is True
    try:
        before = pg.databases()
        res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up, timescale_restore_action="restore"),
                  group="postgres_servers")
        assert res.status == "failed"
        msg = " ".join(f.msg for f in res.failures)
        assert "A restore of trading is running" in msg and "Nothing was changed" in msg
        assert pg.databases() == before and pg.counts("trading") == SEEDED
    finally:
        holder.close()


def test_a_wrong_password_is_not_a_server_that_is_down(pg, run, backed_up):
    pid = pg.cluster.pidfile.read_text().split()[0]
    wrong = "pw-not-this-one-" + pg.password[-4:]
    res = run("playbooks/database_failure.yml", restore_vars(pg, backed_up, timescale_restore_login_password=wrong),
              group="postgres_servers")
    assert res.status == "failed"
    msg = " ".join(f.msg for f in res.failures)
    assert "answers but refused the login" in msg and "password authentication failed" in msg
    assert wrong not in artifacts_text(res)
    assert pg.cluster.pidfile.read_text().split()[0] == pid  # not restarted
    assert "Start the server through service control" not in res.stdout


def test_a_backup_within_the_interval_is_not_dumped_again(pg, run, backed_up):
    """pg_backup_min_interval_minutes: a re-run (or a schedule more frequent than needed) makes no
    second dump of a database with a fresh verified backup; an older one is dumped."""
    again = run("playbooks/backup.yml", backup_vars(pg, backed_up, pg_backup_min_interval_minutes=60),
                group="postgres_servers")
    assert again.status == "successful", artifacts_text(again)[-2000:]
    assert len(manifests(backed_up)) == 1 and again.changed == 0, again.stats
    (src,) = backed_up.rglob("trading_*.manifest.json")
    m = json.loads(src.read_text())
    m["created_at"] = "2020-01-01T00:00:00Z"
    src.write_text(json.dumps(m))
    due = run("playbooks/backup.yml", backup_vars(pg, backed_up, pg_backup_min_interval_minutes=60),
              group="postgres_servers")
    assert due.status == "successful", artifacts_text(due)[-2000:]
    # a new verified dump (the aged one went by retention: older than keep_days, a newer one verified)
    assert [(x["status"], x["created_at"] > "2025") for x in manifests(backed_up)] == [("verified", True)]
    assert not src.exists()


def test_backup_actions_prune_and_check_do_what_they_say(pg, run, backed_up):
    (src,) = backed_up.rglob("trading_*.manifest.json")
    old = _aged_copy(backed_up, src, 45, "old")
    old_dump = old.with_name(old.name.replace(".manifest.json", ".pgdump"))
    # prune in check mode: lists, deletes nothing
    dry = run("playbooks/backup.yml", backup_vars(pg, backed_up, pg_backup_action="prune"), group="postgres_servers",
              check=True)
    assert dry.status == "successful", artifacts_text(dry)[-2000:]
    assert "Would delete" in dry.stdout and old_dump.name in dry.stdout
    assert old.exists() and old_dump.exists()
    # prune: the old one goes, the newest stays
    real = run("playbooks/backup.yml", backup_vars(pg, backed_up, pg_backup_action="prune"), group="postgres_servers")
    assert real.status == "successful" and not old.exists() and not old_dump.exists() and src.exists()
    # check: fine while the newest verified backup is fresh...
    fresh = run("playbooks/backup.yml", backup_vars(pg, backed_up, pg_backup_action="check"), group="postgres_servers")
    assert fresh.status == "successful", artifacts_text(fresh)[-2000:]
    # ...an alarm once it is older than the limit (and nothing is dumped by a check)
    m = json.loads(src.read_text())
    m["created_at"] = "2020-01-01T00:00:00Z"
    src.write_text(json.dumps(m))
    stale = run("playbooks/backup.yml", backup_vars(pg, backed_up, pg_backup_action="check"), group="postgres_servers")
    assert stale.status == "failed"
    assert "the newest verified backup of trading is" in artifacts_text(stale) and "hour limit" in artifacts_text(stale)
    assert len(manifests(backed_up)) == 1
