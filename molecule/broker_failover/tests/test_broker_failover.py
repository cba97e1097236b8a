"""testinfra: the container after molecule converged broker_failover (IBKR down -> Paper)."""

import json


def _cli(host, *args):
    res = host.run("REDISCLI_AUTH=molecule-only-secret redis-cli -p 6379 --no-auth-warning " + " ".join(args))
    assert res.rc == 0, res.stderr
    return res.stdout


def test_paper_is_the_active_adapter(host):
    assert _cli(host, "GET", "broker:active").strip() == "paper"


def test_a_test_order_was_filled_by_paper(host):
    fills = json.loads(_cli(host, "--json", "XRANGE", "orders.fills", "-", "+"))
    brokers = [dict(zip(f[::2], f[1::2]))["broker"] for _id, f in fills]
    assert brokers and set(brokers) == {"paper"}


def test_the_switch_is_recorded_once_from_ibkr(host):
    events = json.loads(_cli(host, "--json", "XRANGE", "broker:events", "-", "+"))
    records = [dict(zip(f[::2], f[1::2])) for _id, f in events]
    assert len(records) == 1, records  # the idempotence run switched nothing
    text = json.dumps(records[0])
    assert "ibkr" in text and "paper" in text


def test_the_router_that_filled_is_still_the_one_prepare_started(host):
    pid = int(host.file("/run/router.pid").content_string.strip())
    assert "paper_broker.py" in host.file("/proc/%d/cmdline" % pid).content_string
