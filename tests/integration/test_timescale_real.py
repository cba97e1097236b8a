"""backup.yml and database_failure.yml against a REAL TimescaleDB 2.28.3 on PostgreSQL 15 (the
build of ../shared/servers, installed by scripts/setup.sh; skipped with the reason where it is
not installed, failed under CI=true): a hypertable with compressed chunks beside the trading
tables, backed up, damaged, restored; compression and the disk-full action on real chunks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import Runner, _dropping_new_databases, artifacts_text, record
from tradeops_dr import seed
from tradeops_dr.sandbox import wait_for

pytestmark = pytest.mark.integration

SEEDED = {"public.trades": 5000, "public.positions": 5, "public.ticks": 10000}


def conn_vars(pg, prefix: str, **login) -> dict:
    return {f"{prefix}_{k}": v for k, v in dict(pg.login(), **login).items()}


def backup_vars(pg, root: Path, **kw) -> dict:
    return dict(conn_vars(pg, "pg_backup"), pg_backup_databases=["trading"], pg_backup_root=str(root), **kw)


def restore_vars(pg, root: Path, **kw) -> dict:
    c = pg.cluster
    return dict(conn_vars(pg, "timescale_restore"), timescale_restore_database="trading",
                timescale_restore_backup_root=str(root), timescale_restore_min_row_counts=SEEDED,
                timescale_restore_service=dict(name="postgresql", manager="process", start_command=c.start_command(),
                                               pidfile=str(c.pidfile)), **kw)


def facts(pg, db: str = "trading") -> dict:
    """What a user checks after a restore: counts, sums, chunks and compressed chunks."""
    (n, price, qty), = pg.sql(db, "SELECT count(*), sum(price), sum(qty) FROM ticks")
    (compressed, chunks), = pg.sql(db, "SELECT count(*) FILTER (WHERE is_compressed), count(*) "
                                       "FROM timescaledb_information.chunks WHERE hypertable_name = 'ticks'")
    return dict(ticks=n, price_sum=float(price), qty_sum=int(qty), chunks=chunks, compressed_chunks=compressed,
                trades=pg.sql(db, "SELECT count(*) FROM trades")[0][0],
                positions=pg.sql(db, "SELECT count(*) FROM positions")[0][0])


def task_results(res, action: str) -> list[dict]:
    """The results of every task of `action` in a run, read from ansible-runner's job events."""
    out = []
    for f in sorted((Path(res.artifact_dir) / "job_events").glob("*.json")):
        event = json.loads(f.read_text())
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("task_action") == action:
            out.append(data["res"])
    return out


def scheduler_running(pg, db: str) -> tuple[bool, list]:
    rows = pg.sql("postgres", "SELECT backend_type, datname FROM pg_stat_activity "
                              "WHERE backend_type LIKE 'TimescaleDB Background Worker Scheduler%%'")
    return any(r[1] == db for r in rows), rows


@pytest.fixture
def trading(ts):
    ts.seed("trading")
    base = seed.seed_timescale(ts.cluster, "trading")
    assert base["ticks"] == 10000 and base["chunks"] == 5 and base["compressed_chunks"] == 2
    return ts


def _seed_day(server) -> str:
    """The day the seed's rows follow (seed_timescale lays them out from date_trunc('day', now()))."""
    return server.sql("postgres", "SELECT date_trunc('day', now())::text")[0][0]


