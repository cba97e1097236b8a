"""testinfra: after molecule engaged the kill switch (converge) and reset it (side_effect)."""

import json

import pytest

ENGINES = ["tradeops-dr-ks-engine-1", "tradeops-dr-ks-engine-2", "tradeops-dr-ks-engine-3"]
testinfra_hosts = ["ansible://tradeops-dr-ks-risk"]


def _cli(host, *args):
    res = host.run("REDISCLI_AUTH=molecule-only-secret redis-cli -p 6379 --no-auth-warning " + " ".join(args))
    assert res.rc == 0, res.stderr
    return res.stdout


@pytest.fixture
def engaged(host):
    return json.loads(host.file("/var/lib/molecule-engaged.json").content_string)


@pytest.fixture
def reset_ms(host):
    return int(host.file("/var/lib/molecule-reset-ms.txt").content_string)


def _orders(host):
    """(ms, engine) of every order in orders.validated."""
    out = json.loads(_cli(host, "--json", "XRANGE", "orders.validated", "-", "+"))
    return [(int(entry_id.split("-")[0]), dict(zip(fields[::2], fields[1::2]))["engine"]) for entry_id, fields in out]


def test_engage_recorded_why_who_and_the_incident(engaged):
    assert engaged["enabled"] == "true" and engaged["state"] == "halted"
    assert engaged["actor"] == "molecule" and engaged["incident"] == "INC-MOLECULE-1"


def test_every_engine_acknowledged_after_the_engage(host, engaged):
    for name in ENGINES:
        ack = json.loads(_cli(host, "--json", "HGETALL", "engine:%s:ack" % name))
        assert int(ack["at_ms"]) >= int(engaged["engaged_at_ms"]), name


def test_no_order_between_an_engines_acknowledgement_and_the_reset(host, engaged, reset_ms):
    orders = _orders(host)
    for name in ENGINES:
        acked = int(json.loads(_cli(host, "--json", "HGETALL", "engine:%s:ack" % name))["at_ms"])
        late = [ms for ms, engine in orders if engine == name and acked < ms < reset_ms]
        assert late == [], (name, late)
        assert any(engine == name and ms < int(engaged["engaged_at_ms"]) for ms, engine in orders), name


def test_the_reset_without_the_incident_id_was_refused(host):
    still, refusal = host.file("/var/lib/molecule-refused.txt").content_string.strip().split("\n")
    assert still == "true" and "does not repeat the incident id" in refusal


def test_the_switch_is_off_after_the_confirmed_reset_and_the_engines_trade_again(host, reset_ms):
    assert _cli(host, "HGET", "policy:kill_switch", "enabled").strip() == "false"
    after = {engine for ms, engine in _orders(host) if ms > reset_ms}
    assert after == set(ENGINES)


def test_the_password_is_not_in_the_redis_log(host):
    assert "molecule-only-secret" not in host.file("/var/log/redis-ks.log").content_string
