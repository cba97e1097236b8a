"""The PostgreSQL modules' main() in-process against a real PostgreSQL 15 (fixture pg):
backups and manifests, verification, refusals, restore-and-swap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ansible_collections.tradeops.dr.plugins.modules import pg_backup, pg_backup_catalog, pg_backup_verify, pg_restore_swap

from conftest import TIMESCALE_FIXTURES, run_module
from tradeops_dr import builds
from tradeops_dr.sandbox import wait_for

pytestmark = pytest.mark.integration


def backup(pg, root: Path, capsys, db="trading", **kw):
    out, failed = run_module(pg_backup, dict(pg.login(), database=db, backup_root=str(root), **kw), capsys)
    assert not failed, out.get("msg")
    return out["backup"]


def verify(pg, path, capsys, **kw):
    return run_module(pg_backup_verify, dict(pg.login(), backup=str(path), **kw), capsys)


def restore(pg, path, capsys, db="trading", **kw):
    kw.setdefault("safety_dump", "none")
    return run_module(pg_restore_swap, dict(pg.login(), database=db, backup=str(path), **kw), capsys)


def manifest(path) -> dict:
    return json.loads(Path(str(path).replace(".pgdump", ".manifest.json")).read_text())


@pytest.fixture
def verified(pg, tmp_path, capsys):
    pg.seed("trading")
    b = backup(pg, tmp_path / "backups", capsys, csv_tables=["public.positions"])
    out, failed = verify(pg, b["dump"], capsys, test_restore=True)
    assert not failed, out.get("msg")
    return b


def test_backup_writes_dump_csv_and_a_manifest_of_evidence(pg, tmp_path, capsys):
    pg.seed("trading")
    b = backup(pg, tmp_path / "backups", capsys, csv_tables=["positions"])
    m = manifest(b["dump"])
    assert m["status"] == "created" and m["database"] == "trading" and m["kind"] == "backup"
    assert m["row_counts"] == {"public.trades": 5000, "public.positions": 5}
    assert m["extensions"] == {"plpgsql": "1.0"} and m["server_version"].startswith("15.")
    assert m["pg_dump_version"].startswith("15.") and m["database_size_bytes"] > 0
    dump = Path(b["dump"])
    assert dump.parent.name == time.strftime("%Y-%m-%d", time.gmtime()) and dump.name.startswith("trading_")
    csv = dump.with_name(dump.name.replace(".pgdump", ".public.positions.csv"))
    assert csv.read_text().splitlines()[0] == "id,symbol,qty,avg_price,opened_at"
    assert len(csv.read_text().splitlines()) == 6
    import hashlib
    assert m["files"][dump.name]["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert m["files"][csv.name]["rows"] == 5 and m["files"][csv.name]["size"] == csv.stat().st_size
    assert pg.password not in json.dumps(m) and not list(dump.parent.glob("*.partial"))


def test_counts_and_dump_share_one_snapshot_while_rows_are_written(pg, tmp_path, capsys):
    pg.seed("trading", n_trades=20000)
    stop = threading.Event()

    def writer():
        conn = pg.connect("trading")
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO trades (ts, symbol, side, qty, price) VALUES (now(), 'ES', 'buy', 1, 1)")
        conn.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        b = backup(pg, tmp_path / "b", capsys)
    finally:
        stop.set()
        t.join()
    assert pg.counts("trading")["public.trades"] > b["row_counts"]["public.trades"]  # writes went on
    out, failed = verify(pg, b["dump"], capsys, test_restore=True)
    assert not failed, out["msg"]  # the dump holds exactly the counted rows
    assert out["verification"]["test_restore"]["row_counts"] == b["row_counts"]


def test_verify_with_test_restore_then_idempotent_and_scratch_dropped(pg, tmp_path, capsys):
    pg.seed("trading")
    b = backup(pg, tmp_path / "backups", capsys)
    before = pg.databases()
    out, failed = verify(pg, b["dump"], capsys, test_restore=True)
    assert not failed and out["changed"] and out["verification"]["status"] == "verified"
    tr = out["verification"]["test_restore"]
    assert tr["row_counts"] == {"public.trades": 5000, "public.positions": 5}
    assert tr["database"].startswith("trading__verify_") and pg.databases() == before
    m = manifest(b["dump"])
    assert m["status"] == "verified" and m["verification"]["checksums"] == "ok" and m["toc_entries"] > 5
    again, failed = verify(pg, b["dump"], capsys, test_restore=True)
    assert not failed and again["changed"] is False


@pytest.mark.parametrize("damage, words", [
    ("flip", "does not match its sha256"),
    ("truncate", "truncated or replaced"),
])
def test_tampered_or_truncated_dump_is_marked_failed(pg, verified, capsys, damage, words):
    dump = Path(verified["dump"])
    data = bytearray(dump.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    dump.write_bytes(bytes(data))
    out, failed = verify(pg, dump, capsys, force=True)
    assert failed and words in out["msg"] and "NOT verified" in out["msg"]
    assert manifest(dump)["status"] == "failed"
    out, failed = restore(pg, dump, capsys, require_verified=False)
    assert failed and words in out["msg"] and "nothing was changed" in out["msg"]


def test_missing_manifest_is_refused_by_verify_and_restore(pg, verified, capsys):
    dump = Path(verified["dump"])
    Path(str(dump).replace(".pgdump", ".manifest.json")).unlink()
    before = pg.databases()
    for out, failed in (verify(pg, dump, capsys), restore(pg, dump, capsys)):
        assert failed and "has no manifest" in out["msg"] and "nothing proves" in out["msg"]
    assert pg.databases() == before


@pytest.mark.parametrize("how", ["path outside", "not listed", "symlink"])
def test_a_manifest_cannot_point_the_restore_at_another_dump(pg, verified, tmp_path, capsys, how):
    """A copied manifest edited to name another file (a path that climbs out, a dump missing
    from its files, a link to a file elsewhere) must change nothing and never be verified."""
    evil_db = "evil_src"
    pg.seed(evil_db, n_trades=7)
    evil = backup(pg, tmp_path / "evil", capsys, db=evil_db)  # a real dump of other data
    good = manifest(verified["dump"])
    copy_dir = tmp_path / "copied" / "a" / "b"
    copy_dir.mkdir(parents=True)
    m = json.loads(json.dumps(good))
    name = Path(verified["dump"]).name
    if how == "path outside":
        m["dump"] = os.path.relpath(evil["dump"], copy_dir)
        del m["files"][name]
    elif how == "not listed":
        shutil.copyfile(evil["dump"], copy_dir / name)
        del m["files"][name]
    else:
        (copy_dir / name).symlink_to(evil["dump"])
        m["files"][name] = manifest(evil["dump"])["files"][Path(evil["dump"]).name]
    for rel in m["files"]:
        shutil.copyfile(Path(verified["dump"]).parent / rel, copy_dir / rel)
    mpath = copy_dir / (name.replace(".pgdump", ".manifest.json"))
    mpath.write_text(json.dumps(m))
    before = pg.databases()
    counts = pg.counts("trading")
    out, failed = restore(pg, mpath, capsys)
    assert failed and "nothing was changed" in out["msg"], out["msg"]
    assert any(w in out["msg"] for w in ("only a file name", "does not list its dump", "symbolic link", "link or lies"))
    assert pg.databases() == before and pg.counts("trading") == counts
    out, failed = verify(pg, mpath, capsys, force=True)
    assert failed and json.loads(mpath.read_text())["status"] != "verified"


def test_dump_from_a_newer_pg_dump_is_refused(pg, verified, tmp_path, capsys):
    dump = Path(verified["dump"])
    data = dump.read_bytes()
    toc = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    version = toc.split("Dumped by pg_dump version: ")[1].splitlines()[0]  # '15.18 (Debian 15.18-0+deb12u1)'
    newer = version.replace("15.", "17.")
    assert len(newer) == len(version) and data.count(version.encode()) >= 1
    # the header holds the server's version, then pg_dump's: rewrite the last one (same length)
    at = data.rindex(version.encode())
    foreign = tmp_path / "newer" / "trading.pgdump"
    foreign.parent.mkdir()
    foreign.write_bytes(data[:at] + newer.encode() + data[at + len(version):])
    out, failed = verify(pg, foreign, capsys, create_manifest=True, expected_row_counts=verified["row_counts"])
    assert failed and "newer than this pg_restore" in out["msg"] and "PostgreSQL 17" in out["msg"]
    out, failed = restore(pg, foreign, capsys, require_verified=False)
    assert failed and "newer than this pg_restore" in out["msg"]
    assert not any(d.startswith("trading__restore_") for d in pg.databases())


def test_wrong_credentials_and_bad_names_are_refused_before_anything_runs(pg, verified, capsys):
    before = pg.databases()
    out, failed = restore(pg, verified["dump"], capsys, login_password="wrong-" + pg.password)
    assert failed and "cannot connect" in out["msg"] and "password authentication failed" in out["msg"]
    assert pg.password not in json.dumps(out)
    out, failed = restore(pg, verified["dump"], capsys, db='x"; drop table trades; --')
    assert failed and "refused" in out["msg"]
    out, failed = run_module(pg_backup, dict(pg.login(), database="trading", backup_root="/tmp/x",
                                             csv_tables=["positions; drop table trades"]), capsys)
    assert failed and "refused" in out["msg"]
    assert pg.databases() == before and pg.counts("trading")["public.trades"] == 5000


def test_restore_swaps_in_the_backup_and_keeps_the_damaged_database_aside(pg, verified, tmp_path, capsys):
    pg.sql("trading", "DELETE FROM trades WHERE id % 3 = 0")
    pg.sql("trading", "UPDATE positions SET qty = -999999")
    pg.sql("trading", "CREATE TABLE after_backup (x int)")
    out, failed = restore(pg, verified["dump"], capsys, safety_dump="after_swap", backup_root=str(tmp_path / "b2"))
    assert not failed, out.get("msg")
    r = out["restore"]
    assert pg.counts("trading") == {"public.trades": 5000, "public.positions": 5}
    assert pg.sql("trading", "SELECT count(*) FROM positions WHERE qty = -999999")[0][0] == 0
    aside = r["aside"]
    assert aside.startswith("trading__pre_restore_") and aside in pg.databases()
    assert pg.sql(aside, "SELECT count(*) FROM trades")[0][0] == 5000 - 5000 // 3  # kept as it was
    assert pg.sql(aside, "SELECT count(*) FROM after_backup")[0][0] == 0
    assert r["row_counts"] == {"public.trades": 5000, "public.positions": 5} and r["jobs"] >= 1
    assert 0 <= r["data_loss_window_s"] < 600 and r["seconds"]["restore"] > 0
    safety = manifest(r["safety_dump"]["dump"])
    assert safety["kind"] == "safety" and safety["row_counts"]["public.trades"] == 5000 - 5000 // 3
    assert "after_backup" in json.dumps(safety["row_counts"])


def test_check_mode_runs_every_check_and_changes_nothing(pg, verified, capsys):
    pg.sql("trading", "DELETE FROM trades WHERE id < 100")
    before = pg.databases()
    out, failed = restore(pg, verified["dump"], capsys, _ansible_check_mode=True)
    assert not failed and out["changed"]
    assert any(s.startswith("create database trading__restore_") for s in out["restore"]["plan"])
    assert pg.databases() == before and pg.counts("trading")["public.trades"] == 4901


def test_a_restore_releases_its_lock_itself_not_when_the_server_sees_its_session_end(pg, verified, capsys, monkeypatch):
    """A restore right after another was refused in CI as "another restore of trading is running (PostgreSQL session
    pid ?, ...)": the first one's advisory lock went only when its server process ended, some time after the module
    had closed the connection and gone. Here the first restore's lock session outlives the module, as such a server
    process does: the next restore still takes the lock, because the module released it before closing."""
    lingering = []
    take = pg_restore_swap.Restore.lock

    class Lingering:
        """The lock's connection, whose close() leaves its session open until the test ends."""

        def __init__(self, conn):
            self.conn = conn

        def __getattr__(self, name):
            return getattr(self.conn, name)

        def close(self):
            lingering.append(self.conn)

    def lock_then_linger(self):
        take(self)
        self.locked = Lingering(self.locked)

    monkeypatch.setattr(pg_restore_swap.Restore, "lock", lock_then_linger)
    try:
        for _run in range(2):
            out, failed = restore(pg, verified["dump"], capsys, _ansible_check_mode=True)
            assert not failed, out.get("msg")
        assert len(lingering) == 2 and all(not c.closed for c in lingering)  # both sessions still there
    finally:
        for conn in lingering:
            conn.close()


