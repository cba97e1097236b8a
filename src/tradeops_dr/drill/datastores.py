"""Drills of the data stores and the files around them (runbooks 000, 001, 002, 003, 004): Redis,
the database, QuestDB, the model, the config and the file-state sets."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import errors, faults
from ..api import RunResult, run_playbook
from ..paths import STANDINS
from ..sandbox import RedisServer, Sandbox, free_port, pid_alive, read_pid, wait_for
from ..seed import CONFIG_VERSIONS
from .steps import DrillStep, Steps, component_drill, redis_record, stream_lengths


def _operator_sets_the_switch(srv: RedisServer, result: RunResult, switch: dict) -> bool:
    """When a Redis recovery failed closed naming the missing kill switch (a replay never writes
    control state), set it back as the operator would. True when it did."""
    named = not result.ok and any("Control state missing: policy:kill_switch" in f.msg for f in result.failures)
    if named:
        with srv.client() as c:
            c.hset("policy:kill_switch", mapping=switch)  # the operator's decision, not the replay's
    return named


def redis_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    state = sandbox.up()
    srv = Sandbox.redis_server(state)
    expected = state["seeded"]["redis"]["streams"]
    steps = Steps(on_step)

    def run(**extra) -> RunResult:
        return run_playbook("redis_failure.yml", inventory=inventory, extravars=extra or None,
                            envvars={"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)})

    # 1. crash: kill -9, recover by restart, data back from the AOF: every stream as long as
    # just before the kill (other drills on this sandbox may have added orders since the seed)
    before = stream_lengths(srv, expected)
    srv.kill(signal.SIGKILL)
    t0 = time.monotonic()
    res = run()
    secs = time.monotonic() - t0
    rec = redis_record(res)
    lengths = stream_lengths(srv, expected) if res.ok else {}
    steps.append(DrillStep("crash", "kill -9 redis-server", "restarted, every stream entry back from the AOF",
                           res.ok and rec.get("restarted") is True and lengths == before, secs,
                           [f"restarted={rec.get('restarted')}", f"streams={lengths or rec.get('streams')}",
                            *[f.msg for f in res.failures]]))

    # 2. data loss: Redis answers but came back empty; the ledger fills it, exactly once. The
    # replay never writes control state: the run fails closed naming the missing kill switch,
    # the operator (here: the drill) sets it back, and the next run completes.
    with srv.client() as c:
        switch = c.hgetall("policy:kill_switch")
        c.flushall()
    t0 = time.monotonic()
    first = run()
    rec = redis_record(first)
    lengths = stream_lengths(srv, expected)
    named = _operator_sets_the_switch(srv, first, switch)
    res = run()
    secs = time.monotonic() - t0
    again = run()
    steps.append(DrillStep("data loss", "FLUSHALL",
                           "ledger replay restores every entry once, never the kill switch (named, set by the "
                           "operator); a 2nd run writes 0",
                           (not first.ok) and named and res.ok and again.ok and lengths == expected
                           and again.changed == 0 and int(rec.get("replayed_entries", 0)) > 0, secs,
                           [f"replayed_entries={rec.get('replayed_entries')}", f"streams={lengths}",
                            f"kill switch named as missing control state={named}",
                            f"second run changed={again.changed}", *[f.msg for f in res.failures]]))

    # 3. damaged AOF: refused without permission (broken copy kept), repaired with it. The cut may
    # take the kill switch's last write with it: then the run fails closed naming it, and the
    # operator (here: the drill) sets it back, as after a data loss.
    with srv.client() as c:
        switch = c.hgetall("policy:kill_switch")
    srv.kill(signal.SIGKILL)
    aof_dir = Path(state["redis"]["data_dir"]) / "appendonlydir"
    incr = sorted(aof_dir.glob("*.incr.aof"))[-1]
    size = incr.stat().st_size
    with open(incr, "r+b") as fh:
        fh.truncate(size - 9)
    t0 = time.monotonic()
    refused = run()
    still_down = not pid_alive(read_pid(srv.pidfile))
    backups = sorted(Path(state["redis"]["backup_dir"]).glob("aof-*"))
    repaired = run(redis_restart_aof_allow_truncate=True)
    rec = redis_record(repaired)
    set_back = _operator_sets_the_switch(srv, repaired, switch)
    if set_back:
        repaired = run()
    secs = time.monotonic() - t0
    aof = rec.get("aof") or {}
    lengths = stream_lengths(srv, expected) if repaired.ok else {}
    steps.append(DrillStep("damaged AOF", f"kill -9, cut 9 bytes off {incr.name}",
                           "refused and kept aside without allow_truncate; repaired with it; ledger refills",
                           (not refused.ok) and still_down and bool(backups) and repaired.ok
                           and aof.get("repaired") is True and lengths == expected, secs,
                           [f"refused: {refused.failures[0].msg[:160] if refused.failures else 'NOT REFUSED'}",
                            f"kept aside: {backups[-1] if backups else 'nothing'}",
                            f"bytes_lost={aof.get('bytes_lost')}", f"replayed_entries={rec.get('replayed_entries')}",
                            f"kill switch lost with the cut and set back by the operator={set_back}",
                            f"streams={lengths}", *[f.msg for f in repaired.failures]]))
    return steps


def _pg_counts(state: dict) -> dict:
    conn = Sandbox.pg_connect(state)
    try:
        with conn.cursor() as cur:
            counts = {}
            for table in ("public.trades", "public.positions"):
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                if cur.fetchone()[0]:
                    cur.execute(f"SELECT count(*) FROM {table}")
                    counts[table] = cur.fetchone()[0]
            return counts
    finally:
        conn.close()


def _pg_exec(state: dict, statement: str) -> None:
    conn = Sandbox.pg_connect(state)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


class _DbApp:
    """The application that uses the database around the drill's restore (runbook 000 scenario 1): the stand-in
    src/tradeops_dr/standins/db_app.py - a session held open as a pool holds it, GET /health - started on the
    sandbox's host; restore_vars() hands it to the restore as a dependant, stopped first and started after."""

    def __init__(self, sandbox: Sandbox, state: dict):
        pg = state["postgres"]
        host = state.get("standins") or dict(python=sys.executable, dir=str(STANDINS))
        folder = sandbox.state_dir / "db_app"
        folder.mkdir(exist_ok=True)
        self.port = free_port()
        self.pidfile = folder / "db_app.pid"
        self.health_url = f"http://127.0.0.1:{self.port}/health"
        args = ["--port", str(self.port), "--pidfile", str(self.pidfile), "--pg-port", str(pg["port"]), "--pg-user",
                pg["user"], "--pg-password-file", str(pg["password_file"]), "--database", pg["database"],
                "--max-seconds", "900"]
        # service control starts it where the sandbox runs: that machine's interpreter and stand-ins
        self.service = dict(name="db-app", manager="process", foreground=True, pidfile=str(self.pidfile),
                            stop_timeout=5, log_file=str(folder / "db_app.log"),
                            start_command=[host["python"], str(Path(host["dir"]) / "db_app.py"), *args])
        self.proc = subprocess.Popen([sys.executable, str(STANDINS / "db_app.py"), *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: (self.health()[0] == 200, self.health()), 20, "the application that uses the database")
        self.first = self.proc.pid

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.health_url, timeout=3) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except OSError:
            return 0, {}

    def restore_vars(self) -> dict:
        return dict(timescale_restore_dependants=[dict(service=self.service, health_url=self.health_url)],
                    timescale_restore_dependants_timeout=30)

    def evidence(self, rec: dict) -> tuple[bool, str]:
        """Stopped before the restore (the first process gone), a new one healthy on the restored database."""
        code, body = self.health()
        stopped = self.proc.poll() is not None
        ok = rec.get("dependants") == ["db-app"] and stopped and code == 200 and body.get("pid") not in (None, self.first)
        return ok, (f"application db-app: pid {self.first} {'stopped' if stopped else 'STILL RUNNING'} before the "
                    f"restore, pid {body.get('pid')} answers {code} after it ({body.get('positions')} positions)")

    def stop(self) -> None:
        for pid in (self.proc.pid, read_pid(self.pidfile)):
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def database_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 000's database scenarios on the sandbox PostgreSQL: a verified backup, then damage
    restored from it (the damaged database kept aside) with the application that uses the database
    stopped before and healthy after, then a stopped server started without a restore."""
    state = sandbox.up()
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    seeded = {"public.trades": state["seeded"]["postgres"]["trades"],
              "public.positions": state["seeded"]["postgres"]["positions"]}
    steps = Steps(on_step)
    found = _pg_counts(state)
    if found != seeded:  # an earlier, failed drill: start from the seeded data set
        raise errors.SandboxError(f"the sandbox database holds {found}, not the seeded {seeded}: "
                                  "run `tradeops-dr sandbox` down and remove .sandbox to start over")

    t0 = time.monotonic()
    backup = run_playbook("backup.yml", inventory=inventory, envvars=env)
    secs = time.monotonic() - t0
    rec = next(iter((backup.data.get("pg_backup") or {}).values()), {})
    verified = [v for v in rec.get("verified", []) if v.get("status") == "verified"]
    steps.append(DrillStep("db backup", "pg_backup role", "dump + manifest, verified by a test restore",
                           backup.ok and bool(verified), secs,
                           [f"verified: {[v.get('manifest') for v in verified]}", *[f.msg for f in backup.failures]]))

    app = _DbApp(sandbox, state)
    try:
        _pg_exec(state, "DROP TABLE positions")
        _pg_exec(state, "DELETE FROM trades WHERE id % 2 = 0")
        t0 = time.monotonic()
        res = run_playbook("database_failure.yml", inventory=inventory, envvars=env, extravars=app.restore_vars())
        secs = time.monotonic() - t0
        rec = next(iter((res.data.get("database_recovery") or {}).values()), {})
        counts = _pg_counts(state)
        around, said = app.evidence(rec)
    finally:
        app.stop()
    steps.append(DrillStep("db damage", "DROP TABLE positions, DELETE half the trades",
                           "newest verified backup restored into a new database and swapped in, the application that "
                           "uses it stopped first and healthy after; damage kept aside",
                           res.ok and rec.get("restored") is True and counts == seeded and bool(rec.get("aside"))
                           and around, secs,
                           [f"counts={counts}", f"aside={rec.get('aside')}", said,
                            f"data-loss window={rec.get('data_loss_window_s')} s", f"steps={rec.get('seconds')}",
                            *[f.msg for f in res.failures]]))

    if state["postgres"].get("timescaledb") and "timescaledb" in (state.get("seeded") or {}):
        steps.append(_disk_full_step(state, inventory, env))

    Sandbox.postgres_cluster(state).stop()
    t0 = time.monotonic()
    res = run_playbook("database_failure.yml", inventory=inventory, envvars=env)
    secs = time.monotonic() - t0
    rec = next(iter((res.data.get("database_recovery") or {}).values()), {})
    counts = _pg_counts(state) if res.ok else {}
    steps.append(DrillStep("db down", "PostgreSQL stopped", "started through service control, no restore",
                           res.ok and rec.get("started") is True and rec.get("restored") is False and counts == seeded,
                           secs, [f"counts={counts}", *[f.msg for f in res.failures]]))
    return steps


def questdb_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 003 section 2 on the sandbox's QuestDB: a WAL table suspended with writes waiting,
    then the server killed."""

    if not sandbox.up().get("questdb"):
        return []

    def crash(sb, state):
        sb.questdb_server(state).kill()
        return "kill -9 QuestDB"
    steps = component_drill(sandbox, inventory, on_step, [
        ("questdb wal", faults.suspend_wal, "questdb", "RESUME WAL, every waiting transaction applied, counts up"),
        ("questdb crash", crash, "questdb", "started through service control, tables and counts as before")])
    # a checkpoint backup, then the table dropped: the restore (QuestDB stopped, root kept aside)
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    state = sandbox.up()
    qdb = sandbox.questdb_server(state)
    backup = run_playbook("questdb_repair.yml", inventory=inventory, envvars=env,
                          extravars=dict(questdb_repair_action="backup"))
    rec = next(iter((backup.data.get("questdb_backup") or {}).values()), {})
    if not backup.ok or not rec.get("backup"):
        steps.append(DrillStep("questdb restore", "-", "a checkpoint backup to restore from", False, backup.duration,
                               [f.msg for f in backup.failures]))
        return steps
    before = qdb.sql("select count() from trades")["dataset"][0][0]
    qdb.sql("drop table trades")
    t0 = time.monotonic()
    res = run_playbook("questdb_repair.yml", inventory=inventory, envvars=env, extravars=dict(
        questdb_repair_action="restore", questdb_repair_restore_from=rec["backup"]))
    secs = time.monotonic() - t0
    after = qdb.sql("select count() from trades")["dataset"][0][0] if res.ok else None
    steps.append(DrillStep("questdb restore", "DROP TABLE trades after a checkpoint backup",
                           "the checkpoint restored (QuestDB stopped, root kept aside, started), every row back",
                           res.ok and after == before, secs,
                           [f"rows {before} before the drop, {after} after the restore", *[f.msg for f in res.failures]]))
    return steps