@pytest.fixture(scope="module")
def seed_backup(ts_server_session, tmp_path_factory):
    """backup.yml of the seeded database, taken once for the file. The seed is the same rows, chunks and compressed
    chunks all day, so every test's fresh `trading` matches it; a test on another day takes its own (issue 24: a
    backup by playbook per test, 11 of them, about 5 s each on a loaded machine)."""
    work = tmp_path_factory.mktemp("timescale-seed-backup")
    dropping = _dropping_new_databases(ts_server_session)
    server = next(dropping)
    server.seed("trading")
    seed.seed_timescale(server.cluster, "trading")
    day = _seed_day(server)
    res = Runner(work)("playbooks/backup.yml", backup_vars(server, work / "backups"), group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    next(dropping, None)  # drops this seed: each test seeds its own
    return work / "backups", day


@pytest.fixture
def backed_up(trading, run, tmp_path, seed_backup):
    """A verified backup of the test's `trading`, in the test's own folder (tests change it)."""
    root = tmp_path / "backups"
    made, day = seed_backup
    if day == _seed_day(trading):
        shutil.copytree(made, root)
        return root
    res = run("playbooks/backup.yml", backup_vars(trading, root), group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    return root


def test_hypertable_with_compressed_chunks_is_backed_up_restored_and_running_again(trading, run, backed_up):
    before = facts(trading)
    (manifest,) = [json.loads(p.read_text()) for p in backed_up.rglob("*.manifest.json")]
    assert manifest["status"] == "verified" and manifest["extensions"]["timescaledb"] == "2.28.3"
    assert manifest["row_counts"] == SEEDED and manifest["hypertables"][0]["name"] == "public.ticks"
    assert manifest["verification"]["test_restore"]["row_counts"] == SEEDED

    # damage: ticks deleted from an uncompressed chunk, a table dropped
    trading.sql("trading", "DELETE FROM ticks WHERE ts > now() - interval '1 day'")
    trading.sql("trading", "DROP TABLE positions")
    res = run("playbooks/database_failure.yml", restore_vars(trading, backed_up), group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-4000:]
    rec = record(res, "database_recovery")
    assert rec["restored"] is True and rec["row_counts"] == SEEDED

    assert facts(trading) == before  # counts, sums, chunks, compressed chunks
    assert trading.sql("trading", "SHOW timescaledb.restoring")[0][0] == "off"
    # an insert into a compressed range works
    trading.sql("trading", "INSERT INTO ticks VALUES (date_trunc('day', now()) - interval '4 days' + "
                           "interval '1 minute', 'BTC-USD', 1.0, 1)")
    assert trading.sql("trading", "SELECT count(*) FROM ticks")[0][0] == before["ticks"] + 1
    # background jobs run again: the scheduler of the restored database is up, and the
    # compression policy runs (run_job: see ../shared/servers/README.md on this build)
    wait_for(lambda: scheduler_running(trading, "trading"), 30, "TimescaleDB scheduler of trading")
    (job_id,), = trading.sql("trading", "SELECT job_id FROM timescaledb_information.jobs "
                                        "WHERE proc_name = 'policy_compression'")
    trading.sql("trading", f"CALL run_job({job_id})")
    (total_runs,), = trading.sql("trading", "SELECT total_runs FROM timescaledb_information.job_stats "
                                            f"WHERE job_id = {job_id}")
    assert total_runs >= 1
    assert rec["timescaledb"]["scheduler"] == "running"


def test_scheduler_is_restarted_after_the_swap(trading, run, backed_up):
    """ALTER DATABASE ... RENAME stops TimescaleDB's scheduler of the renamed database; without a
    restart, compression, retention and continuous aggregates silently stop after a restore."""
    wait_for(lambda: scheduler_running(trading, "trading"), 30, "scheduler before the restore")
    res = run("playbooks/database_failure.yml", restore_vars(trading, backed_up, timescale_restore_action="restore"),
              group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-4000:]
    running, rows = scheduler_running(trading, "trading")
    assert running, f"no TimescaleDB scheduler for the restored database: {rows}"


def test_copies_kept_aside_run_no_jobs_and_restores_in_a_row_keep_their_scheduler(trading, run, backed_up):
    """Each restore keeps the replaced database aside. Found in the sandbox: with its TimescaleDB
    scheduler still running, every copy held one of max_worker_processes (8 by default) and ran
    its policies (a retention policy would drop the evidence's old chunks); once the server had
    restarted (a rename stops a scheduler, a start starts one for every database), the restored
    database's own scheduler could not start and the next restore failed."""
    (slots,), = trading.sql("postgres", "SHOW max_worker_processes")
    # a copy kept aside by a version of the collection that did not freeze copies (an upgrade): frozen too
    legacy = "trading__pre_restore_20260101t000000z"
    trading.sql("postgres", f"CREATE DATABASE {legacy}")
    trading.sql(legacy, "CREATE EXTENSION timescaledb")

    def restore(n):
        res = run("playbooks/database_failure.yml", restore_vars(trading, backed_up, timescale_restore_action="restore"),
                  group="postgres_servers")
        assert res.status == "successful", f"restore {n}: " + artifacts_text(res)[-3000:]
        rec = record(res, "database_recovery")
        assert rec["timescaledb"] == {"scheduler": "running", "aside_jobs": "frozen"}
        assert trading.sql(rec["aside"], "SHOW timescaledb.restoring")[0][0] == "on"
        return rec["aside"]
    asides = [restore(n + 1) for n in range(int(slots) - 1)]
    assert trading.sql(legacy, "SHOW timescaledb.restoring")[0][0] == "on"
    trading.cluster.stop()
    trading.cluster.start()
    wait_for(lambda: scheduler_running(trading, "trading"), 30, "the scheduler of trading after the server's start")
    asides.append(restore(int(slots)))
    assert not any(scheduler_running(trading, aside)[0] for aside in asides)
    assert scheduler_running(trading, "trading")[0]


def test_the_copy_kept_aside_holds_every_row_and_the_run_says_how_to_read_it(trading, run, backed_up):
    """Found by the Molecule rehearsal: a frozen copy (timescaledb.restoring on) reads its
    compressed chunks as empty, so an operator counting the evidence saw rows missing. The rows
    are there; the result and the report say to turn restoring off in the session."""
    before = facts(trading)
    assert before["compressed_chunks"] >= 1
    trading.sql("trading", "DELETE FROM trades")
    res = run("playbooks/database_failure.yml", restore_vars(trading, backed_up, timescale_restore_action="restore"),
              group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-4000:]
    rec = record(res, "database_recovery")
    aside = rec["aside"]
    assert "SET timescaledb.restoring = off" in rec["aside_read"] and aside in rec["aside_read"]
    assert "SET timescaledb.restoring = off" in artifacts_text(res)
    # as the database is kept (frozen), a plain read misses the compressed chunks' rows ...
    assert trading.sql(aside, "SELECT count(*) FROM ticks")[0][0] < before["ticks"]
    # ... and the session that turns restoring off reads all of them, the damage included
    assert trading.sql(aside, "SET timescaledb.restoring = off; SELECT count(*) FROM ticks")[0][0] == before["ticks"]
    assert trading.sql(aside, "SELECT count(*) FROM trades")[0][0] == 0
    assert trading.sql(aside, "SHOW timescaledb.restoring")[0][0] == "on"


def test_target_without_timescaledb_preloaded_is_refused_before_any_change(trading, pg, run, backed_up):
    """pg (a plain PostgreSQL 15 where timescaledb is installed but not preloaded) gets a
    TimescaleDB backup: refused up front, naming the cause, in check mode too."""
    pg.seed("trading")
    before = pg.databases()
    (dump,) = backed_up.rglob("trading_*.pgdump")
    for check in (True, False):
        res = run("playbooks/database_failure.yml", restore_vars(
            pg, backed_up, timescale_restore_action="restore", timescale_restore_backup=str(dump)),
            group="postgres_servers", check=check)
        text = " ".join(f.msg for f in res.failures)
        assert res.status == "failed", f"check={check}: {artifacts_text(res)[-2000:]}"
        assert "timescaledb 2.28.3 is installed but not in shared_preload_libraries" in text, text
        assert pg.databases() == before


def test_compress_and_disk_full_on_real_chunks(trading, run, backed_up):
    before = facts(trading)
    hosts = restore_vars(trading, backed_up, timescale_restore_action="disk_full",
                         timescale_restore_compress_hypertables=["public.ticks"],
                         timescale_restore_compress_older_than="1 day")
    res = run("playbooks/database_failure.yml", hosts, group="postgres_servers")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    after = facts(trading)
    assert after["compressed_chunks"] == before["compressed_chunks"] + 1  # the chunk of 2 days ago
    assert {k: v for k, v in after.items() if k != "compressed_chunks"} == \
        {k: v for k, v in before.items() if k != "compressed_chunks"}
    again = run("playbooks/database_failure.yml", hosts, group="postgres_servers")
    assert again.status == "successful" and facts(trading) == after
    compress = task_results(again, "tradeops.dr.timescale_compress")
    assert compress and not compress[0]["changed"]


# --------------------------------------------------------------------------- a database owner who is not a superuser

@pytest.fixture
def owner(trading):
    """The example inventory's kind of login: owns `trading`, is not a superuser."""
    name, password = "trading_owner", "owner-" + os.urandom(6).hex()
    trading.sql("postgres", f"CREATE ROLE {name} LOGIN CREATEDB PASSWORD '{password}'")
    trading.sql("postgres", f"ALTER DATABASE trading OWNER TO {name}")
    for table in ("trades", "positions", "ticks"):
        trading.sql("trading", f"ALTER TABLE {table} OWNER TO {name}")
    trading.sql("trading", f"GRANT USAGE ON SCHEMA _timescaledb_internal TO {name}")
    yield dict(login_user=name, login_password=password)
    drop_role(trading, name)


def drop_role(server, name: str) -> None:
    """Give everything the role owns, in every database, back to the test's superuser; drop it."""
    for (db,) in server.sql("postgres", "SELECT datname FROM pg_database WHERE datallowconn"):
        server.sql(db, f"REASSIGN OWNED BY {name} TO {server.user}")
        server.sql(db, f"DROP OWNED BY {name}")
    server.sql("postgres", f"DROP ROLE {name}")


def test_plain_database_backup_by_an_owner_who_is_not_superuser(pg, run, tmp_path):
    pg.seed("trading")
    name, password = "plain_owner", "owner-" + os.urandom(6).hex()
    pg.sql("postgres", f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        pg.sql("postgres", f"ALTER DATABASE trading OWNER TO {name}")
        for table in ("trades", "positions"):
            pg.sql("trading", f"ALTER TABLE {table} OWNER TO {name}")
        root = tmp_path / "b"
        res = run("playbooks/backup.yml", dict(backup_vars(pg, root, pg_backup_test_restore=False),
                                               pg_backup_login_user=name, pg_backup_login_password=password),
                  group="postgres_servers")
        assert res.status == "successful", " ".join(f.msg for f in res.failures) or artifacts_text(res)[-2000:]
        (m,) = [json.loads(p.read_text()) for p in root.rglob("*.manifest.json")]
        assert m["row_counts"] == {"public.trades": 5000, "public.positions": 5} and m["status"] == "verified"
    finally:
        drop_role(pg, name)


def test_timescale_restore_without_superuser_names_the_privilege_and_leaves_nothing(trading, owner, run, backed_up):
    before = trading.databases()
    res = run("playbooks/database_failure.yml", restore_vars(trading, backed_up, timescale_restore_action="restore",
                                                             **{f"timescale_restore_{k}": v for k, v in owner.items()}),
              group="postgres_servers")
    text = " ".join(f.msg for f in res.failures)
    assert res.status == "failed"
    assert "superuser" in text and "timescaledb_pre_restore" in text, text
    assert trading.databases() == before, "a refused restore left databases behind"


def test_failed_test_restore_cleans_up_what_it_created(trading, run, backed_up, tmp_path):
    """A verification whose test restore fails drops its scratch database and says so."""
    (manifest_path,) = backed_up.rglob("*.manifest.json")
    m = json.loads(manifest_path.read_text())
    m["row_counts"]["public.trades"] += 1  # the test restore's counts will not match
    m["status"] = "created"
    manifest_path.write_text(json.dumps(m))
    before = trading.databases()
    res = run("playbooks/backup.yml", backup_vars(trading, backed_up, pg_backup_action="verify"),
              group="postgres_servers")
    assert res.status == "failed"
    (verify,) = task_results(res, "tradeops.dr.pg_backup_verify")
    item = verify["results"][0]
    assert "test restore: public.trades has 5000 rows, manifest 5001" in item["msg"]
    assert item["verification"]["test_restore"]["database"].startswith("trading__verify_")
    assert trading.databases() == before, "the scratch database of the test restore was left behind"


# --------------------------------------------------------------------------- smaller defects

def test_verify_action_runs_with_and_without_backups_to_verify(trading, run, backed_up, tmp_path):
    res = run("playbooks/backup.yml", backup_vars(trading, backed_up, pg_backup_action="verify"),
              group="postgres_servers")
    assert res.status == "successful", " ".join(f.msg for f in res.failures)
    empty = run("playbooks/backup.yml", backup_vars(trading, tmp_path / "none", pg_backup_action="verify"),
                group="postgres_servers")
    # nothing to verify is not an error of the verification; the staleness check then says what is missing
    assert "has no attribute" not in artifacts_text(empty)
    assert "no verified backup of trading exists" in artifacts_text(empty)


def test_check_mode_restore_report_names_the_database_kept_aside(trading, run, backed_up):
    res = run("playbooks/database_failure.yml", restore_vars(trading, backed_up, timescale_restore_action="restore"),
              group="postgres_servers", check=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert "(no previous database)" not in res.stdout
    assert "would be kept aside as trading__pre_restore_" in res.stdout
    assert not any(d.startswith("trading__") for d in trading.databases())


def test_compress_of_a_table_that_is_not_there_fails_and_compresses_nothing(trading, run, backed_up):
    before = facts(trading)
    res = run("playbooks/database_failure.yml", restore_vars(
        trading, backed_up, timescale_restore_action="disk_full",
        timescale_restore_compress_hypertables=["public.ticks", "public.nope"],
        timescale_restore_compress_older_than="1 day"), group="postgres_servers")
    assert res.status == "failed"
    (compress,) = task_results(res, "tradeops.dr.timescale_compress")
    assert "public.nope is not a hypertable of trading (hypertables: public.ticks); nothing was compressed" \
        in compress["msg"]
    assert facts(trading) == before  # every name is checked before the first chunk is compressed
