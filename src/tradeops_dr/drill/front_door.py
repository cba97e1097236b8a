"""Drills of the front door: everything broken at once through full_recovery.yml, and the alerts
that start a recovery with nobody running a command (issue 28)."""

from __future__ import annotations

import datetime
import importlib.util
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .. import errors, faults, monitoring
from ..api import run_playbook
from ..recovery import recover, recover_and_approve
from ..sandbox import Sandbox
from .steps import DrillStep, Steps, operator_resets_the_switch, stream_lengths


def detect_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """Issue 28 on the sandbox: the monitoring stack beside it (src/tradeops_dr/monitoring.py: the
    exporters, Prometheus and Alertmanager at the documented 5 s, ansible-rulebook with the
    collection's rulebook on inventories/local); a drawdown breach and a Redis crash, answered with
    nobody running a command. Only the sandbox's own inventory: the stack watches the sandbox."""
    if monitoring.missing() or inventory != "local":
        return []
    steps = Steps(on_step)
    state = sandbox.up()
    expected = state["seeded"]["redis"]["streams"]
    root = sandbox.state_dir / "monitoring"
    shutil.rmtree(root, ignore_errors=True)
    mon = monitoring.MonitoringStack(root, sandbox.state_dir, interval=5.0)
    mon.forget_automatic_runs()  # the sandbox's own state: each drill starts the guard's count afresh
    try:
        mon.start()
        try:
            got = monitoring.drawdown_breach(sandbox, mon)
            switch, rec = got["switch"], got["record"] or {}
            ok = switch.get("actor") == "ansible-rulebook" and (rec.get("trigger") or {}).get("admitted") is True
            steps.append(DrillStep("detect drawdown", "risk:drawdown set to 20 %",
                                   "TradeopsDrDrawdownBreach fires, the rulebook engages the kill switch",
                                   ok and operator_resets_the_switch(sandbox).ok, got["engaged"],
                                   [f"alert firing after {got['firing']:.1f}s", f"switch: {switch.get('reason')}",
                                    f"incident {rec.get('id')}"]))
        except errors.SandboxError as exc:
            steps.append(DrillStep("detect drawdown", "risk:drawdown set to 20 %", "the switch engaged", False, 0.0,
                                   [str(exc)[-600:]]))
        srv = Sandbox.redis_server(state)
        before = stream_lengths(srv, expected)
        try:
            got = monitoring.redis_crash(sandbox, mon)
            rec = got["record"] or {}
            lengths = stream_lengths(srv, expected) if got["answering"] else {}
            steps.append(DrillStep("detect redis", "kill -9 redis-server",
                                   "TradeopsDrRedisDown fires, the guarded recovery restarts it, every stream back",
                                   rec.get("status") == "recovered" and lengths == before
                                   and operator_resets_the_switch(sandbox).ok, got["healthy"],
                                   [f"alert firing after {got['firing']:.1f}s, recovery admitted after "
                                    f"{got['started']:.1f}s", f"record {rec.get('id')}: {rec.get('status')}",
                                    f"streams={lengths}"]))
        except errors.SandboxError as exc:
            steps.append(DrillStep("detect redis", "kill -9 redis-server", "recovered by the rulebook's run", False,
                                   0.0, [str(exc)[-600:]]))
    except errors.SandboxError as exc:  # the stack itself did not start: neither scenario could run
        for name in ("detect drawdown", "detect redis"):
            steps.append(DrillStep(name, "-", "the monitoring stack starts", False, 0.0, [str(exc)[-600:]]))
    finally:
        mon.stop()
    return steps


# The full drill's escalation ladder: each level after this many seconds (production: half the RTO of what broke)
LADDER_SECONDS = 5.0
AUDIENCES = ("ops", "risk", "stakeholders", "level2", "level3")


