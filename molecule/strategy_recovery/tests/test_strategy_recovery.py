"""testinfra: the container after strategy_crash.yml restarted the crashed strategy stand-in."""

import json
import time


STATE = "http://127.0.0.1:8090/_standin/state"


def test_the_crash_was_the_injected_one(host):
    assert "injected crash" in host.file("/var/log/strategy.log").content_string


def test_the_strategy_runs_again_with_a_fresh_heartbeat_and_price(host):
    pid = int(host.file("/run/strategy.pid").content_string.strip())
    assert "strategy.py" in host.file("/proc/%d/cmdline" % pid).content_string
    hb = json.loads(host.file("/srv/strategy/heartbeat.json").content_string)
    now = float(host.run("date +%s.%N").stdout)
    assert now - hb["ts"] < 5 and hb.get("price_ts")


def test_it_trades_again_and_no_client_order_id_was_sent_twice(host, get_json):
    before = json.loads(host.file("/srv/strategy/before.json").content_string)["orders"]
    first = len(get_json(STATE)["orders"])
    # trading again: a new order after this moment, waited for with a deadline (issue 31: the old
    # max(before, first - 1) passed with no new order at all)
    deadline = time.time() + 15
    orders = get_json(STATE)["orders"]
    while len(orders) <= first:
        assert time.time() < deadline, "no new order within 15 s of the recovery (%d orders, %d before the crash)" % (
            len(orders), before)
        time.sleep(0.2)
        orders = get_json(STATE)["orders"]
    assert len(orders) > before
    ids = [o["clientOrderId"] for o in orders]
    assert len(ids) == len(set(ids))


def test_the_api_secret_is_in_no_log(host):
    for log in ("/var/log/strategy.log", "/var/log/exchange.log"):
        assert "molecule-only-secret" not in host.file(log).content_string, log
