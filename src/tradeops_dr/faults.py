"""Failures injected into the sandbox, and a fingerprint of its state.

Used by the full-recovery drill, its integration test and bench/full_recovery.py: each fault is
what the runbooks describe (a Redis process killed, a table dropped, a WAL table suspended with
writes waiting, a model file corrupted on disk, a config file cut short, the PMS's process killed, the trading
host's state files damaged), done to the real servers of the sandbox. The combined drill injects FAULTS; "files"
(injected by name) is left out of it: its restore needs a file-state set taken first."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import errors
from .sandbox import Sandbox, wait_for

FAULTS = ("redis", "postgres", "questdb", "model", "config", "pms")
OPTIONAL = ("questdb", "model", "config", "pms")  # parts a sandbox may lack


def kill_redis(sb: Sandbox, state: dict) -> str:
    redis_srv, _pg = sb._servers(state)
    redis_srv.kill()
    wait_for(lambda: (not redis_srv.ping()[0], "still answering"), 10, "redis-server to die")
    return "kill -9 redis-server"


def drop_table(sb: Sandbox, state: dict) -> str:
    conn = Sandbox.pg_connect(state)
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE positions")
    finally:
        conn.close()
    return "DROP TABLE positions"


def suspend_wal(sb: Sandbox, state: dict, pending: int = 3) -> str:
    qdb = sb.questdb_server(state)
    qdb.sql("alter table trades suspend wal")
    for _txn in range(pending):
        qdb.sql("insert into trades select timestamp_sequence(now(), 1000) ts, rnd_symbol('BTC-USD') symbol, "
                "rnd_symbol('buy') side, 1.0 qty, 100.0 price from long_sequence(5)")

    def waiting():
        row = _wal_row(qdb)
        return row and row[1] and int(row[3]) >= int(row[2]) + pending, row

    wait_for(waiting, 15, "the inserts to wait in the WAL")
    return f"ALTER TABLE trades SUSPEND WAL, {pending} transactions waiting"


def _wal_row(qdb):
    data = qdb.sql("select name, suspended, writerTxn, sequencerTxn from wal_tables() where name = 'trades'")
    return (data.get("dataset") or [None])[0]


def model_file(state: dict) -> Path:
    """The sandbox's tracked model file (in its git+DVC repository)."""
    return Path(state["model"]["repo"]) / state["model"]["model_path"]


def corrupt_model(sb: Sandbox, state: dict) -> str:
    path = model_file(state)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
    path.write_bytes(bytes(data))
    return f"64 random bytes written into {state['model']['model_path']}"


def corrupt_config(sb: Sandbox, state: dict) -> str:
    path = Path(state["config"]["repo"]) / state["config"]["files"][0]
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a write cut short: not valid TOML any more
    return f"{state['config']['files'][0]} cut in half"


def damage_state_files(sb: Sandbox, state: dict) -> str:
    root = Path(state["trading"]["root"]) / "state"
    (root / "positions.json").unlink()
    (root / "engine.json").write_text('{"last_order_id": 0')  # a write cut short
    return "state/positions.json deleted, state/engine.json cut short"


def kill_pms(sb: Sandbox, state: dict) -> str:
    pms = sb.pms_standin(state)
    pms.kill()
    wait_for(lambda: (not pms.ready()[0], "still answering"), 10, "the PMS stand-in to die")
    return "kill -9 the PMS"


INJECT = dict(redis=kill_redis, postgres=drop_table, questdb=suspend_wal, model=corrupt_model, config=corrupt_config,
              pms=kill_pms, files=damage_state_files)


def inject(sb: Sandbox, names=FAULTS) -> dict:
    """Inject the named faults; returns {name: what was done}."""
    state = sb.up()
    missing = [n for n in names if n in OPTIONAL and not state.get(n)]
    if missing:
        raise errors.SandboxError(f"this sandbox has no {', '.join(missing)} (see `tradeops-dr sandbox up`)")
    return {name: INJECT[name](sb, state) for name in names}