class _Inbox(BaseHTTPRequestHandler):
    """STAND-IN for the people's notification service (Slack, e-mail) of runbook 004 section 6: one path per
    audience on 127.0.0.1, every POST apprise's json:// sends kept with the time it arrived."""

    got: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).got.append((time.time(), self.path.strip("/"), json.loads(body or b"{}")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_a):
        pass


class Inbox:
    """The notification catcher of the full drill: started on a free loopback port, apprise URLs per audience."""

    def __init__(self):
        handler = type("Inbox", (_Inbox,), {"got": []})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.got = handler.got
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def urls(self) -> str:
        port = self.server.server_address[1]
        return " ".join(f"{a}=json://127.0.0.1:{port}/{a}" for a in AUDIENCES)

    def heard(self, audience: str) -> list[tuple[float, str]]:
        """(time, stage) of what the audience was told, in order (the stage: the title after 'INCIDENT: ')."""
        return [(t, body.get("title", "").split(": ", 1)[-1]) for t, path, body in self.got if path == audience]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _escalation_step(inbox: Inbox, first, t0: float) -> DrillStep:
    """Who was told what, and when, during the first run (runbook 004 section 6, runbook 002's ladder)."""
    rec = {}
    if first.incident_record:
        path = Path(first.incident_record).with_suffix(".json")
        rec = json.loads(path.read_text()) if path.exists() else {}
    ended = datetime.datetime.fromisoformat(rec["ended"].replace("Z", "+00:00")).timestamp() if rec.get("ended") else 0
    heard = {a: inbox.heard(a) for a in AUDIENCES}
    stages = {a: [stage for _t, stage in got] for a, got in heard.items()}
    opened = next((t for t, stage in heard["ops"] if stage == "opened"), None)
    level2 = next((t for t, stage in heard["level2"] if stage == "escalated to level2"), None)
    level3 = next((t for t, stage in heard["level3"] if stage == "escalated to level3"), None)
    ladder = [e.get("level") for e in rec.get("escalations") or []]
    ok = (opened is not None and level2 is not None and level3 is not None and opened < level2 < level3
          and level3 <= ended + 1 and ladder[:2] == ["level2", "level3"]
          and "kill switch engaged" in stages["risk"] and "approval needed" in stages["ops"]
          # the stakeholders hear the incident and its end, a summary - not the switch's technical stages
          and "opened" in stages["stakeholders"] and "kill switch engaged" not in stages["stakeholders"])
    secs = (level2 - opened) if opened is not None and level2 is not None else time.monotonic() - t0
    return DrillStep("escalation", "the recovery of the full drill takes longer than the drill's ladder "
                     f"({LADDER_SECONDS:g} s a level)",
                     "ops, risk and stakeholders told as the stages happen; level 2, then level 3, told while the "
                     "recovery still ran; every notification and escalation in the record", ok, secs,
                     [f"{a}: {', '.join(stages[a]) or 'nothing'}" for a in AUDIENCES]
                     + [f"record escalations: {ladder}", f"level2 {level2 - opened:.1f}s and level3 {level3 - opened:.1f}s "
                        "after the incident opened" if opened and level2 and level3 else "the ladder did not complete"])


def full_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """The front door: every failure the sandbox can have at once (Redis killed, a table dropped,
    a WAL table suspended with writes waiting, the model file corrupted, a config file cut short, the PMS
    killed), recovered by
    playbooks/full_recovery.yml - a run, then the approval of the code it printed for what waits
    (the database restore); a second run must change nothing; then the operator resets the
    kill switch the recovery left engaged. With apprise installed, the people are a notification catcher on
    loopback (one path per audience and escalation level) and the ladder is LADDER_SECONDS a level: the
    escalation step shows who was told what, and when."""

    state = sandbox.up()
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    steps = Steps(on_step)
    backup = run_playbook("backup.yml", inventory=inventory, envvars=env)  # what a restore needs: a verified backup
    names = [n for n in faults.FAULTS if n not in faults.OPTIONAL or state.get(n)]
    done = faults.inject(sandbox, names)
    incident = time.strftime("DRILL-%Y%m%dT%H%M%SZ", time.gmtime())
    inbox = Inbox() if importlib.util.find_spec("apprise") else None
    told = dict(env, TRADEOPS_DR_NOTIFY_URLS=inbox.urls(), TRADEOPS_DR_ESCALATE_SECONDS=str(LADDER_SECONDS)) if inbox \
        else env
    t0 = time.monotonic()
    # a person's flow: the run protects capital and recovers what needs no approval, then the approval of
    # exactly what it said still waits (its code) runs the destructive steps
    try:
        first, res = recover_and_approve("full", inventory=inventory, incident=incident, envvars=told)
    finally:
        if inbox:
            time.sleep(1)  # the last notifications of the approved run are sent by a thread the run does not wait for
            inbox.stop()
    secs = time.monotonic() - t0
    # each component's outcome from the run that recovered it (the first, or the approved one)
    by = {c.component: c for c in first.components}
    by.update({c.component: c for c in res.components if res is not first and c.before != "healthy"})
    ok = backup.ok and res.status == "recovered" and all(
        by.get(n) and (by[n].before, by[n].after, by[n].outcome) == ("broken", "healthy", "recovered") for n in names)
    details = [f"{n}: {by[n].outcome} in {by[n].seconds:.1f}s (runbook RTO {by[n].rto_seconds}s)" for n in names if n in by]
    if "kill_switch" in by:
        details.append(f"kill switch: {by['kill_switch'].outcome} ({by['kill_switch'].message})")
    details += [f"incident record {res.incident_record}"] + ([res.reason] if not ok else [])
    if not inbox:
        details.append("escalation not drilled: apprise is not installed (pip install 'tradeops-dr[notify]')")
    steps.append(DrillStep("full", "; ".join(done.values()),
                           "full_recovery.yml: kill switch first, every component recovered, record written", ok, secs,
                           details))
    if inbox:
        steps.append(_escalation_step(inbox, first, t0))
    t0 = time.monotonic()
    again = recover("full", inventory=inventory, envvars=env)
    secs = time.monotonic() - t0
    steps.append(DrillStep("full again", "nothing", "a second run finds everything healthy and changes nothing",
                           again.status == "healthy" and again.run is not None and again.run.changed == 0, secs,
                           [] if again.status == "healthy" else [again.reason]))
    # the recovery leaves the switch engaged: the operator lifts it once the platform is verified
    reset = operator_resets_the_switch(sandbox, inventory)
    if not reset.ok:
        steps.append(DrillStep("switch reset", "-", "the operator resets the kill switch", False, reset.duration,
                               [f.msg for f in reset.failures]))
    return steps
