"""Benchmark: point-in-time recovery (pgBackRest) against today's dump restore, and the measured RPO.

In ONE run, on one PostgreSQL 15 cluster with TimescaleDB preloaded and a database of --size-mb
(default 1024: a trades table with a primary key and an index, as bench/restore.py builds it):
  (a) the dump restore of the timescale_restore role (playbooks/database_failure.yml, method dump,
      action restore: a verified pg_dump restored into a new database, verified, swapped); its
      `recovery` clock (until the restored database serves under its name);
  (b) the point-in-time recovery of the same role (method pitr, target latest): pgbackrest restore
      into a new data directory, the copy started on a spare port and verified, the server stopped,
      the swap, the server started; the role's wall time from the first task to the server serving.
  pitr_vs_dump_ratio = (b) / (a); target <= 0.5 (it copies files instead of rebuilding indexes).
Then the RPO on a second, small cluster: a writer commits a trade every 50 ms, the primary is
killed with kill -9 and its data directory lost; the recovery to latest from the archive; the RPO is
the kill time minus the newest recovered commit. Once with the default archive_timeout (60 s, the
writer runs 75 s first) and once with archive_timeout 5 s (targets <= 60 s and <= 5 s).

    .venv/bin/python bench/pitr.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / ".state" / "collections"))
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

import psycopg2  # noqa: E402
import yaml  # noqa: E402

from tradeops_dr import builds, run_playbook, seed  # noqa: E402
from tradeops_dr.sandbox import PostgresCluster, free_port, read_pid  # noqa: E402


class Bench:
    def __init__(self, base: Path, name: str):
        self.base = base / name
        self.base.mkdir()
        self.base.chmod(0o755)
        (self.base / "pg").mkdir()
        (self.base / "pg").chmod(0o755)
        self.pg = PostgresCluster(self.base / "pg", free_port(), "bench-" + os.urandom(6).hex(),
                                  settings=dict(builds.TIMESCALEDB_SETTINGS))
        self.pg.init()
        self.pg.start()
        self.n = 0

    def sql(self, statement, db="trading"):
        conn = psycopg2.connect(**self.pg.dsn(db))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
            out = cur.fetchall() if cur.description else None
        conn.close()
        return out

    def hostvars(self, archive_timeout):
        login = dict(login_host="127.0.0.1", login_port=self.pg.port, login_user=self.pg.user,
                     login_password=self.pg.password)
        v = dict(ansible_connection="local", ansible_python_interpreter=sys.executable)
        for prefix in ("pg_backup", "timescale_restore", "pgbackrest"):
            v.update({f"{prefix}_{k}": val for k, val in login.items()})
        service = dict(name="postgresql", manager="process", start_command=self.pg.start_command(),
                       pidfile=str(self.pg.pidfile))
        conf, repo = str(self.base / "pgbackrest" / "pgbackrest.conf"), str(self.base / "repo")
        v.update(pgbackrest_stanza="bench", pgbackrest_config=conf, pgbackrest_repo_path=repo,
                 pgbackrest_pg_path=str(self.pg.data_dir), pgbackrest_pg_socket_path=str(self.pg.socket_dir),
                 pgbackrest_archive_timeout=archive_timeout, pgbackrest_restart_allowed=True,
                 pgbackrest_service=service, pgbackrest_process_max=2, pgbackrest_compress_type="lz4",
                 timescale_restore_database="trading", timescale_restore_service=service,
                 timescale_restore_pitr_stanza="bench", timescale_restore_pitr_config=conf,
                 timescale_restore_pitr_repo_path=repo, timescale_restore_pitr_data_dir=str(self.pg.data_dir),
                 timescale_restore_pitr_spare_port=free_port(avoid={self.pg.port}),
                 timescale_restore_pitr_server_settings=dict(builds.TIMESCALEDB_SETTINGS),
                 timescale_restore_pitr_backup_after=False)
        return v

    def play(self, name, extravars, archive_timeout=60):
        self.n += 1
        inv = self.base / f"inventory-{self.n}.yml"
        inv.write_text(yaml.safe_dump({"all": {"children": {"postgres_servers": {"hosts": {
            "bench": self.hostvars(archive_timeout)}}}}}))
        t = time.perf_counter()
        res = run_playbook(name, inventory=str(inv), extravars=extravars,
                           private_data_dir=str(self.base / f"runner-{self.n}"), quiet=True)
        wall = time.perf_counter() - t
        if res.status != "successful":
            print(res.stdout[-4000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        return res, wall

    def stop(self):
        for d in [self.pg.data_dir, *self.pg.root.glob("data.p*")]:
            pid = read_pid(Path(d) / "postmaster.pid") if Path(d).is_dir() else None
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def restore_comparison(b: Bench, size_mb: int) -> tuple[float, float, int]:
    rows = size_mb * seed.BENCH_ROWS_PER_MB
    b.sql("CREATE DATABASE trading", db="postgres")
    t = time.perf_counter()
    b.sql(seed.bench_trades_sql(rows))
    size = b.sql("SELECT pg_database_size('trading')")[0][0]
    print(f"# database trading: {size / 2**20:.0f} MB, {rows} trades, built in {time.perf_counter() - t:.1f} s",
          flush=True)
    backups = b.base / "dumps"
    _res, wall = b.play("playbooks/backup.yml",
                        dict(pg_backup_databases=["trading"], pg_backup_root=str(backups), pg_backup_test_restore=False))
    print(f"# dump backup (pg_backup role): {wall:.1f} s", flush=True)
    res, _wall = b.play("playbooks/database_failure.yml", dict(
        timescale_restore_backup_root=str(backups), timescale_restore_action="restore", timescale_restore_jobs=2))
    rec = next(iter(res.data["database_recovery"].values()))
    assert rec["restored"] and rec["row_counts"]["public.trades"] == rows, rec
    dump_s = rec["seconds"]["recovery"]
    b.sql(f"DROP DATABASE {rec['aside']}", db="postgres")
    print(f"# dump restore: recovery {dump_s:.1f} s", flush=True)
    # each restore from a backup just taken: the dump above, the physical backup here (after the dump
    # restore, whose WAL a PITR would otherwise replay: WAL written since the backup is replayed, at
    # about the speed it was written)
    _res, wall = b.play("playbooks/pgbackrest.yml", dict(pgbackrest_action="configure"))
    _res, wall = b.play("playbooks/pgbackrest.yml", dict(pgbackrest_action="backup"))
    print(f"# pgBackRest full backup (lz4, 2 processes): {wall:.1f} s", flush=True)

    res, wall = b.play("playbooks/database_failure.yml", dict(
        timescale_restore_method="pitr", timescale_restore_action="restore"))
    pitr = next(iter(res.data["database_pitr"].values()))
    assert b.sql("SELECT count(*) FROM trades")[0][0] == rows
    # the same clock as the dump's `recovery`: from the first check to the restored data serving under its
    # name (here: from the plan to the server started on the restored directory), from the runner's events
    tasks = {e["event_data"]["task"]: e for e in res.run_events if e.get("event") == "runner_on_ok"}
    start = tasks["Plan the recovery - the backup to start from, the archived WAL it needs"]["event_data"]["start"]
    end = tasks["Start the server on the restored data"]["event_data"]["end"]
    from datetime import datetime
    serving = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    r = pitr["restore"]
    print(f"# pitr: pgbackrest restore {r['restore_seconds']} s, start {r['start_seconds']} s, replay to promotion "
          f"{r['replay_seconds']} s (start included), verification {r['verify_seconds']} s, stop {r['stop_seconds']} s; "
          f"plan to serving {serving:.1f} s; role wall {wall:.1f} s", flush=True)
    return dump_s, serving, rows


def measured_rpo(base: Path, archive_timeout: int, run_s: float) -> float:
    b = Bench(base, f"rpo-{archive_timeout}")
    try:
        b.sql("CREATE DATABASE trading", db="postgres")
        b.sql("CREATE TABLE trades (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp(), "
              "qty int); CREATE TABLE positions (symbol text)")
        b.play("playbooks/pgbackrest.yml", dict(pgbackrest_action="configure"), archive_timeout)
        b.play("playbooks/pgbackrest.yml", dict(pgbackrest_action="backup"), archive_timeout)
        stop = threading.Event()

        def writer():
            conn = psycopg2.connect(**b.pg.dsn("trading"))
            conn.autocommit = True
            with conn.cursor() as cur:
                while not stop.is_set():
                    try:
                        cur.execute("INSERT INTO trades (qty) VALUES (1)")
                    except psycopg2.Error:
                        return
                    time.sleep(0.05)
        th = threading.Thread(target=writer, daemon=True)
        th.start()
        time.sleep(run_s)
        pid = read_pid(b.pg.pidfile)
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        stop.set()
        th.join()
        b.pg.data_dir.rename(b.base / "lost-disk")
        time.sleep(1)  # the postmaster's children notice its death and exit
        b.play("playbooks/database_failure.yml",
               dict(timescale_restore_method="pitr", timescale_restore_action="restore"), archive_timeout)
        newest = b.sql("SELECT extract(epoch FROM max(ts)) FROM trades")[0][0]
        return killed_at - float(newest)
    finally:
        b.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--no-rpo", action="store_true", help="the restore comparison only")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tradeops-dr-bench-pitr-", dir="/var/tmp"))
    base.chmod(0o755)
    b = None
    try:
        b = Bench(base, "restore")
        dump_s, pitr_s, _rows = restore_comparison(b, args.size_mb)
        b.stop()
        rpo_default = None if args.no_rpo else measured_rpo(base, 60, 75)
        rpo_tight = None if args.no_rpo else measured_rpo(base, 5, 15)
    finally:
        if b is not None:
            b.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"dump_restore_s {dump_s:.1f} (the timescale_restore role, method dump, {args.size_mb} MB)")
    print(f"pitr_restore_s {pitr_s:.1f} (method pitr, plan to serving: restore, verification on a spare port, stop, "
          "swap, start)")
    print(f"pitr_vs_dump_ratio {pitr_s / dump_s:.2f} (target <= 0.5)")
    if rpo_default is not None:
        print(f"rpo_default_s {rpo_default:.1f} (archive_timeout 60 s, kill -9 and data directory lost; target <= 60)")
        print(f"rpo_tight_s {rpo_tight:.1f} (archive_timeout 5 s; target <= 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
