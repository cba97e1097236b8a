"""A small, deterministic trading data set for the sandbox and the tests: the ledger
(SQLite, runbook 004's ledger.db) is written first, as the platform's source of truth,
and Redis receives exactly the ledger's writes; PostgreSQL gets positions and trades."""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import subprocess
import warnings
from pathlib import Path

try:
    from .errors import BadInput, SandboxError
except ImportError:  # copied alone into a rehearsal's container (molecule/shared/tasks/seed_module.yml)
    BadInput, SandboxError = ValueError, RuntimeError

SYMBOLS = ("EURUSD", "USDCOP", "BTCUSDT", "ES", "GC")
BASE_MS = 1795000000000  # 2026-11-18T09:06:40Z, fixed so that runs are comparable

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq      INTEGER PRIMARY KEY,
    op       TEXT NOT NULL,
    key      TEXT NOT NULL,
    entry_id TEXT,
    payload  TEXT NOT NULL
)
"""


def ledger_rows(n_orders: int = 200, n_signals: int = 100, rng_seed: int = 7) -> list[tuple]:
    """(op, key, entry_id, payload) rows in the order the platform wrote them."""
    rng = random.Random(rng_seed)
    rows: list[tuple] = [
        ("hset", "policy:kill_switch", None,
         json.dumps({"enabled": "false", "state": "active", "reason": "", "updated_by": "seed"})),
    ]
    qty = dict.fromkeys(SYMBOLS, 0)
    for i in range(n_orders):
        ts = BASE_MS + i * 1000
        sym = rng.choice(SYMBOLS)
        side = rng.choice(("buy", "sell"))
        q = rng.randint(1, 10)
        price = round(rng.uniform(10, 100), 4)
        rows.append(("xadd", "orders.validated", f"{ts}-0",
                     json.dumps({"order_id": f"o{i:05d}", "symbol": sym, "side": side, "qty": q, "limit": price})))
        if i % 20 != 19:  # a few orders stay unfilled
            rows.append(("xadd", "orders.fills", f"{ts + 150}-0",
                         json.dumps({"order_id": f"o{i:05d}", "symbol": sym, "qty": q, "price": price})))
            qty[sym] += q if side == "buy" else -q
            rows.append(("hset", f"positions:{sym}", None, json.dumps({"qty": qty[sym], "last_price": price})))
    for i in range(n_signals):
        rows.append(("xadd", "signals:ppo_primary:stream", f"{BASE_MS + i * 5000 + 7}-0",
                     json.dumps({"action": rng.choice(("long", "short", "flat")),
                                 "confidence": round(rng.random(), 3)})))
    rows.append(("set", "strategy:mode", None, json.dumps("live")))
    return rows


def write_ledger(path: Path, rows: list[tuple]) -> None:
    """Write the rows into a new ledger. An existing ledger with rows is the truth and is
    never rewritten: refuse."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(LEDGER_SCHEMA)
            if conn.execute("SELECT count(*) FROM ledger").fetchone()[0]:
                raise BadInput(f"ledger {path} already has rows; the seed writes only a new ledger")
            conn.executemany("INSERT INTO ledger (seq, op, key, entry_id, payload) VALUES (?, ?, ?, ?, ?)",
                             [(i + 1, *row) for i, row in enumerate(rows)])
    finally:
        conn.close()


def apply_to_redis(client, rows: list[tuple]) -> None:
    """What the platform did at run time: each ledger write, in order, once. Written apart from
    module_utils/_ledger.apply on purpose: the tests compare what the replay module brings back
    with what this independent writer put there."""
    pipe = client.pipeline(transaction=False)
    for op, key, entry_id, payload in rows:
        data = json.loads(payload)
        if op == "xadd":
            pipe.xadd(key, data, id=entry_id)
        elif op == "hset":
            pipe.hset(key, mapping=data)
        else:
            pipe.set(key, data)
    pipe.execute()


def expected_counts(rows: list[tuple]) -> dict:
    streams: dict[str, int] = {}
    keys = set()
    for op, key, _eid, _payload in rows:
        if op == "xadd":
            streams[key] = streams.get(key, 0) + 1
        else:
            keys.add(key)
    return dict(streams=streams, keys=sorted(keys), ledger_entries=len(rows))


def seed_redis(redis_server, ledger: Path, **kw) -> dict:
    rows = ledger_rows(**kw)
    write_ledger(ledger, rows)
    with redis_server.client() as client:
        apply_to_redis(client, rows)
    return expected_counts(rows)