def test_unverified_backup_and_open_sessions_are_refused(pg, tmp_path, capsys):
    pg.seed("trading")
    b = backup(pg, tmp_path / "b", capsys)
    out, failed = restore(pg, b["dump"], capsys)
    assert failed and "is created, not verified" in out["msg"]
    out, failed = verify(pg, b["dump"], capsys)
    assert not failed, out["msg"]
    holder = pg.connect("trading")
    try:
        out, failed = restore(pg, b["dump"], capsys)
        assert failed and "session(s) still use trading" in out["msg"] and "nothing was changed" in out["msg"]
        out, failed = restore(pg, b["dump"], capsys, terminate_connections=True)
        assert not failed, out.get("msg")
        assert out["restore"]["terminated_sessions"] == 1
    finally:
        holder.close()


def test_pg_restore_killed_midway_leaves_the_original_intact(pg, tmp_path, capsys):
    # big enough that pg_restore runs for a while (the killer below looks every 20 ms), small enough that the backup's
    # verification (a whole test restore) stays short: 100,000 trades (300,000 took 35 s of a loaded CI run)
    pg.seed("trading", n_trades=100000)
    b = backup(pg, tmp_path / "b", capsys)
    out, failed = verify(pg, b["dump"], capsys)
    assert not failed, out["msg"]
    pg.sql("trading", "DELETE FROM trades WHERE id > 99000")
    # the module's own hook (pg_bin_dir): client binaries of a folder of ours, where pg_restore
    # notes its pid and arguments before it becomes the real pg_restore - so that the test
    # kills exactly the restore it started, nothing else on the host
    from ansible_collections.tradeops.dr.plugins.module_utils import _postgres

    real = Path(_postgres.client_binary("pg_restore")).parent
    bins = tmp_path / "bin"
    bins.mkdir()
    for tool in real.iterdir():
        (bins / tool.name).symlink_to(tool)
    started = tmp_path / "pg_restore.started"
    (bins / "pg_restore").unlink()
    (bins / "pg_restore").write_text(f'#!/bin/sh\necho "$$ $*" >> {started}\nexec {real}/pg_restore "$@"\n')
    (bins / "pg_restore").chmod(0o755)
    killed = []
    returned = threading.Event()

    def killer():
        # until the module returns, however long its checks before pg_restore take (a CI run under load spent more
        # than the 60 s this watch had before pg_restore started)
        while not returned.is_set() and not killed:
            lines = started.read_text().splitlines() if started.exists() else []
            for line in lines:
                pid, args = line.split(" ", 1)
                if "--dbname trading__restore_" in args:
                    os.kill(int(pid), 9)
                    killed.append(int(pid))
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    try:
        out, failed = restore(pg, b["dump"], capsys, jobs=1, pg_bin_dir=str(bins))
    finally:
        returned.set()
        t.join()
    assert killed, "pg_restore was never seen running"
    assert failed and "killed by signal 9" in out["msg"] and "was not touched" in out["msg"]
    assert pg.counts("trading")["public.trades"] == 99000
    assert not any(d.startswith("trading__") for d in pg.databases())


