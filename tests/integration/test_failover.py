"""Broker and feed failover (runbook 004, 3.1 and 3.2) through ansible-runner, against real
Redis, with a stand-in order router (src/tradeops_dr/standins/paper_broker.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from tradeops_dr.drill.steps import stream_order
from tradeops_dr.sandbox import pid_alive

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def router(redis_seeded):
    procs = []

    def start(*fills_for):
        env = dict(os.environ, REDISCLI_AUTH=redis_seeded.srv.password)
        args = [a for f in fills_for for a in ("--fills-for", f)]
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "src" / "tradeops_dr" / "standins" / "paper_broker.py"),
                                       "--port", str(redis_seeded.port), *args], env=env))

    with redis_seeded.client() as c:
        c.set("broker:active", "ibkr")
    yield start
    for p in procs:
        p.kill()
        p.wait()


# the wait for a test order's fill: a fill ends it at once, so a failover that works waits no longer for a long
# one (a CI run under load took more than 3 s to fill); the tests whose fill never comes wait a short one
FILL_WAIT = 20
NO_FILL_WAIT = 3


def _vars(r, **kw):
    v = dict(broker_failover_redis_port=r.port, broker_failover_redis_password=r.srv.password,
             broker_failover_chain=["ibkr", "zerodha", "paper"], broker_failover_verify_timeout=FILL_WAIT)
    v.update(kw)
    return v


def _events(r):
    with r.client() as c:
        return [f for _i, f in c.xrange("broker:events")]


def test_failover_to_the_next_adapter_with_verified_order_flow(redis_seeded, router, run):
    router("zerodha", "paper")
    res = run("broker_failover.yml", _vars(redis_seeded), group="brokers")
    assert res.ok, res.failures
    with redis_seeded.client() as c:
        assert c.get("broker:active") == "zerodha"
        fills = [f for _i, f in c.xrange("orders.fills") if f.get("order_id", "").startswith("dr-test-")]
    assert len(fills) == 1 and fills[0]["broker"] == "zerodha"
    assert [(e["event"], e["from"], e["to"]) for e in _events(redis_seeded)] == [("switch", "ibkr", "zerodha")]


def test_the_failover_engages_the_kill_switch_before_the_adapter_moves(redis_seeded, router, run, tmp_path):
    """Issue 30 (runbook 004 3.1: "Trigger Kill Switch", then reroute): asked, the failover engages the switch
    itself, before broker:active changes - the switch's event comes first in Redis - and leaves it engaged."""
    router("zerodha", "paper")
    switch = dict(kill_switch_redis_port=redis_seeded.port, kill_switch_redis_password=redis_seeded.srv.password,
                  kill_switch_flag_file=str(tmp_path / "kill_switch.flag"))
    res = run("broker_failover.yml", _vars(redis_seeded, broker_failover_kill_switch=switch,
                                           broker_failover_incident="INC-BROKER", broker_failover_actor="ops"),
              group="brokers")
    assert res.ok, res.failures
    with redis_seeded.client() as c:
        ks = c.hgetall("policy:kill_switch")
        engaged = [i for i, e in c.xrange("policy:kill_switch:events") if e.get("event") == "engage"]
        moved = [i for i, e in c.xrange("broker:events") if e.get("event") == "switch"]
        assert c.get("broker:active") == "zerodha"
    assert ks["enabled"] == "true" and ks["incident"] == "INC-BROKER" and "broker failover" in ks["reason"]
    assert len(engaged) == 1 and len(moved) == 1
    assert stream_order(engaged[0]) < stream_order(moved[0]), (engaged, moved)
    # nothing to move (already on the target): nothing engaged again, nothing changed
    again = run("broker_failover.yml", _vars(redis_seeded, broker_failover_kill_switch=switch,
                                             broker_failover_target="zerodha"), group="brokers")
    assert again.ok and again.changed == 0, again.failures
    with redis_seeded.client() as c:
        assert len([1 for _i, e in c.xrange("policy:kill_switch:events") if e.get("event") == "engage"]) == 1