def seed_postgres(pg, n_trades: int = 5000, rng_seed: int = 11, dbname: str = "trading") -> dict:
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(**pg.dsn("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if not cur.fetchone():
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    conn.close()
    rng = random.Random(rng_seed)
    conn = psycopg2.connect(**pg.dsn(dbname))
    with conn, conn.cursor() as cur:
        cur.execute("""
            CREATE TABLE IF NOT EXISTS positions (
                id serial PRIMARY KEY, symbol text NOT NULL UNIQUE, qty numeric NOT NULL,
                avg_price numeric NOT NULL, opened_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE IF NOT EXISTS trades (
                id bigserial PRIMARY KEY, ts timestamptz NOT NULL, symbol text NOT NULL,
                side text NOT NULL CHECK (side IN ('buy', 'sell')), qty numeric NOT NULL, price numeric NOT NULL);
            CREATE INDEX IF NOT EXISTS trades_symbol_ts ON trades (symbol, ts);
        """)
        cur.execute("SELECT count(*) FROM trades")
        if cur.fetchone()[0] == 0:
            rows = [(BASE_MS / 1000 + i, rng.choice(SYMBOLS), rng.choice(("buy", "sell")), rng.randint(1, 10),
                     round(rng.uniform(10, 100), 4)) for i in range(n_trades)]
            cur.executemany("INSERT INTO trades (ts, symbol, side, qty, price) "
                            "VALUES (to_timestamp(%s), %s, %s, %s, %s)", rows)
            cur.execute("""INSERT INTO positions (symbol, qty, avg_price)
                           SELECT symbol, sum(CASE side WHEN 'buy' THEN qty ELSE -qty END), avg(price)
                           FROM trades GROUP BY symbol ON CONFLICT (symbol) DO NOTHING""")
        cur.execute("SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM positions)")
        trades, positions = cur.fetchone()
    conn.close()
    return dict(trades=trades, positions=positions)


def seed_timescale(pg, dbname: str = "trading", days: int = 5, per_day: int = 2000, compress_older_than: str = "2 days"
                   ) -> dict:
    """A TimescaleDB hypertable of ticks beside the trading tables: one chunk per day over the last
    `days` days, compression on (segmented by symbol) with the chunks older than
    `compress_older_than` compressed, and a compression policy (a background job). Needs a server
    with timescaledb in shared_preload_libraries."""
    import psycopg2

    conn = psycopg2.connect(**pg.dsn(dbname))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cur.execute("""CREATE TABLE IF NOT EXISTS ticks (
                           ts timestamptz NOT NULL, symbol text NOT NULL, price double precision NOT NULL,
                           qty integer NOT NULL)""")
        cur.execute("SELECT create_hypertable('ticks', 'ts', chunk_time_interval => interval '1 day', "
                    "if_not_exists => true)")
        cur.execute("SELECT count(*) FROM ticks")
        if cur.fetchone()[0] == 0:
            # deterministic rows: symbol, price and qty follow the row number
            cur.execute("""INSERT INTO ticks (ts, symbol, price, qty)
                           SELECT date_trunc('day', now()) - (%s - 1) * interval '1 day'
                                  + i * (interval '1 day' / %s),
                                  (ARRAY['BTC-USD','ETH-USD','SOL-USD','XRP-USD'])[1 + i %% 4],
                                  100 + (i %% 1000) / 10.0, 1 + i %% 7
                           FROM generate_series(0, %s - 1) AS i""",
                        (days, per_day, days * per_day))
            cur.execute("ALTER TABLE ticks SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol', "
                        "timescaledb.compress_orderby = 'ts')")
            cur.execute("SELECT compress_chunk(c, if_not_compressed => true) "
                        "FROM show_chunks('ticks', older_than => %s::interval) c", (compress_older_than,))
            cur.execute("SELECT add_compression_policy('ticks', %s::interval, if_not_exists => true)",
                        (compress_older_than,))
        cur.execute("SELECT count(*), sum(price), sum(qty) FROM ticks")
        n, price_sum, qty_sum = cur.fetchone()
        cur.execute("SELECT count(*) FILTER (WHERE is_compressed), count(*) FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'ticks'")
        compressed, chunks = cur.fetchone()
    conn.close()
    return dict(ticks=n, price_sum=float(price_sum), qty_sum=int(qty_sum), chunks=chunks,
                compressed_chunks=compressed)


def seed_questdb(qdb, rows: int = 1000) -> dict:
    """A WAL table of trades in QuestDB, `rows` rows applied (waits for the WAL apply job)."""
    import time

    qdb.sql("create table if not exists trades (ts timestamp, symbol symbol, side symbol, qty double, price double) "
            "timestamp(ts) partition by DAY WAL")
    if qdb.sql("select count() from trades")["dataset"][0][0] == 0:
        qdb.sql("insert into trades select timestamp_sequence(now() - 3600000000L, 1000000L) ts, "
                "rnd_symbol('BTC-USD','ETH-USD','SOL-USD') symbol, rnd_symbol('buy','sell') side, "
                f"rnd_double() * 10 qty, 100 + rnd_double() * 10 price from long_sequence({rows})")
    deadline = time.monotonic() + 30
    while True:
        row = next(r for r in qdb.sql("select name, writerTxn, sequencerTxn from wal_tables()")["dataset"]
                   if r[0] == "trades")
        if row[1] == row[2]:
            break
        if time.monotonic() > deadline:
            raise SandboxError(f"QuestDB did not apply the seed rows of trades within 30 s: {row}")
        time.sleep(0.2)
    return dict(trades=qdb.sql("select count() from trades")["dataset"][0][0])


MODEL = "models/ppo_production/final_model.zip"


def write_model(repo: Path, version: str) -> str:
    """A small zip model and its card (md5 and sha256 of the file, as runbook 001 checks);
    returns the file's md5."""
    import hashlib
    import zipfile

    path = repo / MODEL
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", json.dumps({"version": version, "weights": [version] * 100}))
    data = path.read_bytes()
    card = dict(name="ppo_production", version=version,
                artifact=dict(file="final_model.zip", md5=hashlib.md5(data).hexdigest(),
                              sha256=hashlib.sha256(data).hexdigest()))
    (path.parent / "model_card.json").write_text(json.dumps(card, indent=2))
    return hashlib.md5(data).hexdigest()


def seed_model_repo(repo: Path, remote: Path, versions=("v1", "v2")) -> dict:
    """A git work tree whose model folder is tracked by real DVC with a local remote folder:
    one commit and tag per version, every version pushed. Returns {version: md5}."""

    def sh(*argv):
        subprocess.run(list(argv), cwd=repo, check=True, capture_output=True, text=True)

    # DVC through its Python API, in this process: the same repository and remote as its commands make, without
    # a new DVC process per step (six of them took half of a sandbox's start)
    from dvc.repo import Repo

    repo.mkdir(parents=True)
    remote.mkdir(parents=True, exist_ok=True)
    sh("git", "init", "-q", "-b", "main")
    sh("git", "config", "user.email", "ops@example.invalid")
    sh("git", "config", "user.name", "ops")
    md5 = {}
    # DVC without its usage analytics: `dvc init` would post a report to analytics.dvc.org
    saved = os.environ.get("DVC_NO_ANALYTICS")
    os.environ["DVC_NO_ANALYTICS"] = "1"
    # what the commands would print (`dvc init`'s welcome, "to track the changes with git"), as `-q` did
    dvc_log = logging.getLogger("dvc")
    level = dvc_log.level
    dvc_log.setLevel(logging.WARNING)
    try:
        # the API's relative paths are the process's, not the repository's: absolute paths only
        # and without the DeprecationWarning its dependency pygtrie gives on every add (its command hides it)
        with warnings.catch_warnings(), Repo.init(str(repo)) as dvc:
            warnings.simplefilter("ignore", DeprecationWarning)
            with dvc.config.edit() as conf:  # what `dvc config core.analytics false` and `dvc remote add -d` write
                conf["core"]["analytics"] = "false"
                conf["core"]["remote"] = "local"
                conf["remote"]["local"] = {"url": str(remote)}
            for version in versions:
                md5[version] = write_model(repo, version)
                dvc.add(str(repo / "models" / "ppo_production"))
                sh("git", "add", "-A")
                sh("git", "commit", "-q", "-m", f"model {version}")
                sh("git", "tag", version)
            dvc.push()
    finally:
        dvc_log.setLevel(level)
        if saved is None:
            os.environ.pop("DVC_NO_ANALYTICS", None)
        else:
            os.environ["DVC_NO_ANALYTICS"] = saved
    return md5


def seed_all(redis_server, pg, ledger: Path) -> dict:
    return dict(redis=seed_redis(redis_server, ledger), postgres=seed_postgres(pg))


def main(argv=None) -> int:
    """python -m tradeops_dr.seed LEDGER_PATH: write the seed ledger to a new file and print
    what it holds (streams and their lengths, keys) as JSON, for scenarios that seed Redis
    on another host by replaying it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tradeops_dr.seed", description=main.__doc__)
    parser.add_argument("ledger", type=Path)
    args = parser.parse_args(argv)
    rows = ledger_rows()
    write_ledger(args.ledger, rows)
    print(json.dumps(expected_counts(rows), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# The trading configuration of runbooks 001 and 002: a TOML file with the sections the engines
# need and a JSON file of normalisation statistics, in git (two versions; HEAD is v2).
CONFIG_FILES = ("config/trading_config.toml", "config/norm_stats.json")
CONFIG_SECTIONS = {"config/trading_config.toml": ["trading", "risk", "live"]}
CONFIG_VERSIONS = (
    ('[trading]\nsymbols = ["USDCOP"]\n[risk]\nmax_drawdown = 0.05\n[live]\nenabled = false\n', '{"mean": 1}'),
    ('[trading]\nsymbols = ["USDCOP", "EURUSD"]\n[risk]\nmax_drawdown = 0.08\n[live]\nenabled = true\n',
     '{"mean": 2}'),
)


def seed_config_repo(repo: Path) -> dict:
    """A git work tree of the two config files, one commit per version (tags v1, v2)."""

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    if not (repo / ".git").exists():
        (repo / "config").mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", "main")
        git("config", "user.email", "sandbox@example.invalid")
        git("config", "user.name", "sandbox")
        for n, (toml, stats) in enumerate(CONFIG_VERSIONS, start=1):
            (repo / CONFIG_FILES[0]).write_text(toml)
            (repo / CONFIG_FILES[1]).write_text(stats)
            git("add", "-A")
            git("commit", "-q", "-m", f"config v{n}")
            git("tag", f"v{n}")
    return dict(repo=str(repo), files=list(CONFIG_FILES), required_sections=CONFIG_SECTIONS)


# The trading host of runbooks 002 and 004: the config, state and data folders runbook 002's
# recovery manager backs up, and the feed registry of runbook 004 (3.2).
TRADING_FILES = {
    "config/strategy.yaml": "strategy: usdcop-momentum\nmax_position: 10\n",
    "config/registry.yaml": "# feed registry (runbook 004, 3.2)\nprimary_feed: yahoo\nbackup_feed: moneycontrol\n",
    "state/engine.json": '{"last_order_id": 4242, "open_orders": 0}\n',
    "state/positions.json": '{"USDCOP": 10, "EURUSD": -3}\n',
    "data/fills.csv": "id,symbol,qty,price\n1,USDCOP,10,4012.5\n2,EURUSD,-3,1.0841\n",
}


def seed_trading_host(root: Path) -> dict:
    """The folders of a trading host (files written once; a drill's damage is its own to undo)."""
    for rel, text in TRADING_FILES.items():
        f = root / rel
        if not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
    return dict(root=str(root), sources={c: [str(root / c)] for c in ("config", "state", "data")},
                registry=str(root / "config" / "registry.yaml"))


# The benchmarks' trades table (bench/restore.py, bench/pitr.py): a primary key and an index, about
# 1 MB per BENCH_ROWS_PER_MB rows (6M rows of it take about 910 MB).
BENCH_ROWS_PER_MB = 6600


def bench_trades_sql(rows: int) -> str:
    return f"""
        CREATE TABLE trades (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, symbol text NOT NULL,
                             side text NOT NULL, qty numeric NOT NULL, price numeric NOT NULL, note text);
        INSERT INTO trades (ts, symbol, side, qty, price, note)
        SELECT to_timestamp(1795000000 + g), (ARRAY['EURUSD','USDCOP','BTCUSDT','ES','GC'])[1 + g % 5],
               CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, 1 + g % 10, 10 + (g % 9000) / 100.0, md5(g::text)
        FROM generate_series(1, {rows}) g;
        CREATE INDEX trades_symbol_ts ON trades (symbol, ts);
        CREATE TABLE positions AS SELECT symbol, sum(qty) AS qty FROM trades GROUP BY symbol;"""
