"""playbooks/alert_response.yml without the monitoring stack (issue 28): what its guard play refuses
before any response runs - a host pattern an alert's label could widen, an alert for people, a
recovery during maintenance - each recorded with the reason, nothing run. (The stack end to end:
test_alerts.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def alert(**labels):
    base = dict(alertname="TradeopsDrStrategyHeartbeatStale", component="strategy", response="recover",
                severity="P2", strategy="momentum-1")
    return dict(status="firing", fingerprint="c0ffee01", startsAt="2026-12-05T12:00:00Z", endsAt="0001-01-01T00:00:00Z",
                labels=dict(base, **labels), annotations=dict(summary="stale", runbook="003 line 9"))


def respond(tmp_path, extra: dict, **env):
    inv = tmp_path / "hosts.yml"
    # a strategy host that nothing may reach: a response that got past the guard would fail on it, loudly
    inv.write_text(yaml.safe_dump({"all": {"vars": {"ansible_python_interpreter": sys.executable},
                                           "children": {"strategies": {"hosts": {"momentum-1": {
                                               "ansible_connection": "local"}}}}}}))
    extravars = tmp_path / "extra.json"
    extravars.write_text(json.dumps(extra))
    incidents = tmp_path / "incidents"
    res = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/alert_response.yml", "-i", str(inv),
                          "-e", f"@{extravars}", "-e", f"dr_alert_state_dir={tmp_path / 'alerts'}"], cwd=ROOT,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                                  TRADEOPS_DR_INCIDENTS_DIR=str(incidents), **env),
                         capture_output=True, text=True, timeout=180, check=False)
    records = [json.loads(p.read_text()) for p in sorted(incidents.glob("*.json"))]
    return res, records


def test_a_label_that_would_widen_the_hosts_is_refused(tmp_path):
    res, _records = respond(tmp_path, dict(dr_alert=alert(), dr_alert_playbook="strategy_crash.yml",
                                           tradeops_strategy_hosts="all"))
    assert res.returncode != 0 and "runs on one strategy host" in res.stdout and "Nothing was done" in res.stdout
    assert "PLAY [Strategy crash]" not in res.stdout
    assert not (tmp_path / "alerts" / "runs.jsonl").exists()  # refused before the guard counted anything


def test_an_alert_for_people_runs_nothing_and_says_so_in_the_record(tmp_path):
    res, records = respond(tmp_path, dict(dr_alert=alert(alertname="TradeopsDrPriceStale", response="notify"),
                                          dr_alert_playbook="strategy_crash.yml",
                                          tradeops_strategy_hosts="momentum-1:&strategies"))
    assert res.returncode != 0 and "Not admitted: the alert TradeopsDrPriceStale asks for people" in res.stdout
    assert "PLAY [Strategy crash]" not in res.stdout
    (rec,) = records
    assert rec["status"] == "not admitted" and rec["trigger"]["name"] == "TradeopsDrPriceStale"
    assert rec["trigger"]["admitted"] is False and rec["classification"] == "none"


def test_maintenance_stops_a_recovery_the_record_names_the_flag_and_people_are_told(tmp_path, catcher):
    pytest.importorskip("apprise")
    port, got = catcher
    flag = tmp_path / "alerts" / "maintenance"
    flag.parent.mkdir(mode=0o750)
    flag.write_text("exchange migration by bob\n")
    res, records = respond(tmp_path, dict(dr_alert=alert(), dr_alert_playbook="strategy_crash.yml",
                                          tradeops_strategy_hosts="momentum-1:&strategies"),
                           TRADEOPS_DR_NOTIFY_URLS=f"json://127.0.0.1:{port}/notify")
    assert res.returncode != 0 and "exchange migration by bob" in res.stdout
    assert "PLAY [Strategy crash]" not in res.stdout
    assert records[0]["status"] == "not admitted" and "maintenance flag" in records[0]["trigger"]["reason"]
    # nothing ran by itself: people must know (the default notify_on includes "not admitted")
    (note,) = [body for path, _headers, body in got if path == "/notify"]
    assert "not admitted" in note["title"] and "exchange migration by bob" in note["message"]