def model_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 001 scenario 2 on the sandbox's inference stand-in: the model file corrupted."""

    if not sandbox.up().get("model"):
        return []
    steps = component_drill(sandbox, inventory, on_step, [
        ("model corrupt", faults.corrupt_model, "model",
         "the DVC-tracked file checked out again (damaged copy kept aside), reloaded, served hash verified")])
    # the deployed version is bad: roll back to the previous one, then (not timed) forward again

    state = sandbox.up()
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    md5 = state["model"]["md5"]

    def served():
        with urllib.request.urlopen(state["model"]["url"] + "/v1/health", timeout=5) as resp:
            return json.loads(resp.read()).get("model_md5")
    t0 = time.monotonic()
    res = run_playbook("model_rollback.yml", inventory=inventory, envvars=env,
                       extravars=dict(model_rollback_action="rollback"))
    secs = time.monotonic() - t0
    rolled = served() if res.ok else None
    forward = run_playbook("model_rollback.yml", inventory=inventory, envvars=env, extravars=dict(
        model_rollback_action="rollback", model_rollback_revision="v2", model_rollback_force=True))
    steps.append(DrillStep("model version", "v2 declared bad", "rolled back to v1 (DVC), served hash verified; "
                           "then forward to v2 again", res.ok and rolled == md5["v1"] and forward.ok and
                           served() == md5["v2"], secs,
                           [f"served after the rollback {rolled} (v1 {md5['v1']})",
                            *[f.msg for f in res.failures + forward.failures]]))
    return steps