def test_migration_runs_on_the_new_database_and_a_failing_one_changes_nothing(pg, verified, tmp_path, capsys):
    out, failed = restore(pg, verified["dump"], capsys, migration_command=[
        "psql", "-v", "ON_ERROR_STOP=1", "-d", "{database}", "-c", "CREATE TABLE alembic_version (v text)"])
    assert not failed, out.get("msg")
    assert pg.sql("trading", "SELECT count(*) FROM alembic_version")[0][0] == 0
    before = pg.databases()
    out, failed = restore(pg, verified["dump"], capsys, migration_command=["psql", "-c", "SELECT nope"])
    assert failed and "migration command" in out["msg"] and "was not touched" in out["msg"]
    assert pg.databases() == before and pg.sql("trading", "SELECT count(*) FROM alembic_version")[0][0] == 0


def test_timescaledb_dump_detected_adopted_and_refused_on_a_server_without_it(pg, tmp_path, capsys):
    truth = json.loads((TIMESCALE_FIXTURES / "srcdb.truth.json").read_text().rstrip().rstrip(";"))
    dump = tmp_path / "adopted" / "srcdb.pgdump"
    dump.parent.mkdir()
    dump.write_bytes((TIMESCALE_FIXTURES / "srcdb.pgdump").read_bytes())
    out, failed = verify(pg, dump, capsys, create_manifest=True, expected_row_counts=truth["row_counts"],
                         test_restore=True)
    m = manifest(dump)
    assert m["origin"] == "adopted" and m["database"] == "srcdb"
    assert m["extensions"]["timescaledb"] == truth["extensions"]["timescaledb"] == "2.28.3"
    assert m["files"]["srcdb.pgdump"]["sha256"] == truth["sha256"] and m["row_counts"] == truth["row_counts"]
    assert m["toc_entries"] == 66 and m["server_version"] == truth["server_version"]
    # the copy is new, the dump is not: its time comes from its header ("Archive created at
    # 2026-11-23 07:17:03 UTC"), not from the file, so the data-loss window is not understated
    assert m["created_at"] == "2026-11-23T07:17:03Z"
    # the test restore cannot run on this server (a plain PostgreSQL: TimescaleDB missing, or
    # installed but not preloaded), and verification says which
    if builds.timescaledb_installed():
        why = "timescaledb 2.28.3 is installed but not in shared_preload_libraries of this server"
    else:
        why = "needs the timescaledb extension version 2.28.3"
    assert failed and why in out["msg"] and m["status"] == "failed"
    before = pg.databases()
    out, failed = restore(pg, dump, capsys, db="srcdb", require_verified=False)
    assert failed and why in out["msg"]
    assert "nothing was changed" in out["msg"] and pg.databases() == before
    out, failed = restore(pg, dump, capsys, db="srcdb", require_verified=False, _ansible_check_mode=True)
    assert failed and why in out["msg"] and pg.databases() == before  # refused in check mode too


