"""recovery_summary: the status of a full_recovery.yml run from the hosts' diagnoses and outcomes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.tradeops.dr.plugins.filter.recovery import recovery_summary, table_row

# the real catalog: its RTOs, priorities and stages are what the summary reads
CATALOG = yaml.safe_load((Path(__file__).resolve().parents[4] / "playbooks" / "full_recovery" / "components.yml")
                         .read_text())["dr_catalog"]


def row(component, state, evidence="e"):
    return dict(component=component, state=state, evidence=evidence, destructive=[])


def summary(hostvars, stop="", check=False, recovering=True):
    return recovery_summary(sorted(hostvars), hostvars, CATALOG, stop, check, recovering, time.time() - 1)


def test_recovered_healthy_and_what_a_kill_switch_state_means():
    hv = {"r1": dict(dr_before=[row("redis", "broken")], dr_after=[row("redis", "healthy")],
                     dr_outcomes=dict(redis=dict(outcome="recovered", seconds=3.5))),
          "k1": dict(dr_before=[row("kill_switch", "unreadable")], dr_after=[row("kill_switch", "engaged")],
                     dr_outcomes=dict(kill_switch=dict(outcome="engaged")))}
    s = summary(hv)
    assert s["status"] == "recovered" and s["classification"] == "P1"
    assert s["components"]["redis"]["r1"]["rto_seconds"] == 300 and s["components"]["redis"]["r1"]["seconds"] == 3.5
    assert "kill switch is ENGAGED (k1)" in s["reason"]
    assert s["report"][-1].startswith("RECOVERED in ")
    healthy = summary({"q": dict(dr_before=[row("questdb", "healthy")], dr_after=[row("questdb", "healthy")])})
    assert healthy["status"] == "healthy" and healthy["classification"] == "none"
    assert healthy["components"]["questdb"]["q"]["outcome"] == "skipped: healthy"


@pytest.mark.parametrize("outcome,after,expected", [
    ("failed", "broken", "failed"),
    ("approval needed", "broken", "approval needed"),
    ("recovered", "broken", "failed"),  # said recovered, but the probes after say otherwise: the probes win
    ("recovered", None, "failed"),  # no diagnosis after recovery (the host failed): not recovered
])
def test_a_component_that_does_not_hold_fails_the_run(outcome, after, expected):
    hv = {"p": dict(dr_before=[row("postgres", "broken")], dr_after=[row("postgres", after)] if after else [],
                    dr_outcomes=dict(postgres=dict(outcome=outcome, message="why")))}
    s = summary(hv)
    assert s["status"] == expected and "postgres on p" in s["reason"]


def test_stops_check_mode_and_the_diagnose_tag():
    hv = {"q": dict(dr_before=[row("questdb", "broken")])}
    assert summary(hv, stop="REFUSED: held")["status"] == "refused"
    assert summary(hv, stop="STOPPED before any change")["status"] == "stopped"
    planned = summary(hv, check=True)
    assert planned["status"] == "planned" and planned["classification"] == "P2"
    assert summary(hv, recovering=False)["status"] == "broken"
    assert summary({"q": dict(dr_before=[row("questdb", "healthy")])}, recovering=False)["status"] == "diagnosed"


def test_table_row():
    assert table_row(row("redis", "broken", "DOWN")).split() == ["redis", "?", "BROKEN", "DOWN"]
    assert "healthy" in table_row(dict(component="redis", host="h", state="healthy", evidence="ok"))


def test_the_approval_code_names_incident_steps_and_hosts():
    from ansible_collections.tradeops.dr.plugins.filter.recovery import approval_code, destructive_plan

    rows = [dict(component="postgres", host="db-1", state="broken", destructive=["restore of trading"]),
            dict(component="redis", host="cache-1", state="healthy", destructive=["AOF truncation"]),
            dict(component="model", host="s-1", state="broken", destructive=[])]
    assert destructive_plan(rows) == ["db-1: restore of trading"]
    code = approval_code("INC-1", rows)
    assert re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", code)
    assert approval_code("INC-1", list(reversed(rows))) == code  # the order of the probes does not matter
    assert approval_code("INC-2", rows) != code  # another incident
    assert approval_code("INC-1", [dict(rows[0], host="db-2")] + rows[1:]) != code  # another host
    assert approval_code("INC-1", rows + [dict(rows[1], state="broken")]) != code  # one more step
    with pytest.raises(AnsibleFilterError, match="needs the incident id"):
        approval_code("", rows)


def test_the_incident_is_named_as_soon_as_the_diagnosis_is_known():
    """Issue 30: incident_opened gives the callback what to tell at once - the worst priority among what broke
    (runbook 004), the shortest RTO (the escalation ladder counts from it), and the broken rows; the kill switch,
    control state, never counts."""
    from ansible_collections.tradeops.dr.plugins.filter.recovery import incident_opened

    rows = [dict(row("model", "broken", "md5 differs"), host="m1"), dict(row("redis", "broken", "refused"), host="r1"),
            dict(row("kill_switch", "unreadable"), host="k1"), dict(row("postgres", "healthy"), host="p1")]
    opened = incident_opened(rows, CATALOG)
    assert opened["classification"] == "P1" and opened["rto_seconds"] == 300  # Redis: P1, 300 s (runbook 000)
    assert opened["broken"] == [dict(component="model", host="m1", evidence="md5 differs"),
                                dict(component="redis", host="r1", evidence="refused")]
    assert incident_opened([dict(row("model", "broken"), host="m1")], CATALOG)["classification"] == "P2"
    assert incident_opened([dict(row("kill_switch", "engaged"), host="k1"), dict(row("redis", "healthy"), host="r")],
                           CATALOG) == {}
    with pytest.raises(AnsibleFilterError, match="mongodb"):
        incident_opened([dict(row("mongodb", "broken"), host="x")], CATALOG)


def test_lock_groups_one_per_machine_and_lock_folder():
    from ansible_collections.tradeops.dr.plugins.filter.recovery import lock_groups
    hv = {"redis": dict(ansible_connection="local", dr_lock_dir="/srv/locks"),
          "pg": dict(ansible_connection="local", ansible_host="10.0.0.9", dr_lock_dir="/srv/locks"),
          "other-dir": dict(ansible_connection="local", dr_lock_dir="/tmp/locks"),
          "db1": dict(ansible_host="10.0.0.5"), "db1-replica-role": dict(ansible_host="10.0.0.5"),
          "db1-as-admin": dict(ansible_host="10.0.0.5", ansible_user="admin"),
          "db2": dict(ansible_host="10.0.0.6"), "named": {},
          "db1-as-root": dict(ansible_host="10.0.0.5", ansible_become=True),
          "local-as-postgres": dict(ansible_connection="local", dr_lock_dir="/srv/locks", ansible_become=True,
                                    ansible_become_user="postgres")}
    order = ["redis", "db1", "pg", "db2", "db1-replica-role", "other-dir", "named", "db1-as-admin", "db1-as-root",
             "local-as-postgres"]
    assert lock_groups(order, hv) == [
        dict(host="redis", names=["redis", "pg"]),  # a local connection is this control node, whatever its address
        dict(host="db1", names=["db1", "db1-replica-role"]),
        dict(host="db2", names=["db2"]),
        dict(host="other-dir", names=["other-dir"]),
        dict(host="named", names=["named"]),
        dict(host="db1-as-admin", names=["db1-as-admin"]),
        dict(host="db1-as-root", names=["db1-as-root"]),  # another account writes its lock
        dict(host="local-as-postgres", names=["local-as-postgres"])]
    with pytest.raises(AnsibleFilterError, match="list of the run's hosts"):
        lock_groups("redis", hv)
