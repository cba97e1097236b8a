"""From alert to recovery with nobody running a command (issue 28): the sandbox, the real
prometheus-redis-exporter and the collection's exporter scraped by a real Prometheus evaluating
extensions/monitoring's rules, a real Alertmanager posting to a real ansible-rulebook running
extensions/eda/rulebooks/tradeops_dr_alerts.yml against inventories/local. Faults are injected as
they happen: a drawdown written where the risk engine writes it, `kill -9` of Redis, PostgreSQL
stopped (scraped by the real prometheus-postgres-exporter), a QuestDB WAL table suspended. The system
must be protected or healthy again, the incident record naming the alert; repeats of an alert
(Alertmanager re-sends a firing alert) start no second run. PostgreSQL back without a table needs a
destructive restore: the run stops at its plan, nothing is restored, and people are told the code that
approves it."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import _Catch, catching, need
from tradeops_dr import faults, monitoring, recover, run_playbook
from tradeops_dr.drill import operator_resets_the_switch
from tradeops_dr.sandbox import Sandbox

pytestmark = pytest.mark.integration


class _People(_Catch):
    """Where the recoveries' notifications go (apprise's json:// POSTs), kept for the whole file."""

    got: list = []


@pytest.fixture(scope="module")
def people():
    with catching(_People) as caught:
        yield caught