def test_catalog_newest_staleness_and_retention(pg, tmp_path, capsys):
    root = tmp_path / "backups"
    pg.seed("trading", n_trades=100)
    made = [backup(pg, root, capsys) for _n in range(4)]
    out, failed = verify(pg, made[1]["dump"], capsys)
    assert not failed and out["verification"]["status"] == "verified", out.get("msg")
    # age them: 0 and 1 are 40 days old (1 verified), 2 and 3 are recent
    for i, b in enumerate(made):
        mp = Path(b["manifest"])
        m = json.loads(mp.read_text())
        m["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (40 * 86400 if i < 2 else
                                                                                         (3 - i) * 60)))
        mp.write_text(json.dumps(m))
    (root / "foreign.pgdump").write_bytes(b"not ours")
    out, failed = run_module(pg_backup_catalog, dict(backup_root=str(root), database="trading"), capsys)
    assert not failed and out["newest"]["dump"] == made[3]["dump"]
    assert out["newest_verified"]["dump"] == made[1]["dump"]
    out, failed = run_module(pg_backup_catalog, dict(backup_root=str(root), database="trading",
                                                     max_age_hours=24), capsys)
    assert failed and out["stale"] is True
    assert out["msg"].startswith("STALE BACKUP: the newest verified backup of trading is 960.") and "24.0 hour" in out["msg"]
    out, failed = run_module(pg_backup_catalog, dict(backup_root=str(root), prune=True, keep_days=30,
                                                     _ansible_check_mode=True), capsys)
    assert not failed and [w["dump"] for w in out["retention"]["would_delete"]] == [made[0]["dump"]]
    assert Path(made[0]["dump"]).exists()
    reasons = {p["dump"]: p["reason"] for p in out["retention"]["plan"]}
    assert "newest verified" in reasons[made[1]["dump"]] and "not managed" in reasons[str(root / "foreign.pgdump")]
    out, failed = run_module(pg_backup_catalog, dict(backup_root=str(root), prune=True, keep_days=30), capsys)
    assert not failed and out["changed"] and not Path(made[0]["dump"]).exists()
    assert not Path(made[0]["manifest"]).exists() and Path(made[1]["dump"]).exists()
    assert (root / "foreign.pgdump").exists()
    again, _failed = run_module(pg_backup_catalog, dict(backup_root=str(root), prune=True, keep_days=30), capsys)
    assert again["changed"] is False