def test_failover_whose_orders_are_not_filled_is_rolled_back(redis_seeded, router, run):
    router("paper")  # zerodha is down too
    res = run("broker_failover.yml", _vars(redis_seeded, broker_failover_verify_timeout=NO_FILL_WAIT), group="brokers")
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "Failover from ibkr to zerodha failed and was rolled back" in msg and "got no fill" in msg
    with redis_seeded.client() as c:
        assert c.get("broker:active") == "ibkr"
    assert [(e["from"], e["to"]) for e in _events(redis_seeded)] == [("ibkr", "zerodha"), ("zerodha", "ibkr")]


ROUTER_CODE = ("import redis, sys, time; r = redis.Redis(port=int(sys.argv[1]), password=open(sys.argv[2]).read(), "
               "decode_responses=True); open(sys.argv[3], 'a').write(r.get('broker:active') + '\\n'); time.sleep(120)")


def _router_service(redis_seeded, tmp_path) -> tuple[dict, Path]:
    """The users' router as a service: each start notes the adapter active at that moment."""
    secret = tmp_path / "redis-pw"
    secret.write_text(redis_seeded.srv.password)
    secret.chmod(0o600)
    starts = tmp_path / "router-starts.log"
    svc = dict(name="order-router", manager="process", foreground=True, pidfile=str(tmp_path / "router.pid"),
               stop_timeout=5, start_command=[sys.executable, "-c", ROUTER_CODE, str(redis_seeded.port), str(secret),
                                              str(starts)])
    return svc, starts


