"""The front door's protective probe (tradeops_dr.capital, issue 27): where to probe resolved through
Ansible and cached while nothing it was resolved from changed, ports probed at once with a deadline,
and the local flag that keeps its first engagement."""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

from conftest import in_child
from tradeops_dr import capital, fastpath


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _inventory(tmp_path, redis_port: int, pg_port: int):
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (tmp_path / "ports.json").write_text(json.dumps(dict(redis=redis_port)))
    (inv / "hosts.yml").write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n  children:\n"
        "    kill_switch:\n      hosts:\n        risk-1:\n"
        "    redis_servers:\n      hosts:\n        cache-1:\n"
        "    postgres_servers:\n      hosts:\n        db-1:\n")
    # the Redis port comes from a file a template looks up, as inventories/local reads sandbox.json
    (inv / "group_vars" / "redis_servers.yml").write_text(
        "redis_restart_host: 127.0.0.1\n"
        f"redis_restart_port: \"{{{{ (lookup('ansible.builtin.file', '{tmp_path}/ports.json') | from_json).redis }}}}\"\n")
    (inv / "group_vars" / "postgres_servers.yml").write_text(
        f"timescale_restore_login_host: 127.0.0.1\ntimescale_restore_login_port: {pg_port}\n")
    return inv


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_targets_are_resolved_by_ansible_then_cached_until_a_file_they_came_from_changes(tmp_path):
    redis_srv, pg_srv = _listener(), _listener()
    try:
        inv = _inventory(tmp_path, redis_srv.getsockname()[1], pg_srv.getsockname()[1])
        first = in_child("capital", "probe_targets", str(inv), None, ["redis", "postgres"])
        assert first["via"] == "ansible" and first["kill_switch_hosts"] == ["risk-1"]
        assert {(t["component"], t["host"], t["port"]) for t in first["targets"]} == {
            ("redis", "cache-1", redis_srv.getsockname()[1]), ("postgres", "db-1", pg_srv.getsockname()[1])}
        again = in_child("capital", "probe_targets", str(inv), None, ["redis", "postgres"])
        assert again["via"] == "cache" and again["targets"] == first["targets"]
        assert capital.probe(again["targets"], 1.0) == []
        # the file a template read changed (a sandbox started again on other ports): resolved afresh
        time.sleep(0.01)
        (tmp_path / "ports.json").write_text(json.dumps(dict(redis=1)))
        fresh = in_child("capital", "probe_targets", str(inv), None, ["redis", "postgres"])
        assert fresh["via"] == "ansible"
        assert [t["port"] for t in fresh["targets"] if t["component"] == "redis"] == [1]
    finally:
        redis_srv.close()
        pg_srv.close()


def test_a_port_that_does_not_answer_is_down_and_the_probes_run_at_once():
    up = _listener()
    closed = _listener()
    port = closed.getsockname()[1]
    closed.close()
    targets = [dict(component="redis", host="a", address="127.0.0.1", port=up.getsockname()[1]),
               dict(component="postgres", host="b", address="127.0.0.1", port=port)]
    try:
        t0 = time.monotonic()
        down = capital.probe(targets, 2.0)
        assert [t["host"] for t in down] == ["b"]
        assert time.monotonic() - t0 < 2.0  # a refused port is an answer at once, not a time-out
    finally:
        up.close()