def _ticks(state: dict) -> dict:
    conn = Sandbox.pg_connect(state)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(price), sum(qty) FROM ticks")
            n, price, qty = cur.fetchone()
            cur.execute("SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                        "WHERE hypertable_name = 'ticks'")
            compressed = cur.fetchone()[0]
            cur.execute("SELECT hypertable_size('ticks')")
            size = cur.fetchone()[0]
        return dict(rows=(n, float(price), int(qty)), compressed=compressed, size=size)
    finally:
        conn.close()


def _disk_full_step(state: dict, inventory: str, env: dict) -> DrillStep:
    """Runbook 004 3.4's disk pressure, as TimescaleDB has it: the compressed chunks decompressed
    (the space they take uncompressed); the disk_full action compresses them again."""
    before = _ticks(state)
    _pg_exec(state, "SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('ticks') c")
    grown = _ticks(state)
    t0 = time.monotonic()
    res = run_playbook("database_failure.yml", inventory=inventory, envvars=env, extravars=dict(
        timescale_restore_action="disk_full", timescale_restore_compress_older_than="2 days"))
    secs = time.monotonic() - t0
    after = _ticks(state)
    ok = res.ok and after["compressed"] == before["compressed"] and after["rows"] == before["rows"] and \
        after["size"] < grown["size"]
    return DrillStep("db disk full", f"{before['compressed']} compressed chunks decompressed "
                     f"({before['size'] // 1024} -> {grown['size'] // 1024} KiB)",
                     "disk_full action: retention, the chunks compressed again, rows unchanged", ok, secs,
                     [f"compressed chunks {after['compressed']}, {after['size'] // 1024} KiB, rows {after['rows'][0]}",
                      *[f.msg for f in res.failures]])


def config_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbooks 001 and 002 on the sandbox's config repository: a file cut short by a bad write,
    then the last change declared bad (rolled back to the previous version, then forward again)."""

    state = sandbox.up()
    if not state.get("config"):
        return []
    steps = component_drill(sandbox, inventory, on_step, [
        ("config corrupt", faults.corrupt_config, "config",
         "put back from git HEAD only after that version validated (damaged file kept aside)")])
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    toml = Path(state["config"]["repo"]) / state["config"]["files"][0]
    t0 = time.monotonic()
    res = run_playbook("config_rollback.yml", inventory=inventory, envvars=env,
                       extravars=dict(config_rollback_action="rollback"))
    secs = time.monotonic() - t0
    rolled = toml.read_text()
    forward = run_playbook("config_rollback.yml", inventory=inventory, envvars=env,
                           extravars=dict(config_rollback_action="rollback", config_rollback_revision="HEAD"))

    steps.append(DrillStep("config change", "the last config change (v2) declared bad",
                           "every file rolled back to v1 after it validated; then forward to v2 again",
                           res.ok and rolled == CONFIG_VERSIONS[0][0] and forward.ok and
                           toml.read_text() == CONFIG_VERSIONS[1][0], secs,
                           [f"after the rollback: {rolled.splitlines()[1] if rolled else '-'}",
                            *[f.msg for f in res.failures + forward.failures]]))
    return steps


def fileset_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 002 procedure B on the sandbox's trading host: a file-state set taken, then the
    state folder damaged (one file deleted, one overwritten); a dry run first, then the restore
    of the state category only."""

    state = sandbox.up()
    trading = state["trading"]
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    root = Path(trading["root"])
    steps = Steps(on_step)

    def sums():
        return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(root.rglob("*")) if f.is_file()}
    taken = run_playbook("fileset_recovery.yml", inventory=inventory, envvars=env,
                         extravars=dict(fileset_recovery_action="backup", fileset_recovery_description="drill"))
    if not taken.ok:
        steps.append(DrillStep("fileset state", "-", "a file-state set to restore from", False, taken.duration,
                               [f.msg for f in taken.failures]))
        return steps
    good = sums()
    (root / "state" / "positions.json").unlink()
    (root / "state" / "engine.json").write_text('{"last_order_id": 0')  # a write cut short
    damaged = sums()
    t0 = time.monotonic()
    dry = run_playbook("fileset_recovery.yml", inventory=inventory, envvars=env, extravars=dict(
        fileset_recovery_action="restore", fileset_recovery_categories=["state"], fileset_recovery_dry_run=True))
    dry_changed_nothing = sums() == damaged
    res = run_playbook("fileset_recovery.yml", inventory=inventory, envvars=env, extravars=dict(
        fileset_recovery_action="restore", fileset_recovery_categories=["state"]))
    secs = time.monotonic() - t0
    rec = next(iter((res.data.get("fileset_recovery") or {}).values()), {})
    after = sums()
    sets_dir = Path(trading["sets_dir"])
    pre = rec.get("pre_restore_backup")
    kept = bool(pre) and any(f["path"] == "engine.json" for f in json.loads(
        (sets_dir / pre / "metadata.json").read_text()).get("files", []))
    steps.append(DrillStep("fileset state", "state/positions.json deleted, state/engine.json cut short",
                           "a dry run changes nothing; the state category restored from the last set (the damaged "
                           "files backed up first, a set taken after), every checksum as at the backup",
                           dry.ok and dry_changed_nothing and res.ok and after == good and kept
                           and bool(rec.get("post_restore_backup")), secs,
                           [f"dry run changed nothing={dry_changed_nothing}",
                            f"restored from {rec.get('restored_from')}: "
                            f"{[p['action'] for p in rec.get('plan', []) if p.get('action') != 'unchanged']}",
                            f"damaged copy kept in {pre}", f"checksums as at the backup={after == good}",
                            *[f.msg for f in dry.failures + res.failures]]))
    return steps