def fingerprint(sb: Sandbox) -> dict:
    """Everything a recovery could change, digested: every Redis key (type and DUMP), the PostgreSQL
    databases and the row counts and sums of every user table, QuestDB's WAL state and counts,
    the model file and what the service serves, the PMS's book and journal, the trading host's files, the files below
    the sandbox's backup folders,
    and which server processes run."""
    import redis as redis_py
    import urllib.request

    state = sb.load()
    out: dict = {}
    redis_srv, pg = sb._servers(state)
    try:
        r = redis_srv.client(decode_responses=False)
        keys = sorted(r.scan_iter(count=1000))
        out["redis"] = hashlib.sha256(b"".join(k + r.type(k) + (r.dump(k) or b"") for k in keys)).hexdigest()
        # the same without the kill switch (a recovery engages it: control state, compared apart)
        out["redis_data"] = hashlib.sha256(b"".join(k + r.type(k) + (r.dump(k) or b"") for k in keys
                                                    if not k.startswith(b"policy:kill_switch"))).hexdigest()
        out["redis_keys"] = len(keys)
        out["redis_switch"] = (r.hget("policy:kill_switch", "enabled") or b"").decode()
        r.close()
    except redis_py.RedisError as exc:
        out["redis"] = f"down: {type(exc).__name__}"
    try:
        conn = Sandbox.pg_connect(state, "postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT datname, datallowconn FROM pg_database ORDER BY 1")
            out["pg_databases"] = cur.fetchall()
        conn.close()
        conn = Sandbox.pg_connect(state)
        with conn.cursor() as cur:
            cur.execute("SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            tables = [t for (t,) in cur.fetchall()]
            counts = {}
            for t in tables:
                cur.execute(f"SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x")
                counts[t] = cur.fetchone()
            out["pg_tables"] = counts
        conn.close()
    except Exception as exc:  # noqa: BLE001 - a down server is a state too
        out["pg"] = f"down: {type(exc).__name__}"
    qdb = sb.questdb_server(state)
    if qdb is not None:
        try:
            out["questdb_wal"] = _wal_row(qdb)
            out["questdb_count"] = qdb.sql("select count() from trades")["dataset"]
        except Exception as exc:  # noqa: BLE001
            out["questdb"] = f"down: {type(exc).__name__}"
    if state.get("model"):
        out["model_file"] = hashlib.sha256(model_file(state).read_bytes()).hexdigest()
        try:
            with urllib.request.urlopen(state["model"]["url"] + "/v1/health", timeout=5) as resp:
                out["model_served"] = json.loads(resp.read())
        except OSError as exc:
            out["model_served"] = f"down: {type(exc).__name__}"
    if state.get("config"):
        out["config_files"] = {f: hashlib.sha256((Path(state["config"]["repo"]) / f).read_bytes()).hexdigest()
                               for f in state["config"]["files"]}
    if state.get("pms"):  # the book and the journal: a recovery restarts the PMS, never writes to its book
        try:
            conn = Sandbox.pg_connect(state, state["pms"]["database"])
            with conn.cursor() as cur:
                book = {}
                for t in ("pms_positions", "pms_journal"):
                    cur.execute(f"SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x")
                    book[t] = cur.fetchone()
            conn.close()
            out["pms_book"] = book
        except Exception as exc:  # noqa: BLE001
            out["pms_book"] = f"down: {type(exc).__name__}"
    files = []
    for sub in ("backups", "model/backups"):
        base = Path(state["state_dir"]) / sub
        if base.exists():
            files += sorted(str(p.relative_to(state["state_dir"])) for p in base.rglob("*") if p.is_file())
    if state.get("trading"):
        root = Path(state["trading"]["root"])
        out["trading_files"] = {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                                for f in sorted(root.rglob("*")) if f.is_file()}
    out["backup_files"] = hashlib.sha256("\n".join(files).encode()).hexdigest()
    out["processes"] = {name: st["running"] for name, st in sb.status().items()}
    return out
