"""A monitoring stack beside the sandbox, on loopback: the detection and the response of
extensions/monitoring and extensions/eda for real.

    prometheus-redis-exporter        the sandbox's Redis           (Debian package)
    prometheus-postgres-exporter     the sandbox's PostgreSQL       (Debian package)
    tradeops-dr exporter             kill switch, risk, locks, QuestDB's WAL tables (src/tradeops_dr/exporter.py)
    prometheus                       the collection's rules         (Debian package)
    prometheus-alertmanager          routes to the rulebook         (Debian package; clustering off)
    ansible-rulebook                 extensions/eda/rulebooks/tradeops_dr_alerts.yml, -i inventories/local

Every server binds 127.0.0.1 on a free port; Prometheus scrapes and evaluates every
`interval` seconds (the documented production interval is 5 s; the tests use 1 s). The two
scenarios below - a drawdown breach, a Redis crash - are what `tradeops-dr drill detect`,
bench/detect.py and tests/integration/test_alerts.py inject and time: nobody runs a command,
the stack must protect or recover the system by itself. The tests inject three more through
`recovery_scenario`: PostgreSQL stopped, a QuestDB WAL table suspended, and PostgreSQL back without a
table (its restore is destructive: the run stops at its plan and people get the approval code).
bench/detect.py times the first two as well."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote
from pathlib import Path

import yaml

from .errors import SandboxError
from .paths import project_root
from .sandbox import Sandbox, free_port, wait_for

BINARIES = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "redis_exporter": "prometheus-redis-exporter",
    "postgres_exporter": "prometheus-postgres-exporter",
    "promtool": "promtool",
}


def missing() -> str | None:
    """What this machine lacks to run the stack, or None."""
    absent = [pkg for pkg in BINARIES.values() if shutil.which(pkg) is None]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install prometheus prometheus-alertmanager " \
               "prometheus-redis-exporter prometheus-postgres-exporter; scripts/setup.sh installs them)"
    if shutil.which("ansible-rulebook", path=str(Path(sys.executable).parent)) is None \
            and shutil.which("ansible-rulebook") is None:
        return "ansible-rulebook is not installed (pip install -e .[eda])"
    if shutil.which("java") is None:
        return "java is not installed (ansible-rulebook needs Debian's openjdk-17-jre-headless)"
    return None


def _get_json(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


class MonitoringStack:
    def __init__(self, root: Path, sandbox_state: Path, interval: float = 1.0, notify_urls: str = ""):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sandbox_state = Path(sandbox_state)
        self.interval = interval
        self.state = json.loads((self.sandbox_state / "sandbox.json").read_text())
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.token = secrets.token_hex(16)
        self.notify_urls = notify_urls  # apprise URLs the recoveries' incident callback tells (TRADEOPS_DR_NOTIFY_URLS)
        self.incidents = self.root / "incidents"
        # the automatic runs the guard admitted (dr_alert_state_dir of inventories/local, runs.jsonl of _alerts)
        self.guard_history = self.sandbox_state / "alerts" / "runs.jsonl"

    def forget_automatic_runs(self) -> None:
        """Start the guard's hourly count afresh: a drill or a benchmark run more than the hourly limit
        within an hour would otherwise be refused - rightly, as a flapping component."""
        self.guard_history.unlink(missing_ok=True)

    # ---- the pieces -----------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
        with open(self.root / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                                env={**os.environ, **(env or {})}, start_new_session=True)

    def _port(self, name: str) -> int:
        self.ports[name] = free_port(avoid=set(self.ports.values()))
        return self.ports[name]

    def exporter_config(self) -> dict:
        r = self.state["redis"]
        conf = dict(redis=dict(host="127.0.0.1", port=r["port"], password_file=r["password_file"]),
                    kill_switch=dict(flag_file=str(self.sandbox_state / "kill_switch.flag")),
                    risk=dict(drawdown="risk:drawdown", pnl_day_ratio="risk:pnl_day_ratio"),
                    locks=dict(dir=str(self.sandbox_state / "locks")))
        if self.state.get("questdb"):  # the WAL tables' state (QuestDB's own metrics do not say suspended)
            conf["questdb"] = dict(url=self.state["questdb"]["url"])
        return conf

    def start(self) -> "MonitoringStack":
        why = missing()
        if why:
            raise SandboxError(why)
        r = self.state["redis"]
        env_redis = {"REDIS_PASSWORD": Path(r["password_file"]).read_text().strip()}
        self._start("redis_exporter", ["prometheus-redis-exporter", "-redis.addr", f"redis://127.0.0.1:{r['port']}",
                                       "-web.listen-address", f"127.0.0.1:{self._port('redis_exporter')}"], env_redis)
        pg = self.state["postgres"]
        # the exporter reads its DSN from the environment, as Debian's unit does from /etc/default: never argv
        password = quote(Path(pg["password_file"]).read_text().strip(), safe="")
        dsn = f"postgresql://{quote(pg['user'], safe='')}:{password}@127.0.0.1:{pg['port']}/postgres?sslmode=disable"
        self._start("postgres_exporter", ["prometheus-postgres-exporter", "--web.listen-address",
                                          f"127.0.0.1:{self._port('postgres_exporter')}"], {"DATA_SOURCE_NAME": dsn})
        conf = self.root / "exporter.yml"
        conf.write_text(yaml.safe_dump(self.exporter_config()))
        self._start("exporter", [str(Path(sys.executable).parent / "tradeops-dr"), "exporter", "--config", str(conf),
                                 "--listen", f"127.0.0.1:{self._port('exporter')}"])
        # the rulebook's webhook
        token_file = self.root / "eda_token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.token)
        eda = self._port("eda")
        am_conf = dict(
            route=dict(receiver="eda", group_by=["alertname", "component", "instance"], group_wait="0s",
                       group_interval="1s", repeat_interval="5s"),
            receivers=[dict(name="eda", webhook_configs=[dict(
                url=f"http://127.0.0.1:{eda}/endpoint", send_resolved=True,
                http_config=dict(authorization=dict(type="Bearer", credentials_file=str(token_file))))])])
        (self.root / "alertmanager.yml").write_text(yaml.safe_dump(am_conf))
        am = self._port("alertmanager")
        self._start("alertmanager", ["prometheus-alertmanager", f"--config.file={self.root / 'alertmanager.yml'}",
                                     f"--storage.path={self.root / 'am-data'}",
                                     f"--web.listen-address=127.0.0.1:{am}", "--cluster.listen-address="])
        rules = project_root() / "extensions" / "monitoring" / "prometheus" / "tradeops_dr.rules.yml"
        prom_conf = {
            "global": dict(scrape_interval=f"{self.interval:g}s", evaluation_interval=f"{self.interval:g}s"),
            "rule_files": [str(rules)],
            "alerting": dict(alertmanagers=[dict(static_configs=[dict(targets=[f"127.0.0.1:{am}"])])]),
            "scrape_configs": [
                dict(job_name="redis", static_configs=[dict(targets=[f"127.0.0.1:{self.ports['redis_exporter']}"])]),
                # the exporter answers in about 1.6 s while PostgreSQL refuses connections (it tries every collector):
                # within a 1 s scrape timeout that is a failed scrape, not pg_up 0
                dict(job_name="postgres", scrape_interval=f"{max(self.interval, 3):g}s",
                     scrape_timeout=f"{max(self.interval, 3):g}s",
                     static_configs=[dict(targets=[f"127.0.0.1:{self.ports['postgres_exporter']}"])]),
                dict(job_name="tradeops_dr", static_configs=[dict(targets=[f"127.0.0.1:{self.ports['exporter']}"])]),
            ]}
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(prom_conf))
        self._start("prometheus", ["prometheus", f"--config.file={self.root / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={self.root / 'prom-data'}",
                                   f"--web.listen-address=127.0.0.1:{self._port('prometheus')}"])
        root = project_root()
        self.incidents.mkdir(exist_ok=True)
        rulebook_env = {
            "TRADEOPS_DR_EDA_PORT": str(eda), "TRADEOPS_DR_EDA_TOKEN": self.token,
            "TRADEOPS_DR_PLAYBOOKS": str(root / "playbooks"), "TRADEOPS_DR_SANDBOX": str(self.sandbox_state),
            "TRADEOPS_DR_INCIDENTS_DIR": str(self.incidents), "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
            "TRADEOPS_DR_NOTIFY_URLS": self.notify_urls,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        rulebook = shutil.which("ansible-rulebook", path=str(Path(sys.executable).parent)) or "ansible-rulebook"
        self._start("rulebook", [rulebook, "--rulebook", str(root / "extensions" / "eda" / "rulebooks" /
                                                             "tradeops_dr_alerts.yml"),
                                 "-i", str(root / "inventories" / "local"), "--env-vars",
                                 "TRADEOPS_DR_EDA_PORT,TRADEOPS_DR_EDA_TOKEN,TRADEOPS_DR_PLAYBOOKS", "-v"],
                    rulebook_env, cwd=root)
        wait_for(self._ready, 90, "the monitoring stack (Prometheus, Alertmanager, exporters, rulebook)")
        return self

    def _ready(self) -> tuple[bool, str]:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SandboxError(f"{name} exited with {proc.returncode}: "
                                   f"{(self.root / (name + '.log')).read_text(errors='replace')[-1500:]}")
        try:
            targets = _get_json(f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/targets")["data"]["activeTargets"]
            if len(targets) < 3 or any(t["health"] != "up" for t in targets):
                return False, f"Prometheus targets: {[(t['scrapeUrl'], t['health']) for t in targets]}"
            urllib.request.urlopen(f"http://127.0.0.1:{self.ports['alertmanager']}/-/ready", timeout=2).close()
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            return False, f"Prometheus or Alertmanager: {exc}"
        return self._webhook_up(), "the rulebook's webhook does not listen yet"

    def _webhook_up(self) -> bool:
        import socket

        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.ports["eda"])) == 0

    # ---- what tests and drills read -------------------------------------------------------
    def firing(self) -> list[dict]:
        """The alerts Prometheus has firing now."""
        data = _get_json(f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/alerts")["data"]["alerts"]
        return [a for a in data if a["state"] == "firing"]

    def post_alerts(self, alerts: list[dict]) -> int:
        """POST a webhook body as Alertmanager does (what a repeat send looks like); the HTTP status."""
        body = json.dumps(dict(version="4", status="firing", receiver="eda", groupKey="{}:{}", alerts=alerts)).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports['eda']}/endpoint", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status

    def records(self) -> list[dict]:
        out = []
        for path in sorted(self.incidents.rglob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("entry_type") == "incident":
                out.append(data)
        return out

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# ---- the scenarios: a fault injected, then only waiting for the system to answer it ---------------
def _until(check, timeout: float, what: str, mon: "MonitoringStack") -> float:
    """Seconds (monotonic clock) at which check() first held; SandboxError naming what never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    firing = []
    try:
        firing = [a["labels"]["alertname"] for a in mon.firing()]
    except (OSError, ValueError):
        pass
    raise SandboxError(f"{what} not seen within {timeout:g} s (firing: {firing}); the rulebook's log ends: "
                       f"{mon.log('rulebook')[-1500:]}")


