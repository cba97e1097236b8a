"""Benchmark: the timescale_restore role's whole restore against a hand-run pg_restore.

Builds a database of --size-mb (default 1024: a trades table with a primary key and an index),
backs it up with the pg_backup role (dump, manifest, verification), then in ONE run times:
  (a)  pg_restore -j2 --exit-on-error into a fresh database, by hand (what users run today);
  (b)  playbooks/database_failure.yml with timescale_restore_action=restore: checks (checksum,
       table of contents, extensions, space, sessions), restore into a new database, ANALYZE,
       row-count verification against the manifest, swap; then the safety dump of the
       renamed-aside database (after the swap, by default);
  (a1) pg_restore -j1 by hand, for the speedup of -j2.
Prints one line per figure (medians of --runs rounds). `recovery` is the time until the restored database serves under
its name (the module's own clock); `role_wall` adds ansible-playbook's start-up and the safety
dump. Runbook 000 gives 10-30 min for a restore.

    .venv/bin/python bench/restore.py [--size-mb 1024] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / ".state" / "collections"))
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

import psycopg2  # noqa: E402
import yaml  # noqa: E402

from tradeops_dr import run_playbook, seed  # noqa: E402
from tradeops_dr.sandbox import PostgresCluster, free_port  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="rounds of (a), (b), (a1); medians are reported")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tradeops-dr-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    (base / "pg").mkdir()
    (base / "pg").chmod(0o755)
    pg = PostgresCluster(base / "pg", free_port(), "bench-" + os.urandom(6).hex())
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(pg.port), PGUSER=pg.user, PGPASSWORD=pg.password)
    try:
        pg.init()
        pg.start()
        return run(pg, env, base, args)
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def sql(pg, db, statement):
    conn = psycopg2.connect(**pg.dsn(db))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
        out = cur.fetchall() if cur.description else None
    conn.close()
    return out


def timed(argv, env) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    return time.perf_counter() - t


def playbook(pg, base, name, extravars, n):
    inv = base / f"inventory-{n}.yml"
    login = dict(login_host="127.0.0.1", login_port=pg.port, login_user=pg.user, login_password=pg.password)
    hostvars = dict(ansible_connection="local", ansible_python_interpreter=sys.executable)
    for prefix in ("pg_backup", "timescale_restore"):
        hostvars.update({f"{prefix}_{k}": v for k, v in login.items()})
    inv.write_text(yaml.safe_dump({"all": {"children": {"postgres_servers": {"hosts": {"bench": hostvars}}}}}))
    t = time.perf_counter()
    res = run_playbook(name, inventory=str(inv), extravars=extravars, private_data_dir=str(base / f"runner-{n}"),
                       quiet=True)
    wall = time.perf_counter() - t
    if res.status != "successful":
        print(res.stdout[-4000:], file=sys.stderr)
        raise SystemExit(f"{name} failed")
    return res, wall


def run(pg, env, base, args) -> int:
    rows = args.size_mb * seed.BENCH_ROWS_PER_MB
    sql(pg, "postgres", "CREATE DATABASE trading")
    t = time.perf_counter()
    sql(pg, "trading", seed.bench_trades_sql(rows))
    size = sql(pg, "trading", "SELECT pg_database_size('trading')")[0][0]
    print(f"# database trading: {size / 2**20:.0f} MB, {rows} trades, built in {time.perf_counter() - t:.1f} s",
          flush=True)
    backups = base / "backups"
    _res, wall = playbook(pg, base, "playbooks/backup.yml", dict(
        pg_backup_databases=["trading"], pg_backup_root=str(backups), pg_backup_test_restore=False,
        pg_backup_max_age_hours=24), 1)
    dump = next(backups.rglob("*.pgdump"))
    print(f"# backup (pg_dump -Fc, manifest, checksums, pg_restore --list): {wall:.1f} s, "
          f"{dump.stat().st_size / 2**20:.0f} MB", flush=True)

    a_s, b_s, wall_s, a1_s, dumps = [], [], [], [], []
    for n in range(args.runs):
        sql(pg, "postgres", "CREATE DATABASE hand_j2")
        a_s.append(timed(["pg_restore", "--exit-on-error", "-j", str(args.jobs), "-d", "hand_j2", str(dump)], env))
        sql(pg, "postgres", "DROP DATABASE hand_j2")

        res, wall = playbook(pg, base, "playbooks/database_failure.yml", dict(
            timescale_restore_database="trading", timescale_restore_backup_root=str(backups),
            timescale_restore_action="restore", timescale_restore_jobs=args.jobs), 2 + n)
        rec = next(iter(res.data["database_recovery"].values()))
        assert rec["restored"] and rec["row_counts"]["public.trades"] == rows, rec
        seconds = rec["seconds"]
        b_s.append(seconds["recovery"])
        wall_s.append(wall)
        dumps.append(seconds.get("safety_dump", 0.0))
        sql(pg, "postgres", f"DROP DATABASE {rec['aside']}")  # the bench's own copy; frees the disk
        Path(rec["safety_dump"]["dump"]).unlink()

        sql(pg, "postgres", "CREATE DATABASE hand_j1")
        a1_s.append(timed(["pg_restore", "--exit-on-error", "-j", "1", "-d", "hand_j1", str(dump)], env))
        sql(pg, "postgres", "DROP DATABASE hand_j1")
        print(f"# round {n + 1}: (a) -j{args.jobs} {a_s[-1]:.1f} s, (b) role {b_s[-1]:.1f} s (steps {seconds}), "
              f"playbook {wall:.1f} s, (a1) -j1 {a1_s[-1]:.1f} s", flush=True)
    a, b, b_wall, a1, sd = (statistics.median(x) for x in (a_s, b_s, wall_s, a1_s, dumps))
    print(f"hand_restore_j{args.jobs}_s {a:.1f} (runbook 000 RTO 600-1800 s)")
    print(f"hand_restore_j1_s {a1:.1f}")
    print(f"role_recovery_s {b:.1f} (checks, restore, analyze, verify, swap; the database serves from here)")
    print(f"role_wall_s {b_wall:.1f} (ansible-playbook start to end, with diagnosis, verification and the "
          f"after-swap safety dump of {sd:.1f} s)")
    print(f"restore_overhead_ratio {b / a:.2f} (target <= 1.15)")
    print(f"role_wall_ratio {b_wall / a:.2f} (no target; includes the safety dump)")
    print(f"j{args.jobs}_speedup {a1 / a:.2f} (pg_restore -j1 / -j{args.jobs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
