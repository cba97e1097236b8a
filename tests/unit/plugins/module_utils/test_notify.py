"""module_utils/_notify (issue 30): the audiences of runbook 004 section 6 from apprise URLs with tags, what each
audience is told, and runbook 002's escalation ladder."""

from __future__ import annotations

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _notify

EVENT = dict(incident="INC-7", classification="P1", playbook="full_recovery.yml",
             broken=[dict(component="redis", host="cache-1", evidence="connection refused on 127.0.0.1:6390")],
             switch=dict(outcome="engaged", message="held by the flag file while Redis was down"))


def test_targets_name_their_audiences_and_an_untagged_url_serves_ops():
    got = _notify.parse_targets("ops=json://h/ops risk,stakeholders=mailto://u:p@h json://a,json://b level2=json://h/l2")
    assert got == [(("ops",), "json://h/ops"), (("risk", "stakeholders"), "mailto://u:p@h"), (("ops",), "json://a"),
                   (("ops",), "json://b"), (("level2",), "json://h/l2")]
    assert _notify.parse_targets("") == []
    with pytest.raises(_notify.NotifyError) as bad:
        _notify.parse_targets("json://ok not-a-url-with-token-s3cr3t")
    assert "entry 2" in str(bad.value) and "s3cr3t" not in str(bad.value)


def test_each_audience_is_told_what_it_needs():
    _title, ops = _notify.compose("ops", dict(EVENT, stage="opened"))
    assert "cache-1" in ops and "connection refused" in ops and "full_recovery.yml" in ops
    title, risk = _notify.compose("risk", dict(EVENT, stage="opened", exposure="BTCUSDT 0.5"))
    assert title == "[P1] incident INC-7: opened"
    assert "Kill switch: engaged" in risk and "redis on cache-1" in risk and "Exposure: BTCUSDT 0.5" in risk
    _title, summary = _notify.compose("stakeholders", dict(EVENT, stage="opened"))
    assert "cache-1" not in summary and "refused" not in summary and "redis" not in summary
    assert "trading is halted" in summary
    _title, end = _notify.compose("stakeholders", dict(EVENT, stage="end", status="recovered", recovery_seconds=42,
                                                       halted=True))
    assert end == "The incident is recovered after 42 s. Trading stays halted until the operator resets the kill switch."
    _title, ask = _notify.compose("ops", dict(EVENT, stage="approval needed", code="1f3a-9c0d-77e2",
                                              steps=["db-1: restore of trading into a new database and swap"]))
    assert "1f3a-9c0d-77e2" in ask and "db-1: restore of trading" in ask
    _title, up = _notify.compose("ops", dict(EVENT, stage="escalated", level="level2", after_seconds=150))
    assert "Escalated to level2: not resolved 150 s after it opened" in up


def test_the_ladder_climbs_a_level_each_time():
    assert _notify.schedule(300) == [(150.0, "level2"), (300.0, "level3"), (450.0, "level4")]  # half the RTO each
    assert _notify.schedule(300, after=0.5, seconds=2) == [(2.0, "level2"), (4.0, "level3"), (6.0, "level4")]
    assert _notify.schedule(None) == [] and _notify.schedule(300, after=0) == []