def _stop(pidfile: str) -> None:
    try:
        pid = int(Path(pidfile).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_the_router_is_restarted_on_the_new_adapter(redis_seeded, router, run, tmp_path):
    svc, starts = _router_service(redis_seeded, tmp_path)
    try:
        router("zerodha", "paper")
        res = run("broker_failover.yml", _vars(redis_seeded, broker_failover_services=[svc]), group="brokers")
        assert res.ok, res.failures
        assert starts.read_text().splitlines() == ["zerodha"]  # restarted after the switch, on the new adapter
    finally:
        _stop(svc["pidfile"])


def test_a_roll_back_restarts_the_router_on_the_previous_adapter(redis_seeded, router, run, tmp_path):
    svc, starts = _router_service(redis_seeded, tmp_path)
    try:
        router("paper")  # zerodha does not fill: the failover rolls back
        res = run("broker_failover.yml", _vars(redis_seeded, broker_failover_services=[svc],
                                               broker_failover_verify_timeout=NO_FILL_WAIT), group="brokers")
        assert not res.ok and "failed and was rolled back" in " ".join(f.msg for f in res.failures)
        assert starts.read_text().splitlines() == ["zerodha", "ibkr"]  # on the switch, then on the roll-back
        with redis_seeded.client() as c:
            assert c.get("broker:active") == "ibkr"
    finally:
        _stop(svc["pidfile"])


def test_named_target_and_the_end_of_the_chain(redis_seeded, router, run):
    router("paper")
    res = run("broker_failover.yml", _vars(redis_seeded, broker_failover_target="paper"), group="brokers")
    assert res.ok, res.failures
    again = run("broker_failover.yml", _vars(redis_seeded, broker_failover_target="paper"), group="brokers")
    assert again.ok and again.changed == 0
    last = run("broker_failover.yml", _vars(redis_seeded), group="brokers")
    assert not last.ok and "no backup adapter left after paper" in " ".join(f.msg for f in last.failures)


def test_the_router_stand_in_sees_an_order_added_between_two_of_its_reads(redis_seeded, monkeypatch):
    """Found in a Molecule rehearsal under load: the stand-in read with XREAD "$" each time, which means
    "after the newest entry at this call", so an order added between a read that timed out and the next
    one was never filled, and a working failover was rolled back. Here the order arrives exactly there."""
    from tradeops_dr.standins import paper_broker

    real, client_class = redis_seeded.client(), redis.Redis
    real.set("broker:active", "paper")
    real.xadd("orders.validated", {"order_id": "before-start", "qty": "1"})  # not a new order: never filled

    class OrderBetweenReads:
        """The real client; after its first XREAD returns, an order is added before the next one."""

        def __init__(self, **kw):
            self.client = client_class(**kw)
            self.reads = 0

        def __getattr__(self, name):
            return getattr(self.client, name)

        def xread(self, streams, **kw):
            out = self.client.xread(streams, **kw)
            self.reads += 1
            if self.reads == 1:
                real.xadd("orders.validated", {"order_id": "between-reads", "qty": "2"})
            return out

    monkeypatch.setattr(paper_broker.redis, "Redis", OrderBetweenReads)
    monkeypatch.setenv("REDISCLI_AUTH", redis_seeded.srv.password)
    with real:  # closed whether the test passes or not
        assert paper_broker.main(["--port", str(redis_seeded.port), "--fills-for", "paper", "--max-seconds", "1.5"]) == 0
        fills = [f for _i, f in real.xrange("orders.fills") if f.get("broker") == "paper"]
        assert [f["order_id"] for f in fills] == ["between-reads"], fills


def test_check_mode_switches_nothing(redis_seeded, router, run):
    res = run("broker_failover.yml", _vars(redis_seeded), group="brokers", check=True)
    assert res.ok, res.failures
    with redis_seeded.client() as c:
        assert c.get("broker:active") == "ibkr" and c.xlen("orders.validated") == 200


REGISTRY = """# feed registry (runbook 004)
primary_feed: yahoo   # main source
backup_feed: moneycontrol
feeds:
  yahoo: {url: wss://example.invalid/yahoo}
  moneycontrol: {url: wss://example.invalid/mc}
"""


def test_feed_failover_switches_restarts_and_fills_the_gap(tmp_path, run):
    reg = tmp_path / "registry.yaml"
    reg.write_text(REGISTRY)
    marker = tmp_path / "gap-filled"
    worker_pid = tmp_path / "worker.pid"
    worker = dict(name="ws-gateway", manager="process", foreground=True, pidfile=str(worker_pid), stop_timeout=5,
                  start_command=[sys.executable, "-c", "import time; time.sleep(120)"])
    v = dict(feed_failover_registry=str(reg), feed_failover_primary="moneycontrol",
             feed_failover_backup_dir=str(tmp_path / "bk"), feed_failover_workers=[worker],
             feed_failover_gap_fill_command=["touch", str(marker)])
    first = subprocess.Popen(worker["start_command"], start_new_session=True)  # the worker on the old feed
    worker_pid.write_text(f"{first.pid}\n")
    pids = [first.pid]
    try:
        res = run("feed_failover.yml", v, group="feeds")
        assert res.ok, res.failures
        text = reg.read_text()
        assert "primary_feed: moneycontrol   # main source" in text and "backup_feed: yahoo" in text
        assert text.startswith("# feed registry (runbook 004)")
        assert yaml.safe_load(text)["feeds"]["yahoo"]["url"] == "wss://example.invalid/yahoo"
        kept = list((tmp_path / "bk").glob("registry-*/registry.yaml"))
        assert len(kept) == 1 and kept[0].read_text() == REGISTRY
        # restarted: the old worker is gone, a new one runs
        first.wait(timeout=10)
        new_pid = int(worker_pid.read_text().split()[0])
        pids.append(new_pid)
        assert new_pid != first.pid and pid_alive(new_pid)
        assert marker.exists()
        marker.unlink()
        again = run("feed_failover.yml", v, group="feeds")
        assert again.ok and again.changed == 0 and not marker.exists()
        assert int(worker_pid.read_text().split()[0]) == new_pid and pid_alive(new_pid)  # not restarted again
    finally:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if first.poll() is None:
            first.wait(timeout=10)


def test_feed_failover_refuses_an_unknown_feed(tmp_path, run):
    reg = tmp_path / "registry.yaml"
    reg.write_text(REGISTRY)
    res = run("feed_failover.yml", dict(feed_failover_registry=str(reg), feed_failover_primary="bloomberg",
                                        feed_failover_backup_dir=str(tmp_path / "bk")), group="feeds")
    assert not res.ok and "feed bloomberg is neither the backup_feed" in " ".join(f.msg for f in res.failures)
    assert reg.read_text() == REGISTRY