def test_no_backups_at_all_is_a_clear_failure(tmp_path, capsys):
    out, failed = run_module(pg_backup_catalog, dict(backup_root=str(tmp_path / "none"), database="trading",
                                                     max_age_hours=24), capsys)
    assert failed and "no verified backup of trading exists" in out["msg"]


def test_a_dropped_database_is_restored_under_its_name(pg, verified, capsys):
    pg.sql("postgres", "DROP DATABASE trading")
    out, failed = restore(pg, verified["dump"], capsys)
    assert not failed, out.get("msg")
    assert "aside" not in out["restore"] and pg.counts("trading") == {"public.trades": 5000, "public.positions": 5}
    assert not any(d.startswith("trading__") for d in pg.databases())


def test_user_tables_leave_out_system_and_timescaledb_schemas(pg, capsys):
    from ansible_collections.tradeops.dr.plugins.module_utils import _postgres

    pg.seed("trading", n_trades=10)
    # "pgdata" and "xtimescaledb" are user schemas: the LIKE patterns must escape their "_"
    for schema in ("_timescaledb_internal", "timescaledb_information", "pgdata", "xtimescaledb_x", "ledger"):
        pg.sql("trading", f'CREATE SCHEMA "{schema}"')
        pg.sql("trading", f'CREATE TABLE "{schema}".t (x int)')
    conn = pg.connect("trading")
    try:
        tables = _postgres.user_tables(conn)
    finally:
        conn.close()
    assert tables == ["ledger.t", "pgdata.t", "public.positions", "public.trades", "xtimescaledb_x.t"]


