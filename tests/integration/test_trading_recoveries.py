"""Trading-side recoveries (runbooks 003 and 004) through ansible-runner: a stand-in strategy
process (src/tradeops_dr/standins/strategy.py) trading through real ccxt against the Binance USD-M
futures stand-in, real Redis for the kill switch, real git for the deployed tree, real QuestDB
for the system's positions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import artifacts_text, record
from tradeops_dr.sandbox import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "src" / "tradeops_dr" / "standins"


class Strategy:
    """The stand-in strategy as a service of service_control (manager process)."""

    def __init__(self, tmp: Path, exchange, name="momentum", *extra: str):
        self.dir = tmp / name
        self.dir.mkdir(exist_ok=True)
        self.secret = self.dir / "api-secret"
        self.secret.write_text(exchange.secret)
        self.secret.chmod(0o600)
        self.heartbeat, self.log = self.dir / "heartbeat.json", self.dir / "strategy.log"
        self.pidfile = self.dir / "strategy.pid"
        self.name, self.exchange, self.extra = name, exchange, list(extra)

    def command(self, *extra) -> list[str]:
        return [sys.executable, str(STANDINS / "strategy.py"), "--name", self.name, "--exchange-base",
                self.exchange.base, "--api-key", self.exchange.api_key, "--secret-file", str(self.secret),
                "--heartbeat", str(self.heartbeat), "--state", str(self.dir / "state.json"), "--max-seconds", "300",
                *self.extra, *extra]

    def service(self, *extra) -> dict:
        return dict(name=f"strategy-{self.name}", manager="process", start_command=self.command(*extra),
                    pidfile=str(self.pidfile), log_file=str(self.log), foreground=True, stop_timeout=5)

    def start(self, *extra) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(self.command(*extra), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pidfile.write_text(f"{proc.pid}\n")
        self.procs.append(proc)
        return proc

    procs: list = []

    def wait_heartbeat(self, timeout=20) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                hb = json.loads(self.heartbeat.read_text())
                if hb.get("price_ts") and time.time() - hb["ts"] < 2:
                    return hb
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"no heartbeat from the stand-in strategy: {self.log.read_text()[-2000:]}")

    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def pid_alive(self) -> bool:
        from tradeops_dr.sandbox import pid_alive
        return pid_alive(self.pid())

    def stop(self):
        import os
        import signal
        try:
            os.kill(self.pid(), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def strategy(tmp_path, exchange):
    made = []

    def make(*extra, name="momentum"):
        s = Strategy(tmp_path, exchange, name, *extra)
        s.procs = []
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def _price_age(s: Strategy) -> float:
    try:
        return time.time() - float(json.loads(s.heartbeat.read_text()).get("price_ts") or 0)
    except (OSError, ValueError):
        return 0.0


def _vars(s: Strategy, exchange, **kw) -> dict:
    v = dict(strategy_recovery_service=s.service(), strategy_recovery_heartbeat_file=str(s.heartbeat),
             strategy_recovery_log_file=str(s.log), strategy_recovery_max_age=3, strategy_recovery_verify_timeout=30,
             strategy_recovery_symbols=["BTCUSDT"], strategy_recovery_reconnect_wait=6,
             **exchange.role_vars("strategy_recovery"))
    v.update(kw)
    return v


# --------------------------------------------------------------------------- strategy crash

def test_a_crashed_strategy_is_restarted_and_trades_again(strategy, exchange, run):
    s = strategy("--order-every", "2")
    proc = s.start("--crash-after", "1.0")
    proc.wait(timeout=30)
    assert proc.returncode != 0
    crashed_orders = len(exchange.state()["orders"])
    # --check (issue 31): the crash is seen, nothing is started
    dry = run("strategy_crash.yml", _vars(s, exchange), group="strategies", check=True)
    assert dry.ok, dry.failures
    assert not s.pid_alive() and len(exchange.state()["orders"]) == crashed_orders, "check mode restarted it"
    res = run("strategy_crash.yml", _vars(s, exchange), group="strategies")
    assert res.ok, res.failures
    rec = record(res, "strategy_recovery")
    assert rec["restarted"] is True and rec["before"]["running"] is False
    assert any("injected crash" in e for e in rec["before"]["errors"]), rec["before"]
    assert rec["after"]["state"] == "healthy" and rec["duplicates"] == []
    wait_for(lambda: (len(exchange.state()["orders"]) > crashed_orders, "no new order"), 15,
             "an order from the restarted strategy")
    state = exchange.state()
    ids = [o["clientOrderId"] for o in state["orders"]]
    assert len(ids) == len(set(ids))
    # a second run finds it healthy and changes nothing
    pid = s.pid()
    res = run("strategy_crash.yml", _vars(s, exchange), group="strategies")
    assert res.ok and record(res, "strategy_recovery")["restarted"] is False and s.pid() == pid
    assert res.changed == 0, res.stats


def test_a_restart_that_duplicates_an_order_fails_naming_it(strategy, exchange, run):
    # market orders: filled at once, so the exchange takes the same client order id again (issue 31: it refuses
    # the id of an order still open - the state the old test set up cannot happen on Binance)
    s = strategy("--order-every", "2", "--order-type", "market")
    proc = s.start("--crash-after", "1.0")
    proc.wait(timeout=30)
    res = run("strategy_crash.yml", _vars(s, exchange, strategy_recovery_service=s.service("--duplicate-on-start")),
              group="strategies")
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    dups = record(res, "strategy_recovery")["duplicates"]
    assert dups and all(len(d["order_ids"]) == 2 for d in dups)
    assert "client order id(s) twice since the restart" in msg, msg
    assert all(d["client_order_id"] in msg for d in dups), msg
    seen = [o["clientOrderId"] for o in exchange.state()["orders"]]
    assert {d["client_order_id"] for d in dups} == {c for c in seen if seen.count(c) > 1}


def test_a_restart_that_resends_an_open_orders_id_is_refused_by_the_exchange(strategy, exchange, run):
    """Issue 31: Binance refuses a client order id an open order carries (-4116): the restarted strategy's
    re-send is refused and logged, the book holds the order once, and the recovery finds no duplicate."""
    s = strategy("--order-every", "2")  # resting limit orders: the last one is still open at the crash
    proc = s.start("--crash-after", "1.0")
    proc.wait(timeout=30)
    last = next(o for o in reversed(exchange.state()["orders"]) if o["clientOrderId"].startswith("momentum-"))
    assert last["status"] == "NEW"
    res = run("strategy_crash.yml", _vars(s, exchange, strategy_recovery_service=s.service("--duplicate-on-start")),
              group="strategies")
    assert res.ok, res.failures
    assert record(res, "strategy_recovery")["duplicates"] == []
    wait_for(lambda: ("refused by the exchange as a duplicate (-4116)" in s.log.read_text(), "not logged"), 15,
             "the strategy's log of the exchange's refusal")
    seen = [o["clientOrderId"] for o in exchange.state()["orders"]]
    assert seen.count(last["clientOrderId"]) == 1
    assert any(r[1] == "/fapi/v1/order" and r[2] == 400 for r in exchange.state()["requests"])


def test_crash_with_reconciliation_corrects_questdb_by_journal(strategy, exchange, run, questdb_real):
    from ansible_collections.tradeops.dr.plugins.module_utils import _questdb

    c = _questdb.QuestDBClient(dict(url=questdb_real.url, health_url=questdb_real.health_url))
    c.exec_sql("CREATE TABLE positions (instrument SYMBOL, quantity DOUBLE, avg_price DOUBLE, ts TIMESTAMP) "
               "TIMESTAMP(ts) PARTITION BY DAY WAL")
    c.exec_sql("INSERT INTO positions VALUES ('BTCUSDT', 0.1, 60000, now())")
    exchange.control("positions", {"BTCUSDT": {"amt": "0.3", "entry": "60000"}})
    s = strategy()
    s.start("--crash-after", "0.5").wait(timeout=30)
    res = run("strategy_crash.yml", _vars(s, exchange, strategy_recovery_reconcile=True,
                                          strategy_recovery_actor="ops", strategy_recovery_incident="INC-7",
                                          position_reconcile_questdb_url=questdb_real.url,
                                          position_reconcile_max_adjustment_notional=100000), group="strategies")
    assert res.ok, res.failures
    rec = record(res, "position_reconcile")
    assert [(a["instrument"], a["before_quantity"], a["after_quantity"]) for a in rec["adjustments"]] == [
        ("BTCUSDT", 0.1, 0.3)]
    rows = c.rows("SELECT actor, incident, reason FROM position_adjustments")
    assert rows == [{"actor": "ops", "incident": "INC-7",
                     "reason": "reconciliation after the restart of strategy strategy-momentum"}]
    assert c.count("positions") == 2


# --------------------------------------------------------------------------- exchange disconnect

def test_a_lost_connection_is_left_to_the_strategys_reconnects_then_restarted(strategy, exchange, run):
    s = strategy()
    s.start()
    s.wait_heartbeat()
    # the exchange drops three connections: the strategy's three reconnects fail too, it gives up
    exchange.control("fault", {"mode": "drop", "count": 4, "paths": ["/fapi/v1/ticker", "/fapi/v1/ping"]})
    deadline = time.time() + 20
    while "giving up" not in s.log.read_text() and time.time() < deadline:
        time.sleep(0.2)
    assert "giving up" in s.log.read_text()
    wait_for(lambda: (_price_age(s) > 3.2, f"price age {_price_age(s):.1f} s"), 15,
             "its prices older than max_age (3 s)")
    old_pid = s.pid()
    dry = run("exchange_disconnect.yml", _vars(s, exchange), group="strategies", check=True)  # issue 31
    assert dry.ok, dry.failures
    assert s.pid() == old_pid, "check mode restarted the strategy"
    res = run("exchange_disconnect.yml", _vars(s, exchange), group="strategies")
    assert res.ok, res.failures
    rec = record(res, "strategy_recovery")
    assert rec["before"]["strategy_state"] == "disconnected" and rec["before"]["exchange_status"] == "ok"
    assert rec["restarted"] is True and rec["reconnected_by_itself"] is False and s.pid() != old_pid
    assert rec["after"]["state"] == "healthy" and rec["after"]["price_age"] < 3


def test_an_exchange_outage_restarts_nothing_routes_nothing_and_arms_the_dead_man(strategy, exchange, run):
    s = strategy("--order-every", "1")
    s.start()
    s.wait_heartbeat()
    wait_for(lambda: (bool(exchange.state()["orders"]), "no order"), 15, "the strategy's first order")  # trading
    pid = s.pid()
    down = ["/sapi/v1/system/status", "/fapi/v1/ticker", "/fapi/v1/time", "/fapi/v1/ping"]
    exchange.control("fault", {"mode": "maintenance", "paths": down})
    wait_for(lambda: (_price_age(s) > 3.2, f"price age {_price_age(s):.1f} s"), 20,
             "the strategy's prices stale during the outage")
    res = run("exchange_disconnect.yml", _vars(s, exchange), group="strategies")
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "is maintenance" in msg and "no order was routed to another exchange" in msg, msg
    assert "BTC/USDT:USDT armed for 120 s" in msg, msg
    assert s.pid() == pid, "the strategy was restarted while the exchange was down"
    assert "BTCUSDT" in exchange.state()["countdowns"]
    rec = record(res, "strategy_recovery")
    assert rec["exchange_down"] is True and rec["restarted"] is False


def test_a_healthy_strategy_is_left_alone_by_the_disconnect_playbook(strategy, exchange, run):
    s = strategy()
    s.start()
    s.wait_heartbeat()
    pid = s.pid()
    res = run("exchange_disconnect.yml", _vars(s, exchange), group="strategies")
    assert res.ok and res.changed == 0 and s.pid() == pid, res.failures
    assert record(res, "strategy_recovery")["before"]["state"] == "healthy"


def test_an_unknown_instrument_is_refused_before_the_restart(strategy, exchange, run):
    s = strategy()
    s.start("--crash-after", "0.3").wait(timeout=30)
    res = run("strategy_crash.yml", _vars(s, exchange, strategy_recovery_symbols=["XRPUSDT"]), group="strategies")
    assert not res.ok
    assert "binanceusdm does not list XRPUSDT; nothing was sent" in " ".join(f.msg for f in res.failures)
    assert not s.pid_alive()


def test_wrong_credentials_are_refused_before_the_restart(strategy, exchange, run):
    s = strategy()
    s.start("--crash-after", "0.5").wait(timeout=30)
    crashed_beat = s.heartbeat.read_text()
    v = _vars(s, exchange)
    v["strategy_recovery_exchange"] = dict(v["strategy_recovery_exchange"], api_secret="wrong-secret-123")
    res = run("strategy_crash.yml", v, group="strategies")
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "the exchange refused the credentials" in msg and "nothing was changed" in msg, msg
    assert "wrong-secret-123" not in artifacts_text(res) and exchange.secret not in artifacts_text(res)
    # not restarted: no process, and the heartbeat is the one the crash left
    assert not s.pid_alive() and s.heartbeat.read_text() == crashed_beat, \
        "the strategy was restarted although the credentials were refused"


# --------------------------------------------------------------------------- release rollback

def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def release_repo(tmp_path):
    repo = tmp_path / "deploy"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ops@example.invalid")
    _git(repo, "config", "user.name", "ops")
    shas = []
    for version, when in (("2.3.0", "2026-11-20T10:00:00Z"), ("2.3.1", "2026-11-24T10:00:00Z"),
                          ("2.4.0", "2026-11-25T07:30:00Z")):
        (repo / "VERSION").write_text(version + "\n")
        _git(repo, "add", "VERSION")
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", f"release {version}"], check=True,
                       env={"GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when, "PATH": "/usr/bin:/bin",
                            "HOME": str(tmp_path)})
        shas.append(_git(repo, "rev-parse", "HEAD"))
        _git(repo, "tag", f"v{version}")
    return repo, shas


def test_release_rollback_engages_rolls_back_verifies_and_leaves_orphans_listed(
        strategy, exchange, run, redis_seeded, release_repo, tmp_path):
    from tradeops_dr.sandbox import free_port

    repo, shas = release_repo
    port = free_port()
    pw = tmp_path / "redis-pw"
    pw.write_text(redis_seeded.srv.password)
    # this strategy honours the kill switch: once engaged it sends no new order
    s = strategy("--order-every", "1", "--release-dir", str(repo), "--health-port", str(port),
                 "--redis-port", str(redis_seeded.port), "--redis-password-file", str(pw))
    s.start()
    s.wait_heartbeat()
    wait_for(lambda: (bool(exchange.state()["open_orders"]), "none open"), 15, "an open order to orphan")
    v = dict(release_rollback_path=str(repo), release_rollback_before="2026-11-25T07:00:00Z",
             release_rollback_reason="2.4.0 sends oversized orders", release_rollback_actor="ops",
             release_rollback_incident="INC-22", release_rollback_services=[s.service()],
             release_rollback_health_urls=[dict(url=f"http://127.0.0.1:{port}/health", json_field="version",
                                                expect="2.3.1")],
             release_rollback_symbols=["BTCUSDT"],
             release_rollback_kill_switch=dict(kill_switch_redis_port=redis_seeded.port,
                                               kill_switch_redis_password=redis_seeded.srv.password,
                                               kill_switch_flag_file=str(s.dir / "ks.flag")),
             **exchange.role_vars("release_rollback"))
    # --check (issue 31): no checkout, no switch, no restart, no cancel
    pid, open_before = s.pid(), exchange.state()["open_orders"]
    dry = run("release_rollback.yml", dict(v, release_rollback_cancel_orphans=True), group="strategies", check=True)
    assert dry.ok, dry.failures
    assert _git(repo, "rev-parse", "HEAD") == shas[2] and s.pid() == pid
    with redis_seeded.client() as c:
        assert c.hget("policy:kill_switch", "enabled") != "true", "check mode engaged the kill switch"
    assert {o["orderId"] for o in open_before} <= {o["orderId"] for o in exchange.state()["open_orders"]}
    res = run("release_rollback.yml", v, group="strategies")
    assert res.ok, res.failures
    rec = record(res, "release_rollback")
    assert rec["previous"] == shas[2] and rec["current"] == shas[1] and _git(repo, "rev-parse", "HEAD") == shas[1]
    assert _git(repo, "rev-parse", rec["kept_as"]) == shas[2], "the bad release must stay reachable"
    assert rec["orphaned_orders"] and rec["cancelled"] == [], "orphans are cancelled only when told"
    with redis_seeded.client() as c:
        ks = c.hgetall("policy:kill_switch")
    assert ks["enabled"] == "true" and "2.4.0 sends oversized orders" in ks["reason"] and ks["incident"] == "INC-22"
    # idempotent: at the target already, nothing is engaged again or restarted
    pid = s.pid()
    res = run("release_rollback.yml", v, group="strategies")
    assert res.ok and record(res, "release_rollback")["changed"] is False and s.pid() == pid
    # told to cancel the orphans
    orphans = {o["id"] for o in record(res, "release_rollback")["orphaned_orders"]}
    res = run("release_rollback.yml", dict(v, release_rollback_cancel_orphans=True), group="strategies")
    assert res.ok
    cancelled = {o["id"] for o in record(res, "release_rollback")["cancelled"]}
    assert orphans and orphans <= cancelled
    status = {str(o["orderId"]): o["status"] for o in exchange.state()["orders"]}
    assert {status[i] for i in cancelled} == {"CANCELED"}
    assert exchange.state()["open_orders"] == [], "the restarted strategy traded although the switch is engaged"


def test_release_rollback_to_a_target_that_does_not_exist_changes_nothing(exchange, run, redis_seeded, release_repo):
    repo, shas = release_repo
    v = dict(release_rollback_path=str(repo), release_rollback_to="v9.9.9", release_rollback_reason="x",
             release_rollback_actor="ops", release_rollback_kill_switch=dict(
                 kill_switch_redis_port=redis_seeded.port, kill_switch_redis_password=redis_seeded.srv.password))
    res = run("release_rollback.yml", v, group="strategies")
    assert not res.ok
    assert "rollback target 'v9.9.9' is not a commit or tag" in " ".join(f.msg for f in res.failures)
    assert _git(repo, "rev-parse", "HEAD") == shas[2]
    with redis_seeded.client() as c:
        assert c.hget("policy:kill_switch", "enabled") != "true", "a refused rollback engaged the switch"
    (repo / "VERSION").write_text("hot fix\n")
    res = run("release_rollback.yml", dict(v, release_rollback_to="v2.3.1"), group="strategies")
    assert not res.ok and "uncommitted changes to VERSION" in " ".join(f.msg for f in res.failures)
    assert _git(repo, "rev-parse", "HEAD") == shas[2] and (repo / "VERSION").read_text() == "hot fix\n"


# --------------------------------------------------------------------------- risk breach

def test_risk_breach_engages_cancels_flattens_and_records_pnl(exchange, run, redis_seeded, tmp_path):
    exchange.control("positions", {"BTCUSDT": {"amt": "0.5", "entry": "62000"}, "ETHUSDT": {"amt": "-3", "entry": "2900"}})
    exchange.control("orders", {"symbol": "BTCUSDT", "count": 4})
    secret = tmp_path / "secret"
    secret.write_text(exchange.secret)
    v = dict(kill_switch_redis_port=redis_seeded.port, kill_switch_redis_password=redis_seeded.srv.password,
             kill_switch_flag_file=str(tmp_path / "ks.flag"), kill_switch_reason="drawdown 16% > 15%",
             kill_switch_actor="risk-bot", kill_switch_incident="INC-31", kill_switch_positions_pattern="",
             kill_switch_flatten_command=[sys.executable, str(STANDINS / "flatten_exchange.py"), "--exchange-base",
                                          exchange.base, "--api-key", exchange.api_key, "--secret-file", str(secret)],
             kill_switch_flatten_timeout=10, **exchange.role_vars("kill_switch"))
    # --check (issue 31): no switch, no cancel, no flatten
    dry = run("risk_breach.yml", v, group="kill_switch", check=True)
    assert dry.ok, dry.failures
    state = exchange.state()
    assert len(state["open_orders"]) == 4 and state["positions"]["BTCUSDT"]["amt"] == "0.5", "check mode traded"
    assert not [r for r in state["requests"] if r[0] in ("POST", "DELETE") and r[1].startswith("/fapi/")], \
        state["requests"]
    assert not (tmp_path / "ks.flag").exists()
    with redis_seeded.client() as c:
        assert c.hget("policy:kill_switch", "enabled") != "true", "check mode engaged the kill switch"
    res = run("risk_breach.yml", v, group="kill_switch")
    assert res.ok, res.failures
    rec = record(res, "risk_breach")
    steps = {s["step"]: s for s in rec["steps"]}
    assert list(steps) == ["engaged", "flat"]
    pnl = round(0.5 * (60000 - 62000) + -3 * (3000 - 2900), 2)
    assert steps["engaged"]["positions"] == 2 and steps["engaged"]["unrealized_pnl"] == pnl
    assert steps["engaged"]["open_orders"] == 0 and steps["flat"]["positions"] == 0 and steps["flat"]["exposure"] == 0
    # flattening realized the loss: the wallet holds it
    assert steps["flat"]["balance"]["USDT"] == 100000 + pnl
    assert rec["cancelled_orders"] == 4 and rec["engaged_at"]
    state = exchange.state()
    assert state["open_orders"] == [] and all(float(p["amt"]) == 0 for p in state["positions"].values())
    with redis_seeded.client() as c:
        assert c.hget("policy:kill_switch", "enabled") == "true"
    assert record(res, "kill_switch")["cancelled_orders"] == 4


def test_risk_breach_with_a_flatten_that_leaves_a_position_fails(exchange, run, redis_seeded, tmp_path):
    exchange.control("positions", {"BTCUSDT": {"amt": "0.5", "entry": "60000"}, "ETHUSDT": {"amt": "1", "entry": "3000"}})
    secret = tmp_path / "secret"
    secret.write_text(exchange.secret)
    v = dict(kill_switch_redis_port=redis_seeded.port, kill_switch_redis_password=redis_seeded.srv.password,
             kill_switch_flag_file=str(tmp_path / "ks.flag"), kill_switch_reason="drawdown", kill_switch_actor="ops",
             kill_switch_positions_pattern="",
             kill_switch_flatten_command=[sys.executable, str(STANDINS / "flatten_exchange.py"), "--exchange-base",
                                          exchange.base, "--api-key", exchange.api_key, "--secret-file", str(secret),
                                          "--leave", "ETHUSDT"],
             kill_switch_flatten_timeout=2, **exchange.role_vars("kill_switch"))
    res = run("risk_breach.yml", v, group="kill_switch")
    assert not res.ok
    # it fails because the flatten left a position, and says which (issue 31: asserted only as not ok)
    msg = " ".join(f.msg for f in res.failures)
    assert "the exchange still reports open positions 2 s after the flatten command: ETHUSDT 1.0" in msg, msg
    assert float(exchange.state()["positions"]["ETHUSDT"]["amt"]) == 1.0
    with redis_seeded.client() as c:
        assert c.hget("policy:kill_switch", "enabled") == "true"


def test_risk_breach_engages_even_when_the_exchange_cannot_be_reached(exchange, run, redis_seeded, tmp_path):
    """Capital first: an exchange that does not answer must not delay or prevent the switch."""
    exchange.control("fault", {"mode": "drop"})
    v = dict(kill_switch_redis_port=redis_seeded.port, kill_switch_redis_password=redis_seeded.srv.password,
             kill_switch_flag_file=str(tmp_path / "ks.flag"), kill_switch_reason="drawdown", kill_switch_actor="ops",
             kill_switch_positions_pattern="", kill_switch_flatten_command=["/bin/true"],
             **exchange.role_vars("kill_switch"))
    res = run("risk_breach.yml", v, group="kill_switch")
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "The kill switch is engaged; orders may still be open on the exchange: cancelling them failed" in msg, msg
    assert "cannot reach the exchange" in msg, msg
    with redis_seeded.client() as c:
        assert c.hget("policy:kill_switch", "enabled") == "true"
