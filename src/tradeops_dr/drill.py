"""Drills: inject a real failure into the sandbox stack, run the recovery playbook through
ansible-runner, and check and print what happened and how long recovery took."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import errors, faults
from .api import RunResult, run_playbook
from .paths import STANDINS
from .recovery import recover, recover_and_approve
from .sandbox import RedisServer, Sandbox, free_port, pid_alive, read_pid
from .seed import CONFIG_VERSIONS


@dataclass
class DrillStep:
    scenario: str
    injected: str
    expected: str
    passed: bool  # the evidence: the recovery did what it must
    seconds: float
    details: list[str] = field(default_factory=list)
    objective: float | None = None  # seconds, from the runbooks (drill_history.objectives)

    @property
    def met(self) -> bool:
        return self.objective is None or self.seconds <= self.objective

    @property
    def ok(self) -> bool:
        return self.passed and self.met


def _record(result: RunResult) -> dict:
    return next(iter((result.data.get("redis_recovery") or {}).values()), {})


def _operator_sets_the_switch(srv: RedisServer, result: RunResult, switch: dict) -> bool:
    """When a Redis recovery failed closed naming the missing kill switch (a replay never writes
    control state), set it back as the operator would. True when it did."""
    named = not result.ok and any("Control state missing: policy:kill_switch" in f.msg for f in result.failures)
    if named:
        with srv.client() as c:
            c.hset("policy:kill_switch", mapping=switch)  # the operator's decision, not the replay's
    return named


def _lengths(srv: RedisServer, names) -> dict:
    with srv.client() as c:
        return {n: c.xlen(n) for n in names}


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
    before = _lengths(srv, expected)
    srv.kill(signal.SIGKILL)
    t0 = time.monotonic()
    res = run()
    secs = time.monotonic() - t0
    rec = _record(res)
    lengths = _lengths(srv, expected) if res.ok else {}
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
    rec = _record(first)
    lengths = _lengths(srv, expected)
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
    rec = _record(repaired)
    set_back = _operator_sets_the_switch(srv, repaired, switch)
    if set_back:
        repaired = run()
    secs = time.monotonic() - t0
    aof = rec.get("aof") or {}
    lengths = _lengths(srv, expected) if repaired.ok else {}
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


ENGINES = ("sandbox-momentum", "sandbox-meanrev")  # the stand-in engines of the kill-switch drill


def kill_switch_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 004's monthly drill on the sandbox: two stand-in engines (src/tradeops_dr/standins, the
    users' own engines in real life) trade against the sandbox Redis and engage the switch at
    a 5% drawdown; the playbook simulates the drawdown and checks the rest."""

    state = sandbox.up()
    srv = Sandbox.redis_server(state)
    engine = STANDINS / "trading_engine.py"
    env = dict(os.environ, REDISCLI_AUTH=srv.password)
    procs = [subprocess.Popen([sys.executable, str(engine), "--port", str(srv.port), "--name", name,
                               "--max-drawdown", "0.05", "--max-seconds", "60"], env=env)
             for name in ENGINES]
    try:
        time.sleep(0.5)  # let them trade a little
        t0 = time.monotonic()
        res = run_playbook("kill_switch.yml", inventory=inventory,
                           extravars=dict(kill_switch_action="drill", kill_switch_engines=list(ENGINES)),
                           envvars={"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)})
        secs = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    rec = next(iter((res.data.get("kill_switch_drill") or {}).values()), {})
    with srv.client() as c:
        after = c.hgetall("policy:kill_switch")
    ok = res.ok and sorted(rec.get("acked", [])) == ["sandbox-meanrev", "sandbox-momentum"] and \
        after.get("enabled") == "false"
    steps = Steps(on_step)
    steps.append(DrillStep("kill switch", "drawdown set to 5%", "engines engage the switch, all acknowledge, no new "
                           "orders; drawdown put back and switch reset", ok, secs,
                           [f"switch found engaged after waiting {rec.get('detected_after_s')}s, by "
                            f"{rec.get('switch', {}).get('actor')}: {rec.get('switch', {}).get('reason')}",
                            f"acknowledged by {rec.get('acked')}", f"switch after the drill: enabled={after.get('enabled')}",
                            *[f.msg for f in res.failures]]))
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


def database_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 000's database scenarios on the sandbox PostgreSQL: a verified backup, then damage
    restored from it (the damaged database kept aside), then a stopped server started without
    a restore."""
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

    _pg_exec(state, "DROP TABLE positions")
    _pg_exec(state, "DELETE FROM trades WHERE id % 2 = 0")
    t0 = time.monotonic()
    res = run_playbook("database_failure.yml", inventory=inventory, envvars=env)
    secs = time.monotonic() - t0
    rec = next(iter((res.data.get("database_recovery") or {}).values()), {})
    counts = _pg_counts(state)
    steps.append(DrillStep("db damage", "DROP TABLE positions, DELETE half the trades",
                           "newest verified backup restored into a new database and swapped in; damage kept aside",
                           res.ok and rec.get("restored") is True and counts == seeded and bool(rec.get("aside")), secs,
                           [f"counts={counts}", f"aside={rec.get('aside')}",
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


class Steps(list):
    """The steps of a drill; each one is handed to `on_step` the moment it is known (progress)."""

    def __init__(self, on_step=None):
        super().__init__()
        self.on_step = on_step
        self.objectives = getattr(on_step, "objectives", {})  # a Printer carries them

    def append(self, step: DrillStep) -> None:
        if step.objective is None and step.scenario in self.objectives:
            step.objective = float(self.objectives[step.scenario])
        if not step.met:
            step.details.append(f"MISSED its objective: {step.seconds:.1f}s > {step.objective:g}s (runbook RTO)")
        super().append(step)
        if self.on_step:
            self.on_step(step)


HEADER = ("Failure drills (sandbox: real Redis, PostgreSQL/TimescaleDB, QuestDB; stand-ins for the engines and the "
          "inference API)")


def print_header(missing: dict | None = None) -> None:
    """The header; the parts this sandbox left out (and so its inventory) are named once, here."""
    print(HEADER)
    for name, why in sorted((missing or {}).items()):
        print(f"not part of this sandbox (nor of its inventory): {name} - {why}")
    print(f"{'scenario':<15} {'result':<6} {'recovery':>9}  injected -> expected", flush=True)


def print_step(s: DrillStep) -> None:
    print(f"{s.scenario:<15} {'PASS' if s.ok else 'FAIL':<6} {s.seconds:8.2f}s  {s.injected} -> {s.expected}")
    for d in s.details:
        print(f"{'':<33}{d}")
    sys.stdout.flush()


class Printer:
    """Prints each step as it ends; carries the objectives the steps are scored against."""

    def __init__(self, objectives: dict):
        self.objectives = objectives

    def __call__(self, step: DrillStep) -> None:
        print_step(step)


def print_report(steps: list[DrillStep]) -> None:
    print()
    print_header()
    for s in steps:
        print_step(s)
    print(f"\n{sum(s.ok for s in steps)} passed, {sum(not s.ok for s in steps)} failed")


def detect_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Issue 28 on the sandbox: the monitoring stack beside it (src/tradeops_dr/monitoring.py: the
    exporters, Prometheus and Alertmanager at the documented 5 s, ansible-rulebook with the
    collection's rulebook on inventories/local); a drawdown breach and a Redis crash, answered with
    nobody running a command. Only the sandbox's own inventory: the stack watches the sandbox."""
    import shutil

    from . import monitoring

    if monitoring.missing() or inventory != "local":
        return []
    steps = Steps(on_step)
    state = sandbox.up()
    expected = state["seeded"]["redis"]["streams"]
    root = sandbox.state_dir / "monitoring"
    shutil.rmtree(root, ignore_errors=True)
    mon = monitoring.MonitoringStack(root, sandbox.state_dir, interval=5.0)
    mon.forget_automatic_runs()  # the sandbox's own state: each drill starts the guard's count afresh
    try:
        mon.start()
        try:
            got = monitoring.drawdown_breach(sandbox, mon)
            switch, rec = got["switch"], got["record"] or {}
            ok = switch.get("actor") == "ansible-rulebook" and (rec.get("trigger") or {}).get("admitted") is True
            steps.append(DrillStep("detect drawdown", "risk:drawdown set to 20 %",
                                   "TradeopsDrDrawdownBreach fires, the rulebook engages the kill switch",
                                   ok and operator_resets_the_switch(sandbox).ok, got["engaged"],
                                   [f"alert firing after {got['firing']:.1f}s", f"switch: {switch.get('reason')}",
                                    f"incident {rec.get('id')}"]))
        except errors.SandboxError as exc:
            steps.append(DrillStep("detect drawdown", "risk:drawdown set to 20 %", "the switch engaged", False, 0.0,
                                   [str(exc)[-600:]]))
        srv = Sandbox.redis_server(state)
        before = _lengths(srv, expected)
        try:
            got = monitoring.redis_crash(sandbox, mon)
            rec = got["record"] or {}
            lengths = _lengths(srv, expected) if got["answering"] else {}
            steps.append(DrillStep("detect redis", "kill -9 redis-server",
                                   "TradeopsDrRedisDown fires, the guarded recovery restarts it, every stream back",
                                   rec.get("status") == "recovered" and lengths == before
                                   and operator_resets_the_switch(sandbox).ok, got["healthy"],
                                   [f"alert firing after {got['firing']:.1f}s, recovery admitted after "
                                    f"{got['started']:.1f}s", f"record {rec.get('id')}: {rec.get('status')}",
                                    f"streams={lengths}"]))
        except errors.SandboxError as exc:
            steps.append(DrillStep("detect redis", "kill -9 redis-server", "recovered by the rulebook's run", False,
                                   0.0, [str(exc)[-600:]]))
    except errors.SandboxError as exc:  # the stack itself did not start: neither scenario could run
        for name in ("detect drawdown", "detect redis"):
            steps.append(DrillStep(name, "-", "the monitoring stack starts", False, 0.0, [str(exc)[-600:]]))
    finally:
        mon.stop()
    return steps


def full_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """The front door: every failure the sandbox can have at once (Redis killed, a table dropped,
    a WAL table suspended with writes waiting, the model file corrupted), recovered by
    playbooks/full_recovery.yml - a run, then the approval of the code it printed for what waits
    (the database restore); a second run must change nothing; then the operator resets the
    kill switch the recovery left engaged."""

    state = sandbox.up()
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    steps = Steps(on_step)
    backup = run_playbook("backup.yml", inventory=inventory, envvars=env)  # what a restore needs: a verified backup
    names = [n for n in faults.FAULTS if n not in ("questdb", "model", "config") or state.get(n)]
    done = faults.inject(sandbox, names)
    incident = time.strftime("DRILL-%Y%m%dT%H%M%SZ", time.gmtime())
    t0 = time.monotonic()
    # a person's flow: the run protects capital and recovers what needs no approval, then the approval of
    # exactly what it said still waits (its code) runs the destructive steps
    first, res = recover_and_approve("full", inventory=inventory, incident=incident, envvars=env)
    secs = time.monotonic() - t0
    # each component's outcome from the run that recovered it (the first, or the approved one)
    by = {c.component: c for c in first.components}
    by.update({c.component: c for c in res.components if res is not first and c.before != "healthy"})
    ok = backup.ok and res.status == "recovered" and all(
        by.get(n) and (by[n].before, by[n].after, by[n].outcome) == ("broken", "healthy", "recovered") for n in names)
    details = [f"{n}: {by[n].outcome} in {by[n].seconds:.1f}s (runbook RTO {by[n].rto_seconds}s)" for n in names if n in by]
    if "kill_switch" in by:
        details.append(f"kill switch: {by['kill_switch'].outcome} ({by['kill_switch'].message})")
    details += [f"incident record {res.incident_record}"] + ([res.reason] if not ok else [])
    steps.append(DrillStep("full", "; ".join(done.values()),
                           "full_recovery.yml: kill switch first, every component recovered, record written", ok, secs,
                           details))
    t0 = time.monotonic()
    again = recover("full", inventory=inventory, envvars=env)
    secs = time.monotonic() - t0
    steps.append(DrillStep("full again", "nothing", "a second run finds everything healthy and changes nothing",
                           again.status == "healthy" and again.run is not None and again.run.changed == 0, secs,
                           [] if again.status == "healthy" else [again.reason]))
    # the recovery leaves the switch engaged: the operator lifts it once the platform is verified
    reset = operator_resets_the_switch(sandbox, inventory)
    if not reset.ok:
        steps.append(DrillStep("switch reset", "-", "the operator resets the kill switch", False, reset.duration,
                               [f.msg for f in reset.failures]))
    return steps


def operator_resets_the_switch(sandbox: Sandbox, inventory: str = "local") -> RunResult:
    """What the operator does once the platform is verified: reset the switch, confirming the
    incident it was engaged for, and remove the local flag file a fail-closed engage wrote."""
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    status = run_playbook("kill_switch.yml", inventory=inventory, envvars=env, extravars=dict(kill_switch_action="status"))
    switch = next(iter((status.data.get("kill_switch") or {}).values()), {}).get("switch") or {}
    res = status
    if switch.get("enabled"):
        res = run_playbook("kill_switch.yml", inventory=inventory, envvars=env, extravars=dict(
            kill_switch_action="reset", kill_switch_confirm=switch.get("incident") or "RESET", kill_switch_actor="drill",
            kill_switch_reason="recovery verified"))
    if res.ok:
        (sandbox.state_dir / "kill_switch.flag").unlink(missing_ok=True)
    return res


def _component_drill(sandbox: Sandbox, inventory: str, on_step, cases) -> list[DrillStep]:
    """Each case: (scenario, inject(sandbox, state) -> what was done, component, expected); the
    recovery is `recover(component)`, the front door narrowed to it, and the evidence is its
    own diagnosis after the run (plus the checks of the role)."""

    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    steps = Steps(on_step)
    for scenario, inject, component, expected in cases:
        state = sandbox.up()
        done = inject(sandbox, state)
        t0 = time.monotonic()
        res = recover(component, inventory=inventory, envvars=env)
        secs = time.monotonic() - t0
        c = next((c for c in res.components if c.component == component), None)
        ok = res.status == "recovered" and c is not None and \
            (c.before, c.after, c.outcome) == ("broken", "healthy", "recovered")
        steps.append(DrillStep(scenario, done, expected, ok, secs,
                               ([f"{c.before} -> {c.after}: {c.outcome} in {c.seconds:.1f}s"] if c else [])
                               + ([] if ok else [res.reason])))
    return steps


def questdb_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 003 section 2 on the sandbox's QuestDB: a WAL table suspended with writes waiting,
    then the server killed."""

    if not sandbox.up().get("questdb"):
        return []

    def crash(sb, state):
        sb.questdb_server(state).kill()
        return "kill -9 QuestDB"
    steps = _component_drill(sandbox, inventory, on_step, [
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
    steps = _component_drill(sandbox, inventory, on_step, [
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
    steps = _component_drill(sandbox, inventory, on_step, [
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


def broker_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 004's quarterly broker failover drill (IBKR -> Paper) on the sandbox's Redis, with
    the stand-in order router of src/tradeops_dr/standins (it fills orders only for the adapters that are
    up): first a target that is down too (the switch is rolled back), then Paper."""

    state = sandbox.up()
    srv = Sandbox.redis_server(state)
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    router = STANDINS / "paper_broker.py"
    with srv.client() as c:
        c.set("broker:active", "ibkr")  # the router's adapter before the outage
    proc = subprocess.Popen([sys.executable, str(router), "--port", str(srv.port), "--fills-for", "paper",
                             "--max-seconds", "120"], env=dict(os.environ, REDISCLI_AUTH=srv.password))
    steps = Steps(on_step)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        down = run_playbook("broker_failover.yml", inventory=inventory, envvars=env, extravars=dict(
            broker_failover_target="zerodha", broker_failover_reason="drill: IBKR down",
            broker_failover_verify_timeout=3))
        secs = time.monotonic() - t0
        with srv.client() as c:
            active = c.get("broker:active")
        steps.append(DrillStep("broker rollback", "IBKR down, failover to Zerodha (down too)",
                               "no fill from Zerodha: switched back to IBKR, the run fails saying so",
                               (not down.ok) and active == "ibkr"
                               and any("rolled back" in f.msg for f in down.failures), secs,
                               [f"active after the run: {active}", *[f.msg[:200] for f in down.failures]]))
        t0 = time.monotonic()
        res = run_playbook("broker_failover.yml", inventory=inventory, envvars=env, extravars=dict(
            broker_failover_target="paper", broker_failover_reason="drill: IBKR down"))
        secs = time.monotonic() - t0
        with srv.client() as c:
            active = c.get("broker:active")
            fills = [f for _i, f in c.xrevrange("orders.fills", count=5) if f.get("broker") == "paper"]
            event = (c.xrevrange("broker:events", count=1) or [(None, {})])[0][1]
    finally:
        proc.kill()
        proc.wait()
    steps.append(DrillStep("broker failover", "IBKR down (the runbook's quarterly drill: IBKR -> Paper)",
                           "broker:active set to paper, a test order filled by it, the switch recorded",
                           res.ok and active == "paper" and bool(fills) and event.get("to") == "paper", secs,
                           [f"active={active}", f"test fill by paper={bool(fills)}",
                            f"event {event.get('from')} -> {event.get('to')}: {event.get('reason')}",
                            *[f.msg for f in res.failures]]))
    return steps


def feed_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 004's semi-annual feed failover drill on the sandbox's registry: the primary
    feed declared down, the backup made primary (the old registry kept aside); a second run
    changes nothing."""

    state = sandbox.up()
    trading = state["trading"]
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    registry = Path(trading["registry"])
    before = yaml.safe_load(registry.read_text())
    primary, backup = before["primary_feed"], before["backup_feed"]

    def digest(f: Path) -> str:
        return hashlib.sha256(f.read_bytes()).hexdigest()
    old = digest(registry)
    t0 = time.monotonic()
    res = run_playbook("feed_failover.yml", inventory=inventory, envvars=env,
                       extravars=dict(feed_failover_primary=backup))
    secs = time.monotonic() - t0
    again = run_playbook("feed_failover.yml", inventory=inventory, envvars=env,
                         extravars=dict(feed_failover_primary=backup))
    after = yaml.safe_load(registry.read_text())
    # the copy aside: a new one, or an identical earlier one the module reused (never overwritten)
    kept = sorted(f.parent.name for f in Path(trading["feed_backup_dir"]).glob(f"registry-*/{registry.name}")
                  if digest(f) == old)
    steps = Steps(on_step)
    steps.append(DrillStep("feed failover", f"{primary} declared down",
                           f"{backup} primary, {primary} backup, the old registry kept aside; a 2nd run changes nothing",
                           res.ok and again.ok and again.changed == 0 and bool(kept)
                           and (after["primary_feed"], after["backup_feed"]) == (backup, primary), secs,
                           [f"registry: primary_feed={after.get('primary_feed')} backup_feed={after.get('backup_feed')}",
                            f"the registry as it was, kept aside in: {kept}", f"second run changed={again.changed}",
                            *[f.msg for f in res.failures + again.failures]]))
    return steps


class _TradingStandins:
    """The users' trading applications for the trading drill, as stand-ins from src/tradeops_dr/standins: an
    exchange (Binance USD-M futures' REST shape, on 127.0.0.1) and one strategy trading on it. Their
    addresses, key and commands go to <sandbox>/trading/exchange/exchange.json, which the local
    inventory's `strategies` group reads."""

    def __init__(self, sandbox: Sandbox, state: dict):

        self.standins = STANDINS
        self.dir = sandbox.state_dir / "trading" / "exchange"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.strategy_dir = sandbox.state_dir / "trading" / "strategy"
        self.strategy_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = "drill-" + secrets.token_hex(6)
        self.secret = secrets.token_hex(16)
        self.secret_file = self.dir / "api_secret"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.secret)
        self.port = free_port()
        self.health_port = free_port(avoid={self.port})
        self.base = f"http://127.0.0.1:{self.port}"
        self.exchange = subprocess.Popen([sys.executable, str(self.standins / "binance_futures.py"), "--port",
                                          str(self.port), "--api-key", self.api_key, "--max-seconds", "900"],
                                         env=dict(os.environ, STANDIN_API_SECRET=self.secret))
        self.release = sandbox.state_dir / "trading" / "release"
        self.heartbeat = self.strategy_dir / "heartbeat.json"
        self.log = self.strategy_dir / "strategy.log"
        self.pidfile = self.strategy_dir / "strategy.pid"
        redis = state["redis"]
        # the service's command runs where the sandbox runs (service control starts it there): that
        # machine's interpreter and stand-ins, which differ from this process's inside the image
        host = self.host = state.get("standins") or dict(python=sys.executable, dir=str(self.standins))
        self.args = ["--name", "sandbox-strategy", "--exchange-base", self.base, "--api-key", self.api_key,
                     "--secret-file", str(self.secret_file), "--heartbeat", str(self.heartbeat), "--state",
                     str(self.strategy_dir / "state.json"), "--order-every", "2", "--release-dir", str(self.release),
                     "--health-port", str(self.health_port), "--redis-port", str(redis["port"]),
                     "--redis-password-file", str(redis["password_file"]), "--max-seconds", "900"]
        self.command = [host["python"], str(Path(host["dir"]) / "strategy.py"), *self.args]
        (self.dir / "exchange.json").write_text(json.dumps(dict(
            exchange="binanceusdm", api_base=self.base, api_key=self.api_key, secret_file=str(self.secret_file),
            strategy_command=self.command, heartbeat=str(self.heartbeat), log=str(self.log), pidfile=str(self.pidfile),
            release=str(self.release), health_url=f"http://127.0.0.1:{self.health_port}/health"), indent=1))
        self._wait(lambda: self.control("state") is not None, "the stand-in exchange")

    def _wait(self, ok, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ok():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise errors.SandboxError(f"{what} did not come up in {timeout:.0f}s")

    def control(self, what: str, data: dict | None = None) -> dict:

        req = urllib.request.Request(f"{self.base}/_standin/{what}", method="POST" if data is not None else "GET",
                                     data=json.dumps(data).encode() if data is not None else None)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def release_repo(self) -> tuple[str, str, str]:
        """The deployed tree: a release that worked, then a bad one on top (each drill adds one).
        Returns (good commit, bad commit, good version)."""

        def git(*args):
            return subprocess.run(["git", "-C", str(self.release), *args], check=True, capture_output=True,
                                  text=True).stdout.strip()
        if not (self.release / ".git").exists():
            self.release.mkdir(parents=True, exist_ok=True)
            git("init", "-q", "-b", "main")
            git("config", "user.email", "drill@sandbox.invalid")
            git("config", "user.name", "tradeops-dr drill")
            (self.release / "VERSION").write_text("1.0.0\n")
            git("add", "VERSION")
            git("commit", "-q", "-m", "release 1.0.0")
        git("checkout", "-q", "main")
        good = git("rev-parse", "HEAD")
        version = (self.release / "VERSION").read_text().strip()
        n = len(git("rev-list", "HEAD").split())
        (self.release / "VERSION").write_text(f"1.0.{n}-bad\n")
        git("commit", "-q", "-am", f"release 1.0.{n}-bad")
        return good, git("rev-parse", "HEAD"), version

    def start_strategy(self, *extra: str):

        with open(self.log, "ab") as log:
            proc = subprocess.Popen([sys.executable, str(self.standins / "strategy.py"), *self.args, *extra], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def stop(self) -> None:
        pid = read_pid(self.pidfile)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.exchange.kill()
        self.exchange.wait()


def trading_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbooks 003 and 004 on the trading side, against stand-ins of the users' exchange and
    strategy (src/tradeops_dr/standins) and the sandbox's Redis and QuestDB: a strategy crash, an exchange
    disconnection, a position mismatch, a bad release rolled back, a risk breach."""

    state = sandbox.up()
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    steps = Steps(on_step)
    t = _TradingStandins(sandbox, state)

    def play(playbook, **extra) -> RunResult:
        return run_playbook(playbook, inventory=inventory, envvars=env, extravars=extra or None)

    def record(res, key):
        return next(iter((res.data.get(key) or {}).values()), {})

    try:
        good, bad, good_version = t.release_repo()
        t.control("positions", {"BTCUSDT": {"amt": "0.25", "entry": "60000"}})
        # 1. crash: the strategy dies with an exception; restarted, trades again, no order twice
        proc = t.start_strategy("--crash-after", "1.5")
        proc.wait(timeout=60)
        orders_before = len(t.control("state")["orders"])
        t0 = time.monotonic()
        res = play("strategy_crash.yml")
        secs = time.monotonic() - t0
        rec = record(res, "strategy_recovery")
        time.sleep(1.0)
        ex = t.control("state")
        ids = [o["clientOrderId"] for o in ex["orders"]]
        steps.append(DrillStep("strategy crash", "the strategy raised an exception and exited",
                               "restarted through service control, fresh heartbeat and prices, new orders, no client "
                               "order id twice", res.ok and rec.get("restarted") is True
                               and (rec.get("after") or {}).get("state") == "healthy"
                               and len(ex["orders"]) > orders_before and len(ids) == len(set(ids)), secs,
                               [f"error in the log: {(rec.get('before') or {}).get('errors', ['-'])[-1:]}",
                                f"orders on the exchange {orders_before} -> {len(ex['orders'])}",
                                *[f.msg for f in res.failures]]))

        # 2. exchange disconnection: the exchange drops the strategy's connections, its 3 reconnects fail
        t.control("fault", {"mode": "drop", "count": 4, "paths": ["/fapi/v1/ticker", "/fapi/v1/ping"]})
        deadline = time.monotonic() + 30
        while "giving up" not in t.log.read_text()[-4000:] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3.5)  # its last price is now older than the inventory's max_age
        old_pid = read_pid(t.pidfile)
        t0 = time.monotonic()
        res = play("exchange_disconnect.yml")
        secs = time.monotonic() - t0
        rec = record(res, "strategy_recovery")
        after = rec.get("after") or {}
        steps.append(DrillStep("exchange disconnect", "4 connections dropped: the strategy's 3 reconnects fail",
                               "exchange found up, the strategy restarted after its reconnects, fresh prices",
                               res.ok and (rec.get("before") or {}).get("exchange_status") == "ok"
                               and rec.get("restarted") is True and read_pid(t.pidfile) != old_pid
                               and after.get("state") == "healthy", secs,
                               [f"before: {(rec.get('before') or {}).get('evidence', '')}",
                                f"price age after: {after.get('price_age')}", *[f.msg for f in res.failures]]))

        # 3. position mismatch (QuestDB, where the sandbox has it): corrected by journaled rows only
        if state.get("questdb"):
            sql = Sandbox.questdb_server(state).sql
            sql("CREATE TABLE IF NOT EXISTS positions (instrument SYMBOL, quantity DOUBLE, avg_price DOUBLE, "
                "ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY WAL")
            sql("INSERT INTO positions VALUES ('BTCUSDT', 0.1, 59000, now())")

            def rows():
                return int(sql("SELECT count() FROM positions")["dataset"][0][0])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(
                    r[1] == 0.1 for r in sql("SELECT instrument, quantity FROM positions LATEST ON ts PARTITION BY "
                                             "instrument")["dataset"]):
                time.sleep(0.2)
            before_rows = rows()
            t0 = time.monotonic()
            dry = run_playbook("position_reconcile.yml", inventory=inventory, envvars=env, check=True)
            dry_rows = rows()
            res = play("position_reconcile.yml", position_reconcile_actor="drill",
                       position_reconcile_reason="drill: positions disagree with the exchange")
            secs = time.monotonic() - t0
            again = play("position_reconcile.yml", position_reconcile_actor="drill", position_reconcile_reason="drill")
            adj = record(res, "position_reconcile").get("adjustments") or []
            steps.append(DrillStep("position mismatch", "QuestDB says BTCUSDT 0.1, the exchange 0.25",
                                   "--check lists it and writes nothing; one journaled row corrects it, nothing "
                                   "deleted; a 2nd run finds nothing",
                                   dry.ok and dry_rows == before_rows and res.ok and again.ok
                                   and [(a["instrument"], a["after_quantity"]) for a in adj] == [("BTCUSDT", 0.25)]
                                   and not record(again, "position_reconcile").get("adjustments")
                                   and rows() >= before_rows + 1, secs,
                                   [f"adjustments: {adj}", f"rows {before_rows} -> {rows()}",
                                    *[f.msg for f in dry.failures + res.failures + again.failures]]))

        # 4. a bad release: kill switch, rollback, restart, health with the old version, orphans listed
        t0 = time.monotonic()
        res = play("release_rollback.yml", release_rollback_to=good, release_rollback_reason="drill: bad release",
                   release_rollback_actor="drill", release_rollback_incident="DRILL-ROLLBACK")
        secs = time.monotonic() - t0
        rec = record(res, "release_rollback")
        try:
            with urllib.request.urlopen(json.loads((t.dir / "exchange.json").read_text())["health_url"],
                                        timeout=3) as resp:
                health = json.loads(resp.read())
        except OSError as exc:
            health = {"error": str(exc)}
        with Sandbox.redis_server(state).client() as c:
            switch = c.hgetall("policy:kill_switch")
        steps.append(DrillStep("release rollback", f"a bad release deployed ({bad[:10]})",
                               "kill switch engaged, tree back at the good release (bad one tagged), strategy "
                               "restarted and healthy on the old version, switch left engaged",
                               res.ok and rec.get("current") == good and rec.get("previous") == bad
                               and health.get("version") == good_version and switch.get("enabled") == "true", secs,
                               [f"kept as {rec.get('kept_as')}", f"health: {health}",
                                f"orphaned orders listed: {len(rec.get('orphaned_orders') or [])}",
                                *[f.msg for f in res.failures]]))
        _reset_or_say(sandbox, inventory, steps)

        # 5. risk breach: positions and open orders on the exchange; engage, cancel, flatten, record
        t.control("positions", {"BTCUSDT": {"amt": "0.5", "entry": "62000"}, "ETHUSDT": {"amt": "-2", "entry": "2900"}})
        t.control("orders", {"symbol": "ETHUSDT", "count": 3, "price": "2000"})
        # the users' flatten command runs on the risk host (where the sandbox runs), with its interpreter
        flatten = [t.host["python"], str(Path(t.host["dir"]) / "flatten_exchange.py"), "--exchange-base", t.base,
                   "--api-key", t.api_key, "--secret-file", str(t.secret_file)]
        t0 = time.monotonic()
        res = play("risk_breach.yml", kill_switch_reason="drill: drawdown 16% > 15%", kill_switch_actor="drill",
                   kill_switch_incident="DRILL-RISK", kill_switch_flatten_command=flatten,
                   kill_switch_positions_pattern="", kill_switch_engines=[],
                   kill_switch_exchange=dict(exchange="binanceusdm", api_key=t.api_key, api_secret=t.secret,
                                             api_base=t.base, retries=1, request_timeout=5))
        secs = time.monotonic() - t0
        rec = record(res, "risk_breach")
        ex = t.control("state")
        flat = all(float(p["amt"]) == 0 for p in ex["positions"].values())
        with Sandbox.redis_server(state).client() as c:
            switch = c.hgetall("policy:kill_switch")
        steps.append(DrillStep("risk breach", "drawdown beyond the limit with 2 positions and 3 open orders",
                               "engaged, every order cancelled, flat on the exchange, P&L recorded per step, "
                               "switch left engaged",
                               res.ok and flat and ex["open_orders"] == [] and switch.get("enabled") == "true"
                               and [s["step"] for s in rec.get("steps", [])] == ["engaged", "flat"], secs,
                               [f"{s['step']}: exposure {s['exposure']} uPnL {s['unrealized_pnl']}"
                                for s in rec.get("steps", [])] + [f.msg for f in res.failures]))
        _reset_or_say(sandbox, inventory, steps)
    finally:
        t.stop()
    return steps


def _reset_or_say(sandbox: Sandbox, inventory: str, steps: "Steps") -> None:
    """The operator's reset after a step that leaves the switch engaged; a reset that fails (or
    leaves it engaged) is a failed step, not a silent leftover for the next drill."""
    reset = operator_resets_the_switch(sandbox, inventory)
    with Sandbox.redis_server(sandbox.load()).client() as c:
        enabled = c.hget("policy:kill_switch", "enabled")
    if not reset.ok or enabled == "true":
        steps.append(DrillStep("switch reset", "-", "the operator resets the kill switch", False, reset.duration,
                               [f"enabled after the reset: {enabled}", *[f.msg for f in reset.failures]]))


# Every drill of `tradeops-dr drill` (and bench/drill.py), in the order `all` runs them: (name on the
# command line, function, what it drills). The full drill goes last: it ends with the operator's reset.
DRILLS = [("redis", redis_drill, "Redis: crash, data loss, damaged AOF"),
          ("kill-switch", kill_switch_drill, "kill switch: the monthly drill with stand-in engines"),
          ("database", database_drill, "database: backup, damage restored, disk full, server down"),
          ("questdb", questdb_drill, "QuestDB: a suspended WAL table, a crash, a checkpoint restore"),
          ("model", model_drill, "model: a corrupted model file, a bad version"),
          ("config", config_drill, "config: a file cut short, a bad change"),
          ("fileset", fileset_drill, "file-state sets: the state folder damaged, restored from a set"),
          ("broker", broker_drill, "broker failover: IBKR down (rolled back from a dead target, then Paper)"),
          ("feed", feed_drill, "feed failover: the primary feed down, the backup made primary"),
          ("trading", trading_drill, "trading side: strategy crash, exchange disconnect, position mismatch, "
           "release rollback, risk breach"),
          ("detect", detect_drill, "from alert to recovery: a drawdown breach and a Redis crash answered by "
           "Prometheus, Alertmanager and ansible-rulebook, nobody running a command"),
          ("full", full_drill, "everything at once through full_recovery.yml, then a second run")]