def _alert_firing(mon: "MonitoringStack", name: str) -> bool:
    return any(a["labels"]["alertname"] == name for a in mon.firing())


def _record_of(mon: "MonitoringStack", name: str, statuses=None, other_than=()) -> dict | None:
    for rec in mon.records():
        if (rec.get("trigger") or {}).get("name") == name and (statuses is None or rec["status"] in statuses) \
                and rec["id"] not in other_than:
            return rec
    return None


def drawdown_breach(sb: Sandbox, mon: "MonitoringStack", timeout: float = 120) -> dict:
    """risk:drawdown written at 20 % (where the risk engine writes it); the seconds to the alert
    firing and to the switch engaged by the rulebook's run, the switch as it holds then, the record.
    The switch stays engaged (a person resets it); risk:drawdown is put back."""
    with Sandbox.redis_server(sb.load()).client() as r:
        t0 = time.monotonic()
        r.set("risk:drawdown", "0.2")
        try:
            firing = _until(lambda: _alert_firing(mon, "TradeopsDrDrawdownBreach"), timeout,
                            "TradeopsDrDrawdownBreach firing", mon)
            engaged = _until(lambda: r.hget("policy:kill_switch", "enabled") == "true", timeout,
                             "the kill switch engaged", mon)
            switch = r.hgetall("policy:kill_switch")
        finally:
            r.set("risk:drawdown", "0.01")
    _until(lambda: _record_of(mon, "TradeopsDrDrawdownBreach"), 60, "the run's incident record", mon)
    return dict(firing=firing - t0, engaged=engaged - t0, switch=switch,
                record=_record_of(mon, "TradeopsDrDrawdownBreach"))


