"""From alert to recovery with nobody running a command (issue 28): the sandbox, the real
prometheus-redis-exporter and the collection's exporter scraped by a real Prometheus evaluating
extensions/monitoring's rules, a real Alertmanager posting to a real ansible-rulebook running
extensions/eda/rulebooks/tradeops_dr_alerts.yml against inventories/local. Faults are injected as
they happen: a drawdown written where the risk engine writes it, `kill -9` of Redis. The system
must be protected or healthy again, the incident record naming the alert; repeats of an alert
(Alertmanager re-sends a firing alert) start no second run."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import need
from tradeops_dr import faults, monitoring
from tradeops_dr.drill import operator_resets_the_switch
from tradeops_dr.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack():
    need(monitoring.missing())
    state = Path(tempfile.mkdtemp(prefix="tradeops-alerts-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    sb = Sandbox(state)
    sb.up()
    mon = monitoring.MonitoringStack(state / "monitoring", state, interval=1.0)
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
    """The alert of a record, posted again as Alertmanager re-sends a firing alert."""
    t = record["trigger"]
    alert = dict(status="firing", labels=t["labels"], annotations=dict(summary=t["summary"], runbook=t["runbook"]),
                 startsAt=t["starts_at_iso"], endsAt="0001-01-01T00:00:00Z", fingerprint=t["fingerprint"])
    assert mon.post_alerts([alert]) == 200


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
    _repeat(mon, rec)
    _repeat(mon, rec)
    time.sleep(4)
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
    assert [r["name"] for r in _runs(mon)].count("TradeopsDrRedisDown") == 1
    # the flapping alert: re-sent twice, still one run
    _repeat(mon, rec)
    _repeat(mon, rec)
    time.sleep(4)
    assert [r["name"] for r in _runs(mon)].count("TradeopsDrRedisDown") == 1
    assert len(_records_of(mon, "TradeopsDrRedisDown")) == 1
    assert operator_resets_the_switch(sb).ok  # the recovery engaged it first (Redis is what trading depends on)