def test_a_role_without_createdb_gets_a_clear_failure_not_a_traceback(pg, verified, capsys):
    pg.sql("postgres", "DROP ROLE IF EXISTS lowpriv")
    pg.sql("postgres", "CREATE ROLE lowpriv LOGIN PASSWORD 'lowpriv-pw'")
    try:
        login = dict(pg.login(), login_user="lowpriv", login_password="lowpriv-pw")
        out, failed = run_module(pg_backup_verify, dict(login, backup=verified["dump"], test_restore=True, force=True),
                                 capsys)
        assert failed and "permission denied to create database" in out["msg"] and "Traceback" not in out["msg"]
        assert manifest(verified["dump"])["status"] == "verified"  # the earlier verification stands
        before = pg.databases()
        out, failed = run_module(pg_restore_swap, dict(login, database="trading", backup=verified["dump"],
                                                       safety_dump="none"), capsys)
        assert failed and "permission denied" in out["msg"] and "was not touched" in out["msg"]
        assert pg.databases() == before
    finally:
        pg.sql("postgres", "DROP ROLE lowpriv")


def test_database_grants_and_settings_survive_the_swap(pg, verified, capsys):
    pg.sql("postgres", "DROP ROLE IF EXISTS app_ro")
    pg.sql("postgres", "CREATE ROLE app_ro LOGIN PASSWORD 'app-ro-pw'")
    try:
        pg.sql("postgres", "REVOKE ALL ON DATABASE trading FROM PUBLIC")
        pg.sql("postgres", "GRANT CONNECT ON DATABASE trading TO app_ro")
        pg.sql("postgres", "ALTER DATABASE trading SET work_mem = '7MB'")
        pg.sql("postgres", "ALTER ROLE app_ro IN DATABASE trading SET statement_timeout = '5s'")
        out, failed = restore(pg, verified["dump"], capsys)
        assert not failed, out.get("msg")
        assert any("GRANT CONNECT" in s for s in out["restore"]["database_properties"])
        acl = pg.sql("postgres", "SELECT datacl::text FROM pg_database WHERE datname = 'trading'")[0][0]
        assert "app_ro=c/" in acl and not acl.startswith("{=")  # PUBLIC has nothing, as before
        settings = pg.sql("postgres", "SELECT coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '-'), s.setconfig::text "
                                      "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                                      "WHERE d.datname = 'trading' ORDER BY 1")
        assert settings == [("-", "{work_mem=7MB}"), ("app_ro", "{statement_timeout=5s}")]
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="app_ro", password="app-ro-pw", dbname="trading")
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] == "5s"
        conn.close()
    finally:
        for db in pg.databases():
            if db.startswith("trading"):
                pg.sql("postgres", f'REVOKE ALL ON DATABASE "{db}" FROM app_ro')
                pg.sql("postgres", f'ALTER ROLE app_ro IN DATABASE "{db}" RESET ALL')
        pg.sql("postgres", "DROP ROLE app_ro")