FINAL = ("recovered", "failed", "approval needed", "not admitted", "bad input")


def recovery_scenario(mon: "MonitoringStack", alertname: str, inject, timeout: float = 300) -> dict:
    """inject() (a fault, as it happens); the seconds to `alertname` firing, to the guarded recovery
    admitted and to its incident record in a final status, and that record (not one of an earlier run)."""
    runs = mon.guard_history
    earlier = {rec["id"] for rec in mon.records()}
    admitted = runs.read_text().count(alertname) if runs.exists() else 0
    t0 = time.monotonic()
    inject()
    firing = _until(lambda: _alert_firing(mon, alertname), timeout, f"{alertname} firing", mon)
    started = _until(lambda: runs.exists() and runs.read_text().count(alertname) > admitted, timeout,
                     "the recovery admitted by the guard", mon)
    done = _until(lambda: _record_of(mon, alertname, FINAL, earlier), timeout, "the recovery's incident record", mon)
    return dict(firing=firing - t0, started=started - t0, healthy=done - t0,
                record=_record_of(mon, alertname, FINAL, earlier))


def redis_crash(sb: Sandbox, mon: "MonitoringStack", timeout: float = 300) -> dict:
    """kill -9 of the sandbox's Redis; the seconds to the alert firing, to the guarded recovery
    admitted and to its record saying recovered (or another final status), and the record."""
    from . import faults

    got = recovery_scenario(mon, "TradeopsDrRedisDown", lambda: faults.kill_redis(sb, sb.load()), timeout)
    return dict(got, answering=Sandbox.redis_server(sb.load()).ping()[0])
