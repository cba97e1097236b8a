"""Drills of the trading side (runbooks 003, 004): the kill switch with stand-in engines, broker and
feed failover, and the strategy, exchange, position, release and risk recoveries."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from .. import errors
from ..api import RunResult, run_playbook
from ..paths import STANDINS
from ..sandbox import Sandbox, free_port, pid_alive, read_pid
from .steps import DrillStep, Steps, reset_or_say, stream_order


ENGINES = ("sandbox-momentum", "sandbox-meanrev")  # the stand-in engines of the kill-switch drill


def kill_switch_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 004's monthly drill on the sandbox: two stand-in engines (src/tradeops_dr/standins, the
    users' own engines in real life) trade against the sandbox Redis and engage the switch at
    a 5% drawdown; the playbook simulates the drawdown and checks the rest."""

    state = sandbox.up()
    srv = Sandbox.redis_server(state)
    engine = STANDINS / "trading_engine.py"
    env = dict(os.environ, REDISCLI_AUTH=srv.password)
    procs = [subprocess.Popen([sys.executable, str(engine), "--port", str(srv.port), "--name", name,
                               "--max-drawdown", "0.05", "--max-seconds", "60"], env=env)
             for name in ENGINES]
    try:
        time.sleep(0.5)  # let them trade a little
        t0 = time.monotonic()
        res = run_playbook("kill_switch.yml", inventory=inventory,
                           extravars=dict(kill_switch_action="drill", kill_switch_engines=list(ENGINES)),
                           envvars={"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)})
        secs = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    rec = next(iter((res.data.get("kill_switch_drill") or {}).values()), {})
    with srv.client() as c:
        after = c.hgetall("policy:kill_switch")
    ok = res.ok and sorted(rec.get("acked", [])) == ["sandbox-meanrev", "sandbox-momentum"] and \
        after.get("enabled") == "false"
    steps = Steps(on_step)
    steps.append(DrillStep("kill switch", "drawdown set to 5%", "engines engage the switch, all acknowledge, no new "
                           "orders; drawdown put back and switch reset", ok, secs,
                           [f"switch found engaged after waiting {rec.get('detected_after_s')}s, by "
                            f"{rec.get('switch', {}).get('actor')}: {rec.get('switch', {}).get('reason')}",
                            f"acknowledged by {rec.get('acked')}", f"switch after the drill: enabled={after.get('enabled')}",
                            *[f.msg for f in res.failures]]))
    return steps


def broker_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 004's quarterly broker failover drill (IBKR -> Paper) on the sandbox's Redis, with
    the stand-in order router of src/tradeops_dr/standins (it fills orders only for the adapters that are
    up): first a target that is down too (the switch is rolled back), then Paper."""

    state = sandbox.up()
    srv = Sandbox.redis_server(state)
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    router = STANDINS / "paper_broker.py"
    with srv.client() as c:
        c.set("broker:active", "ibkr")  # the router's adapter before the outage
        since = (c.xrevrange("policy:kill_switch:events", count=1) or [("0-0", {})])[0][0]
    proc = subprocess.Popen([sys.executable, str(router), "--port", str(srv.port), "--fills-for", "paper",
                             "--max-seconds", "120"], env=dict(os.environ, REDISCLI_AUTH=srv.password))
    steps = Steps(on_step)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        down = run_playbook("broker_failover.yml", inventory=inventory, envvars=env, extravars=dict(
            broker_failover_target="zerodha", broker_failover_reason="drill: IBKR down",
            broker_failover_verify_timeout=3))
        secs = time.monotonic() - t0
        with srv.client() as c:
            active = c.get("broker:active")
        steps.append(DrillStep("broker rollback", "IBKR down, failover to Zerodha (down too)",
                               "no fill from Zerodha: switched back to IBKR, the run fails saying so",
                               (not down.ok) and active == "ibkr"
                               and any("rolled back" in f.msg for f in down.failures), secs,
                               [f"active after the run: {active}", *[f.msg[:200] for f in down.failures]]))
        t0 = time.monotonic()
        res = run_playbook("broker_failover.yml", inventory=inventory, envvars=env, extravars=dict(
            broker_failover_target="paper", broker_failover_reason="drill: IBKR down"))
        secs = time.monotonic() - t0
        with srv.client() as c:
            active = c.get("broker:active")
            fills = [f for _i, f in c.xrevrange("orders.fills", count=5) if f.get("broker") == "paper"]
            moved, event = (c.xrevrange("broker:events", count=1) or [("0-0", {})])[0]
            engaged = [i for i, e in c.xrange("policy:kill_switch:events", min=f"({since}")
                       if e.get("event") == "engage" and "broker failover" in e.get("reason", "")]
            switch = c.hget("policy:kill_switch", "enabled")
    finally:
        proc.kill()
        proc.wait()
    # runbook 004 3.1: the kill switch first, then the reroute - its engagement precedes the move in Redis
    first = bool(engaged) and stream_order(engaged[0]) < stream_order(moved)
    steps.append(DrillStep("broker failover", "IBKR down (the runbook's quarterly drill: IBKR -> Paper)",
                           "kill switch engaged first, broker:active set to paper, a test order filled by it, the "
                           "switch recorded",
                           res.ok and active == "paper" and bool(fills) and event.get("to") == "paper"
                           and switch == "true" and first, secs,
                           [f"active={active}", f"test fill by paper={bool(fills)}",
                            f"kill switch engaged before the move={first} (enabled={switch})",
                            f"event {event.get('from')} -> {event.get('to')}: {event.get('reason')}",
                            *[f.msg for f in res.failures]]))
    reset_or_say(sandbox, inventory, steps)
    return steps


def feed_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbook 004's semi-annual feed failover drill on the sandbox's registry: the primary
    feed declared down, the backup made primary (the old registry kept aside); a second run
    changes nothing."""

    state = sandbox.up()
    trading = state["trading"]
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    registry = Path(trading["registry"])
    before = yaml.safe_load(registry.read_text())
    primary, backup = before["primary_feed"], before["backup_feed"]

    def digest(f: Path) -> str:
        return hashlib.sha256(f.read_bytes()).hexdigest()
    old = digest(registry)
    t0 = time.monotonic()
    res = run_playbook("feed_failover.yml", inventory=inventory, envvars=env,
                       extravars=dict(feed_failover_primary=backup))
    secs = time.monotonic() - t0
    again = run_playbook("feed_failover.yml", inventory=inventory, envvars=env,
                         extravars=dict(feed_failover_primary=backup))
    after = yaml.safe_load(registry.read_text())
    # the copy aside: a new one, or an identical earlier one the module reused (never overwritten)
    kept = sorted(f.parent.name for f in Path(trading["feed_backup_dir"]).glob(f"registry-*/{registry.name}")
                  if digest(f) == old)
    steps = Steps(on_step)
    steps.append(DrillStep("feed failover", f"{primary} declared down",
                           f"{backup} primary, {primary} backup, the old registry kept aside; a 2nd run changes nothing",
                           res.ok and again.ok and again.changed == 0 and bool(kept)
                           and (after["primary_feed"], after["backup_feed"]) == (backup, primary), secs,
                           [f"registry: primary_feed={after.get('primary_feed')} backup_feed={after.get('backup_feed')}",
                            f"the registry as it was, kept aside in: {kept}", f"second run changed={again.changed}",
                            *[f.msg for f in res.failures + again.failures]]))
    return steps


class _TradingStandins:
    """The users' trading applications for the trading drill, as stand-ins from src/tradeops_dr/standins: an
    exchange (Binance USD-M futures' REST shape, on 127.0.0.1) and one strategy trading on it. Their
    addresses, key and commands go to <sandbox>/trading/exchange/exchange.json, which the local
    inventory's `strategies` group reads."""

    def __init__(self, sandbox: Sandbox, state: dict):

        self.standins = STANDINS
        self.dir = sandbox.state_dir / "trading" / "exchange"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.strategy_dir = sandbox.state_dir / "trading" / "strategy"
        self.strategy_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = "drill-" + secrets.token_hex(6)
        self.secret = secrets.token_hex(16)
        self.secret_file = self.dir / "api_secret"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.secret)
        self.port = free_port()
        self.health_port = free_port(avoid={self.port})
        self.base = f"http://127.0.0.1:{self.port}"
        self.exchange = subprocess.Popen([sys.executable, str(self.standins / "binance_futures.py"), "--port",
                                          str(self.port), "--api-key", self.api_key, "--max-seconds", "900"],
                                         env=dict(os.environ, STANDIN_API_SECRET=self.secret))
        self.release = sandbox.state_dir / "trading" / "release"
        self.heartbeat = self.strategy_dir / "heartbeat.json"
        self.log = self.strategy_dir / "strategy.log"
        self.pidfile = self.strategy_dir / "strategy.pid"
        redis = state["redis"]
        # the service's command runs where the sandbox runs (service control starts it there): that
        # machine's interpreter and stand-ins, which differ from this process's inside the image
        host = self.host = state.get("standins") or dict(python=sys.executable, dir=str(self.standins))
        self.args = ["--name", "sandbox-strategy", "--exchange-base", self.base, "--api-key", self.api_key,
                     "--secret-file", str(self.secret_file), "--heartbeat", str(self.heartbeat), "--state",
                     str(self.strategy_dir / "state.json"), "--order-every", "2", "--release-dir", str(self.release),
                     "--health-port", str(self.health_port), "--redis-port", str(redis["port"]),
                     "--redis-password-file", str(redis["password_file"]), "--max-seconds", "900"]
        self.command = [host["python"], str(Path(host["dir"]) / "strategy.py"), *self.args]
        (self.dir / "exchange.json").write_text(json.dumps(dict(
            exchange="binanceusdm", api_base=self.base, api_key=self.api_key, secret_file=str(self.secret_file),
            strategy_command=self.command, heartbeat=str(self.heartbeat), log=str(self.log), pidfile=str(self.pidfile),
            release=str(self.release), health_url=f"http://127.0.0.1:{self.health_port}/health"), indent=1))
        self._wait(lambda: self.control("state") is not None, "the stand-in exchange")

    def _wait(self, ok, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ok():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise errors.SandboxError(f"{what} did not come up in {timeout:.0f}s")

    def control(self, what: str, data: dict | None = None) -> dict:

        req = urllib.request.Request(f"{self.base}/_standin/{what}", method="POST" if data is not None else "GET",
                                     data=json.dumps(data).encode() if data is not None else None)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def release_repo(self) -> tuple[str, str, str]:
        """The deployed tree: a release that worked, then a bad one on top (each drill adds one).
        Returns (good commit, bad commit, good version)."""

        def git(*args):
            return subprocess.run(["git", "-C", str(self.release), *args], check=True, capture_output=True,
                                  text=True).stdout.strip()
        if not (self.release / ".git").exists():
            self.release.mkdir(parents=True, exist_ok=True)
            git("init", "-q", "-b", "main")
            git("config", "user.email", "drill@sandbox.invalid")
            git("config", "user.name", "tradeops-dr drill")
            (self.release / "VERSION").write_text("1.0.0\n")
            git("add", "VERSION")
            git("commit", "-q", "-m", "release 1.0.0")
        git("checkout", "-q", "main")
        good = git("rev-parse", "HEAD")
        version = (self.release / "VERSION").read_text().strip()
        n = len(git("rev-list", "HEAD").split())
        (self.release / "VERSION").write_text(f"1.0.{n}-bad\n")
        git("commit", "-q", "-am", f"release 1.0.{n}-bad")
        return good, git("rev-parse", "HEAD"), version

    def start_strategy(self, *extra: str):

        with open(self.log, "ab") as log:
            proc = subprocess.Popen([sys.executable, str(self.standins / "strategy.py"), *self.args, *extra], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def stop(self) -> None:
        pid = read_pid(self.pidfile)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.exchange.kill()
        self.exchange.wait()


def trading_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Runbooks 003 and 004 on the trading side, against stand-ins of the users' exchange and
    strategy (src/tradeops_dr/standins) and the sandbox's Redis and QuestDB: a strategy crash, an exchange
    disconnection, a position mismatch, a bad release rolled back, a risk breach."""

    state = sandbox.up()
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    steps = Steps(on_step)
    t = _TradingStandins(sandbox, state)

    def play(playbook, **extra) -> RunResult:
        return run_playbook(playbook, inventory=inventory, envvars=env, extravars=extra or None)

    def record(res, key):
        return next(iter((res.data.get(key) or {}).values()), {})

    try:
        good, bad, good_version = t.release_repo()
        t.control("positions", {"BTCUSDT": {"amt": "0.25", "entry": "60000"}})
        # 1. crash: the strategy dies with an exception; restarted, trades again, no order twice
        proc = t.start_strategy("--crash-after", "1.5")
        proc.wait(timeout=60)
        orders_before = len(t.control("state")["orders"])
        t0 = time.monotonic()
        res = play("strategy_crash.yml")
        secs = time.monotonic() - t0
        rec = record(res, "strategy_recovery")
        time.sleep(1.0)
        ex = t.control("state")
        ids = [o["clientOrderId"] for o in ex["orders"]]
        steps.append(DrillStep("strategy crash", "the strategy raised an exception and exited",
                               "restarted through service control, fresh heartbeat and prices, new orders, no client "
                               "order id twice", res.ok and rec.get("restarted") is True
                               and (rec.get("after") or {}).get("state") == "healthy"
                               and len(ex["orders"]) > orders_before and len(ids) == len(set(ids)), secs,
                               [f"error in the log: {(rec.get('before') or {}).get('errors', ['-'])[-1:]}",
                                f"orders on the exchange {orders_before} -> {len(ex['orders'])}",
                                *[f.msg for f in res.failures]]))

        # 2. exchange disconnection: the exchange drops the strategy's connections, its 3 reconnects fail
        t.control("fault", {"mode": "drop", "count": 4, "paths": ["/fapi/v1/ticker", "/fapi/v1/ping"]})
        deadline = time.monotonic() + 30
        while "giving up" not in t.log.read_text()[-4000:] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3.5)  # its last price is now older than the inventory's max_age
        old_pid = read_pid(t.pidfile)
        t0 = time.monotonic()
        res = play("exchange_disconnect.yml")
        secs = time.monotonic() - t0
        rec = record(res, "strategy_recovery")
        after = rec.get("after") or {}
        steps.append(DrillStep("exchange disconnect", "4 connections dropped: the strategy's 3 reconnects fail",
                               "exchange found up, the strategy restarted after its reconnects, fresh prices",
                               res.ok and (rec.get("before") or {}).get("exchange_status") == "ok"
                               and rec.get("restarted") is True and read_pid(t.pidfile) != old_pid
                               and after.get("state") == "healthy", secs,
                               [f"before: {(rec.get('before') or {}).get('evidence', '')}",
                                f"price age after: {after.get('price_age')}", *[f.msg for f in res.failures]]))

        # 3. position mismatch (QuestDB, where the sandbox has it): corrected by journaled rows only
        if state.get("questdb"):
            sql = Sandbox.questdb_server(state).sql
            sql("CREATE TABLE IF NOT EXISTS positions (instrument SYMBOL, quantity DOUBLE, avg_price DOUBLE, "
                "ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY WAL")
            sql("INSERT INTO positions VALUES ('BTCUSDT', 0.1, 59000, now())")

            def rows():
                return int(sql("SELECT count() FROM positions")["dataset"][0][0])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(
                    r[1] == 0.1 for r in sql("SELECT instrument, quantity FROM positions LATEST ON ts PARTITION BY "
                                             "instrument")["dataset"]):
                time.sleep(0.2)
            before_rows = rows()
            t0 = time.monotonic()
            dry = run_playbook("position_reconcile.yml", inventory=inventory, envvars=env, check=True)
            dry_rows = rows()
            res = play("position_reconcile.yml", position_reconcile_actor="drill",
                       position_reconcile_reason="drill: positions disagree with the exchange")
            secs = time.monotonic() - t0
            again = play("position_reconcile.yml", position_reconcile_actor="drill", position_reconcile_reason="drill")
            adj = record(res, "position_reconcile").get("adjustments") or []
            steps.append(DrillStep("position mismatch", "QuestDB says BTCUSDT 0.1, the exchange 0.25",
                                   "--check lists it and writes nothing; one journaled row corrects it, nothing "
                                   "deleted; a 2nd run finds nothing",
                                   dry.ok and dry_rows == before_rows and res.ok and again.ok
                                   and [(a["instrument"], a["after_quantity"]) for a in adj] == [("BTCUSDT", 0.25)]
                                   and not record(again, "position_reconcile").get("adjustments")
                                   and rows() >= before_rows + 1, secs,
                                   [f"adjustments: {adj}", f"rows {before_rows} -> {rows()}",
                                    *[f.msg for f in dry.failures + res.failures + again.failures]]))

        # 4. a bad release: kill switch, rollback, restart, health with the old version, orphans listed
        t0 = time.monotonic()
        res = play("release_rollback.yml", release_rollback_to=good, release_rollback_reason="drill: bad release",
                   release_rollback_actor="drill", release_rollback_incident="DRILL-ROLLBACK")
        secs = time.monotonic() - t0
        rec = record(res, "release_rollback")
        try:
            with urllib.request.urlopen(json.loads((t.dir / "exchange.json").read_text())["health_url"],
                                        timeout=3) as resp:
                health = json.loads(resp.read())
        except OSError as exc:
            health = {"error": str(exc)}
        with Sandbox.redis_server(state).client() as c:
            switch = c.hgetall("policy:kill_switch")
        steps.append(DrillStep("release rollback", f"a bad release deployed ({bad[:10]})",
                               "kill switch engaged, tree back at the good release (bad one tagged), strategy "
                               "restarted and healthy on the old version, switch left engaged",
                               res.ok and rec.get("current") == good and rec.get("previous") == bad
                               and health.get("version") == good_version and switch.get("enabled") == "true", secs,
                               [f"kept as {rec.get('kept_as')}", f"health: {health}",
                                f"orphaned orders listed: {len(rec.get('orphaned_orders') or [])}",
                                *[f.msg for f in res.failures]]))
        reset_or_say(sandbox, inventory, steps)

        # 5. risk breach: positions and open orders on the exchange; engage, cancel, flatten, record
        t.control("positions", {"BTCUSDT": {"amt": "0.5", "entry": "62000"}, "ETHUSDT": {"amt": "-2", "entry": "2900"}})
        t.control("orders", {"symbol": "ETHUSDT", "count": 3, "price": "2000"})
        # the users' flatten command runs on the risk host (where the sandbox runs), with its interpreter
        flatten = [t.host["python"], str(Path(t.host["dir"]) / "flatten_exchange.py"), "--exchange-base", t.base,
                   "--api-key", t.api_key, "--secret-file", str(t.secret_file)]
        t0 = time.monotonic()
        res = play("risk_breach.yml", kill_switch_reason="drill: drawdown 16% > 15%", kill_switch_actor="drill",
                   kill_switch_incident="DRILL-RISK", kill_switch_flatten_command=flatten,
                   kill_switch_positions_pattern="", kill_switch_engines=[],
                   kill_switch_exchange=dict(exchange="binanceusdm", api_key=t.api_key, api_secret=t.secret,
                                             api_base=t.base, retries=1, request_timeout=5))
        secs = time.monotonic() - t0
        rec = record(res, "risk_breach")
        ex = t.control("state")
        flat = all(float(p["amt"]) == 0 for p in ex["positions"].values())
        with Sandbox.redis_server(state).client() as c:
            switch = c.hgetall("policy:kill_switch")
        steps.append(DrillStep("risk breach", "drawdown beyond the limit with 2 positions and 3 open orders",
                               "engaged, every order cancelled, flat on the exchange, P&L recorded per step, "
                               "switch left engaged",
                               res.ok and flat and ex["open_orders"] == [] and switch.get("enabled") == "true"
                               and [s["step"] for s in rec.get("steps", [])] == ["engaged", "flat"], secs,
                               [f"{s['step']}: exposure {s['exposure']} uPnL {s['unrealized_pnl']}"
                                for s in rec.get("steps", [])] + [f.msg for f in res.failures]))
        reset_or_say(sandbox, inventory, steps)
    finally:
        t.stop()
    return steps