# --------------------------------------------------------------------------- refusals with no test before

def test_a_restore_that_does_not_match_the_manifest_is_dropped_and_the_current_kept(pg, verified, capsys):
    """The dump restores, but its rows are not what the manifest promised: never swapped in."""
    mpath = Path(verified["manifest"])
    m = json.loads(mpath.read_text())
    m["row_counts"]["public.trades"] += 1  # the manifest is not among the checksummed files
    mpath.write_text(json.dumps(m))
    pg.sql("trading", "DELETE FROM trades WHERE id <= 10")
    before_dbs, before_counts = pg.databases(), pg.counts("trading")
    out, failed = restore(pg, verified["dump"], capsys)
    assert failed and "the restored database does not match the manifest: public.trades has 5000 rows, manifest " \
        "5001" in out["msg"]
    assert "The current database trading was not touched; the incomplete trading__restore_" in out["msg"]
    assert pg.databases() == before_dbs and pg.counts("trading") == before_counts


def test_a_swap_that_fails_is_rolled_back_and_connections_allowed_again(pg, verified, capsys):
    """The migration (the users' hook) takes the aside name, so the swap's first rename fails:
    both renames roll back together and the current database takes connections again."""
    pg.sql("trading", "DELETE FROM trades WHERE id <= 10")
    before_counts = pg.counts("trading")
    take_aside = ('psql -d postgres -c "CREATE DATABASE \\"$(echo "$PGDATABASE" | sed s/__restore_/__pre_restore_/)\\""')
    out, failed = restore(pg, verified["dump"], capsys, migration_command=["sh", "-c", take_aside])
    assert failed and "the swap was rolled back" in out["msg"] and "already exists" in out["msg"], out["msg"]
    assert "The current database trading was not touched" in out["msg"]
    assert pg.counts("trading") == before_counts
    assert pg.sql("postgres", "SELECT datallowconn FROM pg_database WHERE datname = 'trading'")[0][0] is True
    assert not any(d.startswith("trading__restore_") for d in pg.databases())