def test_the_front_door_engages_the_switch_when_a_data_store_does_not_answer(tmp_path):
    pg_srv = _listener()
    gone = _listener()
    redis_port = gone.getsockname()[1]
    gone.close()  # Redis down: the switch goes to the local flag file
    try:
        inv = _inventory(tmp_path, redis_port, pg_srv.getsockname()[1])
        flag = tmp_path / "kill_switch.flag"
        (inv / "group_vars" / "kill_switch.yml").write_text(
            f"kill_switch_redis_host: 127.0.0.1\nkill_switch_redis_port: {redis_port}\nkill_switch_flag_file: {flag}\n")
        out = in_child("capital", "protect", str(inv), None, {}, "INC-FRONT")
        assert out["down"] == ["redis on cache-1"] and out["probed"] == ["redis on cache-1", "postgres on db-1"]
        assert out["engaged"]["outcome"] == "flag-file" and out["engaged"]["flag_file"] == str(flag)
        written = json.loads(flag.read_text())
        assert written["enabled"] is True and written["incident"] == "INC-FRONT"
        assert "redis on cache-1 not answering" in written["reason"]
        # not part of the run, nothing probed nor engaged; everything answering, nothing engaged
        assert in_child("capital", "protect", str(inv), None, {"dr_components": "questdb,model"}, "INC-X") is None
        flag.unlink()
        out = in_child("capital", "protect", str(inv), None, {"dr_components": ["kill_switch", "postgres"]}, "INC-Y")
        assert out["down"] == [] and out["engaged"] is None and not flag.exists()
        # unless asked
        asked = {"dr_components": "kill_switch,postgres", "dr_engage_kill_switch": "true"}
        out = in_child("capital", "protect", str(inv), None, asked, "INC-Z")
        assert out["engaged"]["outcome"] == "flag-file" and json.loads(flag.read_text())["incident"] == "INC-Z"
    finally:
        pg_srv.close()


def test_an_inventory_it_cannot_read_is_said_not_raised(tmp_path):
    out = in_child("capital", "protect", str(tmp_path / "missing"), None, {}, "INC-1")
    assert out["engaged"] is None and out["skipped"]


def test_a_flag_already_engaged_keeps_its_first_engagement(tmp_path):
    """Issue 31: the first engagement (incident, reason, actor, time) survives a second engagement."""
    ks = fastpath.module_utils("_killswitch")
    flag = tmp_path / "kill_switch.flag"
    ks.write_flag_file(str(flag), "drawdown 15%", "risk-engine", "INC-1", "reducing", "refused")
    first = json.loads(flag.read_text())
    ks.write_flag_file(str(flag), "full recovery INC-2: redis down", "ops", "INC-2", "halted", "refused again")
    now = json.loads(flag.read_text())
    assert {k: now[k] for k in ("reason", "actor", "incident", "engaged_at")} == \
        {k: first[k] for k in ("reason", "actor", "incident", "engaged_at")}
    assert now["state"] == "halted"  # a stricter state is taken
    assert now["last_engage"]["incident"] == "INC-2" and now["redis_error"] == "refused again"
    ks.write_flag_file(str(flag), "again", "ops", "INC-3", "reducing", "x")
    assert json.loads(flag.read_text())["state"] == "halted"  # never relaxed


def test_a_switch_that_cannot_be_set_at_all_is_said_not_raised(tmp_path):
    """Issue 31's list: Redis down and the local flag file cannot be written either (its folder lies below a file).
    The front door says the switch could not be set and why, and the playbook's own engage follows; it does not
    crash the command before the playbook runs."""
    gone = _listener()
    redis_port = gone.getsockname()[1]
    gone.close()
    pg_srv = _listener()
    try:
        inv = _inventory(tmp_path, redis_port, pg_srv.getsockname()[1])
        (tmp_path / "a-file").write_text("not a folder\n")
        flag = tmp_path / "a-file" / "kill_switch.flag"
        (inv / "group_vars" / "kill_switch.yml").write_text(
            f"kill_switch_redis_host: 127.0.0.1\nkill_switch_redis_port: {redis_port}\nkill_switch_flag_file: {flag}\n")
        out = in_child("capital", "protect", str(inv), None, {}, "INC-NOWHERE")
        assert out["down"] == ["redis on cache-1"]
        assert out["engaged"] is None, out  # nothing the playbook may keep as the first engagement
        engaged = out["engage_failed"]
        assert engaged["outcome"] == "failed", engaged
        assert "Redis 127.0.0.1:%d" % redis_port in engaged["error"] and str(flag) in engaged["error"], engaged
        assert not flag.exists()
    finally:
        pg_srv.close()
