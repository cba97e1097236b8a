"""Incident classification by what happened, not by which playbook ran (issue 30, runbook 004 section 1):
a table of every playbook's records - as the roles export them - and the level each must give."""

from __future__ import annotations

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _severity

ENGAGED_SWITCH = {"kill_switch": {"risk-1": {"outcome": "engaged", "switch": {"enabled": True}}}}

CASES = [
    # playbook, what it exported (set_stats), its timeline, the floor (full_recovery's own), expected
    ("risk_breach.yml", {**ENGAGED_SWITCH, "risk_breach": {"risk-1": {"reason": "drawdown 16%"}}}, [], None, "P1"),
    ("release_rollback.yml", {**ENGAGED_SWITCH, "release_rollback": {"app-1": {"changed": True}}}, [], None, "P1"),
    ("kill_switch.yml (status of an engaged switch)",
     {"kill_switch": {"risk-1": {"outcome": "status", "switch": {"enabled": "true"}}}}, [], None, "P1"),
    ("kill_switch.yml (status of a released switch)",
     {"kill_switch": {"risk-1": {"outcome": "status", "switch": {"enabled": False}}}}, [], None, "none"),
    ("exchange_disconnect.yml (exchange down)",
     {"strategy_recovery": {"s-1": {"action": "disconnect", "exchange_down": True}}}, [], None, "P1"),
    ("exchange_disconnect.yml (the strategy's connection only)",
     {"strategy_recovery": {"s-1": {"action": "disconnect", "exchange_down": False}}}, [], None, "P2"),
    ("strategy_crash.yml", {"strategy_recovery": {"s-1": {"action": "crash", "before": {"state": "broken"}}}},
     [], None, "P2"),
    ("strategy_crash.yml (nothing wrong)",
     {"strategy_recovery": {"s-1": {"action": "crash", "before": {"state": "healthy"}}}}, [], None, "none"),
    ("position_reconcile.yml", {"position_reconcile": {"s-1": {"mismatches": [{"symbol": "BTC/USDT"}]}}},
     [], None, "P2"),
    ("position_reconcile.yml (in agreement)", {"position_reconcile": {"s-1": {"mismatches": []}}}, [], None, "none"),
    ("redis_failure.yml", {"redis_recovery": {"r": {"was_reachable": False, "restarted": True}}}, [], None, "P1"),
    ("redis_failure.yml (emptied, replayed)",
     {"redis_recovery": {"r": {"was_reachable": True, "restarted": False, "replayed_entries": 496}}}, [], None, "P1"),
    ("redis_failure.yml (healthy)",
     {"redis_recovery": {"r": {"was_reachable": True, "restarted": False, "replayed_entries": 0}}}, [], None, "none"),
    ("database_failure.yml", {"database_recovery": {"db": {"started": False, "restored": "True"}}}, [], None, "P1"),
    ("questdb_repair.yml", {"questdb_recovery": {"q": {"started": False, "resumed": ["trades"]}}}, [], None, "P2"),
    ("model_rollback.yml", {"model_recovery": {"m": {"file_was_ok": False, "reloaded": True}}}, [], None, "P2"),
    ("config_rollback.yml", {"config_recovery": {"c": {"invalid_before": ["a.toml"], "restored": ["a.toml"]}}},
     [], None, "P3"),
    ("broker_failover.yml", {}, [dict(role="tradeops.dr.broker_failover", changed=True, status="changed")], None, "P1"),
    ("feed_failover.yml", {}, [dict(role="feed_failover", changed=True, status="changed")], None, "P2"),
    ("feed_failover.yml (diagnosis only)", {}, [dict(role="feed_failover", changed=False, status="ok")], None, "none"),
    ("backup.yml", {"pg_backup": {"db": {"dump": "x"}}}, [dict(role="pg_backup", changed=True)], None, "none"),
    # full_recovery.yml: its own classification is a floor; what the roles exported can raise it, never lower it
    ("full_recovery.yml (questdb broken, switch engaged)", ENGAGED_SWITCH, [], "P2", "P1"),
    ("full_recovery.yml (redis)", {}, [], "P1", "P1"),
    ("full_recovery.yml (healthy)", {}, [], "none", "none"),
]


@pytest.mark.parametrize("playbook, stats, timeline, floor, expected", CASES, ids=[c[0] for c in CASES])
def test_the_level_follows_what_happened(playbook, stats, timeline, floor, expected):
    level, reasons = _severity.classify(_severity.signals(stats, timeline), floor=floor)
    assert level == expected, (playbook, _severity.signals(stats, timeline))
    if expected != "none" and floor is None:
        assert reasons, "a level says why"


def test_the_reasons_name_runbook_004s_words_most_severe_first():
    level, reasons = _severity.classify({"feed_degraded", "kill_switch_engaged", "config_damaged"})
    assert level == "P1"
    assert reasons == ["kill switch engaged", "data feed degraded", "a configuration damaged (minor: restored from git)"]


def test_an_ignored_failure_of_a_role_is_no_signal():
    timeline = [dict(role="broker_failover", changed=False, status="failed", ignored=True)]
    assert _severity.signals({}, timeline) == set()
