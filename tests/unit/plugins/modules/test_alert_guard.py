"""tradeops.dr.alert_guard in-process (issue 28): the guardrails of a response started by an alert -
protective responses always run, a recovery not in maintenance, not twice for one alert, not past its
hourly limit; two alerts arriving together are both counted; bad input and unsafe folders are refused."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _alerts
from ansible_collections.tradeops.dr.plugins.modules import alert_guard
from conftest import run_module


def alert(name="TradeopsDrRedisDown", component="redis", response="recover", fingerprint="a1b2c3",
          starts="2026-12-05T12:00:00.123456789Z", status="firing", **labels):
    return dict(status=status, fingerprint=fingerprint, startsAt=starts, endsAt="0001-01-01T00:00:00Z",
                labels=dict(alertname=name, component=component, response=response, severity="P1",
                            instance="127.0.0.1:9121", job="redis", **labels),
                annotations=dict(summary="Redis 127.0.0.1:9121 does not answer", runbook="004 line 9"))


@pytest.fixture
def state(tmp_path):
    d = tmp_path / "alerts"
    return d


def guard(capsys, state, a, **kw):
    return run_module(alert_guard, dict(alert=a, state_dir=str(state), **kw), capsys)


def test_a_recovery_is_admitted_once_and_recorded_with_the_detection_delay(capsys, state):
    res, failed = guard(capsys, state, alert())
    assert not failed and res["admitted"] and res["changed"], res
    assert res["trigger"]["name"] == "TradeopsDrRedisDown" and res["trigger"]["component"] == "redis"
    assert res["trigger"]["starts_at_iso"] == "2026-12-05T12:00:00Z"
    assert res["trigger"]["starts_at_sent"] == "2026-12-05T12:00:00.123456789Z"  # what a re-send of it carries
    firing_since = _alerts._epoch("2026-12-05T12:00:00.123456789Z")
    assert abs(res["trigger"]["detection_delay_seconds"] - (time.time() - firing_since)) < 5
    runs = [json.loads(line) for line in (state / "runs.jsonl").read_text().splitlines()]
    assert [r["fingerprint"] for r in runs] == ["a1b2c3"]
    assert oct((state / "runs.jsonl").stat().st_mode & 0o777) == "0o600"
    assert oct(state.stat().st_mode & 0o777) == "0o750"
    # Alertmanager sends a firing alert again at every repeat interval: the same occurrence runs once
    res, failed = guard(capsys, state, alert())
    assert not failed and not res["admitted"] and not res["changed"]
    assert "handled already" in res["reason"]


def test_past_the_hourly_limit_a_component_only_notifies(capsys, state):
    for n in range(2):
        res, _failed = guard(capsys, state, alert(fingerprint=f"f{n}"), max_runs_per_hour=2)
        assert res["admitted"], res
    res, _failed = guard(capsys, state, alert(fingerprint="f9"), max_runs_per_hour=2)
    assert not res["admitted"] and "2 automatic runs for redis in the last hour" in res["reason"]
    assert "escalate" in res["reason"]
    # another component has its own count
    other = alert(name="TradeopsDrPostgresDown", component="postgres", fingerprint="f8")
    res, _failed = guard(capsys, state, other, max_runs_per_hour=2)
    assert res["admitted"], res


def test_runs_older_than_an_hour_no_longer_count(state):
    _alerts.admit(str(state), alert(fingerprint="0a"), 1, now=time.time() - 3700)
    admitted, reason, _facts = _alerts.admit(str(state), alert(fingerprint="0b"), 1)
    assert admitted, reason


def test_the_maintenance_flag_stops_recoveries_but_never_protection(capsys, state):
    state.mkdir(mode=0o750)
    (state / "maintenance").write_text("DB migration by alice until 14:00\n")
    res, _failed = guard(capsys, state, alert())
    assert not res["admitted"] and "DB migration by alice until 14:00" in res["reason"]
    assert not (state / "runs.jsonl").exists() or not (state / "runs.jsonl").read_text()
    breach = alert(name="TradeopsDrDrawdownBreach", component="kill_switch", response="kill_switch", fingerprint="dd01")
    res, _failed = guard(capsys, state, breach)
    assert res["admitted"] and "capital first" in res["reason"], res


def test_protective_responses_do_not_use_up_the_recoveries_hourly_limit(capsys, state):
    for n in range(3):
        breach = alert(name="TradeopsDrDrawdownBreach", component="redis", response="kill_switch", fingerprint=f"d{n}")
        res, _failed = guard(capsys, state, breach, max_runs_per_hour=1)
        assert res["admitted"]
    res, _failed = guard(capsys, state, alert(fingerprint="e1"), max_runs_per_hour=1)
    assert res["admitted"], res


def test_an_alert_for_people_is_never_admitted(capsys, state):
    res, failed = guard(capsys, state, alert(name="TradeopsDrBackupTooOld", component="backups", response="notify"))
    assert not failed and not res["admitted"] and "people" in res["reason"]


def test_check_mode_decides_and_records_nothing(capsys, state):
    res, failed = guard(capsys, state, alert(), _ansible_check_mode=True)
    assert not failed and res["admitted"] and not res["changed"]
    assert not (state / "runs.jsonl").exists() or (state / "runs.jsonl").read_text() == ""
    res, _failed = guard(capsys, state, alert())
    assert res["admitted"], "a check run must not use up the alert"


def test_two_alerts_arriving_together_are_both_counted(state):
    results = []

    def one(n):
        results.append(_alerts.admit(str(state), alert(fingerprint=f"c{n}"), 1)[0])

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1, results  # the limit of 1 holds under concurrency
    assert len((state / "runs.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("bad, why", [
    (dict(alert(), status="resolved"), "is resolved, not firing"),
    (dict(alert(), labels=dict(alertname="X")), "no component, response, severity label"),
    (alert(response="reboot"), "response label is 'reboot'"),
    (dict(alert(), startsAt="yesterday"), "not an RFC 3339 time"),
    (dict(alert(), fingerprint=""), "no fingerprint"),
])
def test_what_is_not_a_firing_tradeops_alert_is_refused(capsys, state, bad, why):
    res, failed = guard(capsys, state, bad)
    assert failed and why in res["msg"] and "Nothing was run" in res["msg"], res
    assert not (state / "runs.jsonl").exists()


def test_a_folder_another_account_can_write_is_refused(capsys, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    res, failed = guard(capsys, shared, alert())
    assert failed and "can be written by another account" in res["msg"]
    assert not (shared / "runs.jsonl").exists()


def test_a_link_planted_as_the_history_is_not_followed(capsys, state, tmp_path):
    state.mkdir(mode=0o750)
    target = tmp_path / "elsewhere"
    target.write_text("")
    (state / "runs.jsonl").symlink_to(target)
    res, failed = guard(capsys, state, alert())
    assert failed and target.read_text() == ""


def test_rfc3339_offsets_are_read_as_utc():
    assert _alerts._epoch("2026-12-05T13:00:00+01:00") == _alerts._epoch("2026-12-05T12:00:00Z")
    assert _alerts._epoch("2026-12-05T12:00:00.5Z") == _alerts._epoch("2026-12-05T12:00:00Z") + 0.5