def test_an_autovacuum_worker_is_not_a_session_that_keeps_a_restore_out(pg):
    """The CI run of 2026-12-07 failed the test above with "1 session(s) still use trading (None/pid 22585)": no
    application - an autovacuum worker (no user, no application name) vacuuming trading after the test's DELETE.
    PostgreSQL ends autovacuum workers itself when a database is renamed or dropped; the check that refuses a swap
    while sessions use the database counts the sessions that would keep it busy. Here a worker is held on a database
    on purpose (the table's own cost limit makes it sleep as it vacuums) and the check runs while it is there."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _postgres

    pg.sql("postgres", "CREATE DATABASE av_busy")
    pg.sql("av_busy", "CREATE TABLE t (id int, pad text) WITH (autovacuum_vacuum_threshold = 0, "
                      "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, "
                      "autovacuum_vacuum_cost_limit = 1)")
    pg.sql("av_busy", "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
    pg.sql("av_busy", "DELETE FROM t")
    admin = pg.connect()
    try:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM SET autovacuum_naptime = 1")  # the launcher looks every second, not every minute
            cur.execute("SELECT pg_reload_conf()")

        def workers():
            return [r[0] for r in pg.sql("postgres", "SELECT pid FROM pg_stat_activity WHERE datname = 'av_busy' "
                                                     "AND backend_type = 'autovacuum worker'")]
        wait_for(lambda: (bool(workers()), "none yet"), 60, "an autovacuum worker on av_busy")
        assert _postgres.connections_to(admin, "av_busy") == []
        assert workers(), "the worker left before the check: the test proves nothing"
        client = pg.connect("av_busy")  # an application's session is still one
        try:
            pid = client.get_backend_pid()
            assert [r[0] for r in _postgres.connections_to(admin, "av_busy")] == [pid]
        finally:
            client.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET autovacuum_naptime")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()  # the fixture drops av_busy, which ends the worker


@pytest.mark.parametrize("compress", [-1, 10])
def test_pg_backup_refuses_a_compression_out_of_bounds_and_writes_nothing(pg, tmp_path, capsys, compress):
    pg.seed("trading", n_trades=10)
    out, failed = run_module(pg_backup, dict(pg.login(), database="trading", backup_root=str(tmp_path / "b"),
                                             compress=compress), capsys)
    assert failed and f"compress must be 0-9, not {compress}" in out["msg"]
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").rglob("*"))


def test_pitr_failure_message_keeps_postgres_reason_after_the_shutdown_lines(tmp_path):
    """Issue 31: when the restored copy died after pg_ctl -w returned, the last four log lines were
    all shutdown lines and PostgreSQL's reason was pushed out of the message."""
    from ansible_collections.tradeops.dr.plugins.modules import pg_pitr

    log = tmp_path / "copy.log"
    log.write_text("\n".join([
        "LOG:  starting point-in-time recovery to 2026-12-05 07:00:00+00",
        "LOG:  redo starts at 0/3000028",
        "FATAL:  recovery ended before configured recovery target was reached",
        "LOG:  startup process (PID 10) exited with exit code 1",
        "LOG:  terminating any other active server processes",
        "LOG:  shutting down due to startup process failure",
        "LOG:  database system is shut down",
    ]) + "\n")
    tail = pg_pitr._log_tail(str(log), 4)
    assert tail.startswith("FATAL:  recovery ended before configured recovery target was reached | ...")
    assert tail.endswith("LOG:  database system is shut down")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "base").write_bytes(b"x" * 3 * 1048576)
    assert pg_pitr._left(str(tmp_path / "copy")) == (
        "The restored copy is left for inspection: %s (3.0 MiB); remove it when it is no longer needed." %
        (tmp_path / "copy"))


def test_pg_waldump_failures_are_errors_but_the_end_of_the_wal_is_not(pg, tmp_path):
    """Issue 26: pg_wal_transactions ignored pg_waldump's exit code, so a failed read was "no transactions".
    The end of the valid WAL of a segment still being written (rc 1, "invalid record length ... got 0") is
    the normal end; anything else is an error."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _postgres
    from ansible_collections.tradeops.dr.plugins.modules import pg_wal_transactions

    current = pg.sql("postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    wal = tmp_path / "wal"
    wal.mkdir()
    shutil.copy(Path(pg.cluster.data_dir) / "pg_wal" / current, wal / current)
    waldump = _postgres.server_binary("pg_waldump", major=15)
    read = subprocess.run([waldump, "-p", str(wal), current, current], capture_output=True, text=True, check=False)
    assert read.stdout and pg_wal_transactions.waldump_failure(read.returncode, read.stderr) is None, read.stderr
    assert read.returncode == 1 and "got 0" in read.stderr  # the segment being written ends in zeros
    with open(wal / current, "r+b") as handle:  # a damaged segment header
        handle.write(b"\xff" * 64)
    bad = subprocess.run([waldump, "-p", str(wal), current, current], capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    assert pg_wal_transactions.waldump_failure(bad.returncode, bad.stderr), bad.stderr
    assert pg_wal_transactions.waldump_failure(2, "") == "no error output"