@pytest.fixture(scope="module")
def stack(people):
    need(monitoring.missing())
    state = Path(tempfile.mkdtemp(prefix="tradeops-alerts-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    sb = Sandbox(state)
    sb.up()
    mon = monitoring.MonitoringStack(state / "monitoring", state, interval=1.0,
                                     notify_urls=f"json://127.0.0.1:{people[0]}/notify")
    try:
        mon.start()
        yield sb, mon
    finally:
        mon.stop()
        sb.down()
        shutil.rmtree(state, ignore_errors=True)


def _redis(sb):
    return Sandbox.redis_server(sb.load()).client()


def _records_of(mon, alertname):
    return [r for r in mon.records() if (r.get("trigger") or {}).get("name") == alertname]


def _runs(mon):
    path = mon.guard_history
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _repeat(mon, record):
    """The alert of a record, posted again as Alertmanager re-sends a firing alert (its startsAt as it sent it)."""
    t = record["trigger"]
    alert = dict(status="firing", labels=t["labels"], annotations=dict(summary=t["summary"], runbook=t["runbook"]),
                 startsAt=t["starts_at_sent"], endsAt="0001-01-01T00:00:00Z", fingerprint=t["fingerprint"])
    assert mon.post_alerts([alert]) == 200


def _one_run_for(mon, record, alertname):
    """The alert re-sent twice as Alertmanager does: no second automatic run, no second record."""
    runs, records = [r["name"] for r in _runs(mon)].count(alertname), len(_records_of(mon, alertname))
    _repeat(mon, record)
    _repeat(mon, record)
    time.sleep(4)
    assert [r["name"] for r in _runs(mon)].count(alertname) == runs
    assert len(_records_of(mon, alertname)) == records


def test_a_drawdown_breach_engages_the_switch_with_nobody_running_a_command(stack):
    sb, mon = stack
    with _redis(sb) as r:
        assert r.hget("policy:kill_switch", "enabled") != "true"
    got = monitoring.drawdown_breach(sb, mon, timeout=60)
    switch, rec = got["switch"], got["record"]
    print(f"kill switch engaged {got['engaged']:.1f} s after the drawdown was written (1 s scrape and evaluation)")
    assert switch["actor"] == "ansible-rulebook" and "TradeopsDrDrawdownBreach" in switch["reason"], switch
    assert switch["incident"].startswith("ALERT-"), switch
    assert rec["trigger"]["admitted"] and rec["trigger"]["response"] == "kill_switch"
    assert rec["trigger"]["detection_delay_seconds"] >= 0 and rec["id"] == switch["incident"]
    markdown = next(mon.incidents.rglob(rec["id"] + "*.json")).with_suffix(".md").read_text()
    assert "| Trigger | alert TradeopsDrDrawdownBreach (P1, kill_switch) firing since" in markdown
    # Alertmanager sends the firing alert again: no second run
    _one_run_for(mon, rec, "TradeopsDrDrawdownBreach")
    assert len(_records_of(mon, "TradeopsDrDrawdownBreach")) == 1
    assert operator_resets_the_switch(sb).ok


def test_a_crashed_redis_is_recovered_with_nobody_running_a_command(stack):
    sb, mon = stack
    before = faults.fingerprint(sb)
    got = monitoring.redis_crash(sb, mon, timeout=180)
    rec = got["record"]
    print(f"Redis recovered {got['healthy']:.1f} s after kill -9 (alert firing after {got['firing']:.1f} s, "
          f"recovery admitted after {got['started']:.1f} s; record {rec['id']}: {rec['status']})")
    assert rec["status"] == "recovered", (rec["status"], rec["reason"])
    assert got["answering"]
    assert rec["playbook"] == "alert_response.yml" and rec["trigger"]["component"] == "redis"
    assert rec["components"]["redis"]["sandbox-redis"]["after"] == "healthy", rec["components"]
    after = faults.fingerprint(sb)
    assert after["redis_data"] == before["redis_data"], "every key and stream back as it was"
    _one_run_for(mon, rec, "TradeopsDrRedisDown")  # the flapping alert: re-sent twice, still one run
    assert operator_resets_the_switch(sb).ok  # the recovery engaged it first (Redis is what trading depends on)


def test_a_stopped_postgres_is_started_with_nobody_running_a_command(stack):
    sb, mon = stack
    state = sb.load()
    before = faults.fingerprint(sb)
    got = monitoring.recovery_scenario(mon, "TradeopsDrPostgresDown", lambda: Sandbox.postgres_cluster(state).stop(),
                                       timeout=180)
    rec = got["record"]
    print(f"PostgreSQL started {got['healthy']:.1f} s after it stopped (alert firing after {got['firing']:.1f} s)")
    assert rec["status"] == "recovered", (rec["status"], rec["reason"])
    assert rec["trigger"]["component"] == "postgres" and rec["trigger"]["admitted"]
    assert rec["components"]["postgres"]["sandbox-postgres"]["after"] == "healthy", rec["components"]
    assert Sandbox.postgres_cluster(state).ready()[0]
    after = faults.fingerprint(sb)
    assert after["pg_tables"] == before["pg_tables"], "every row as it was: started, nothing restored"
    assert rec["planned"] == [], rec["planned"]  # started and healthy: no restore waits for anyone
    _one_run_for(mon, rec, "TradeopsDrPostgresDown")
    assert operator_resets_the_switch(sb).ok  # the probe engaged it: trading depends on the database


def test_a_suspended_wal_table_is_resumed_with_nobody_running_a_command(stack):
    sb, mon = stack
    state = sb.load()
    qdb = Sandbox.questdb_server(state)
    need(None if qdb else "the sandbox runs no QuestDB (not installed here)")
    rows = qdb.sql("select count() from trades")["dataset"][0][0]
    got = monitoring.recovery_scenario(mon, "TradeopsDrQuestDBWalSuspended", lambda: faults.suspend_wal(sb, state),
                                       timeout=180)
    rec = got["record"]
    print(f"WAL table resumed {got['healthy']:.1f} s after it was suspended (firing after {got['firing']:.1f} s)")
    assert rec["status"] == "recovered", (rec["status"], rec["reason"])
    assert rec["trigger"]["component"] == "questdb"
    assert rec["components"]["questdb"]["sandbox-questdb"]["after"] == "healthy", rec["components"]
    wal = qdb.sql("select suspended, writerTxn, sequencerTxn from wal_tables() where name = 'trades'")["dataset"][0]
    assert wal[0] is False and wal[1] == wal[2], wal
    assert qdb.sql("select count() from trades")["dataset"][0][0] == rows + 15, "the three waiting inserts applied"
    _one_run_for(mon, rec, "TradeopsDrQuestDBWalSuspended")


def test_an_alert_whose_repair_is_destructive_stops_at_its_plan_and_people_get_its_code(stack, people):
    """PostgreSQL went down and came back without a table (runbook 001's data loss): starting it is done
    by itself, the restore it then needs is destructive. The alert's run starts the server, plans the
    restore and stops there - every table and database as the fault left them - and tells people the
    code; that code, given with the incident, runs exactly that plan."""
    sb, mon = stack
    state = sb.load()
    backed_up = run_playbook("backup.yml", inventory="local", envvars={"TRADEOPS_DR_SANDBOX": str(sb.state_dir)})
    assert backed_up.ok, backed_up.failures  # what the restore will need
    faulted = {}

    def lose_a_table_and_stop():
        faults.drop_table(sb, state)
        faulted.update(faults.fingerprint(sb))
        Sandbox.postgres_cluster(state).stop()

    got = monitoring.recovery_scenario(mon, "TradeopsDrPostgresDown", lose_a_table_and_stop, timeout=180)
    rec = got["record"]
    print(f"planned {got['healthy']:.1f} s after the server stopped: {rec['status']}")
    assert rec["status"] == "approval needed", (rec["status"], rec["reason"])
    assert rec["trigger"]["name"] == "TradeopsDrPostgresDown" and rec["trigger"]["admitted"]
    assert any(p.startswith("Restore into a new database") for p in rec["planned"]), rec["planned"]
    assert not any("Restore" in a for a in rec["actions"]), rec["actions"]
    # people are told what waits and the code that approves it
    told = [body["message"] for path, _h, body in people[1] if path == "/notify" and rec["id"] in body["title"]
            and "approval needed" in body["title"]]
    codes = {c for m in told for c in re.findall(r"code ([0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4})", m)}
    assert len(codes) == 1 and any("restore of trading" in m for m in told), told
    (code,) = codes
    after = faults.fingerprint(sb)
    assert Sandbox.postgres_cluster(state).ready()[0], "starting the server is not destructive: it was started"
    assert (after["pg_tables"], after["pg_databases"]) == (faulted["pg_tables"], faulted["pg_databases"]), \
        "nothing restored, no database made or swapped"
    _one_run_for(mon, rec, "TradeopsDrPostgresDown")
    # a person approves with the code they were told, for the incident of the alert's run
    res = recover("postgres", inventory="local", incident=rec["id"], approve=code,
                  envvars={"TRADEOPS_DR_SANDBOX": str(sb.state_dir)})
    assert res.status == "recovered", (res.status, res.failures)
    assert "public.positions" in faults.fingerprint(sb)["pg_tables"]
    assert operator_resets_the_switch(sb).ok
