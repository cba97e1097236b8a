"""One call recovers everything: playbooks/full_recovery.yml through ansible-runner, its outcome
as one object, and the same run as a stream of progress events.

    from tradeops_dr import recover
    result = recover("full", inventory="inventories/local", approve="INC-42")
    print(result.status, result.exit_code, result.incident_record)
    for c in result.components:
        print(c.component, c.host, c.before, "->", c.after, c.outcome, c.seconds)

    async for event in recover_events("full", inventory="inventories/local"):
        print(event)              # {"kind": "task", "stage", "component", "host", "task", "status", "elapsed"}
                                  # ... and last {"kind": "result", "result": RecoveryResult}
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field

from .api import Failure, RunResult, run_playbook

# what `recover <scenario>` may name: the components of playbooks/full_recovery/components.yml
SCENARIOS = ("full", "redis", "postgres", "questdb", "model", "config", "kill_switch")
# a data store trading depends on brings the kill switch along (runbook 004: protect capital)
WITH_KILL_SWITCH = ("redis", "postgres")
ROLE_COMPONENT = {"redis_restart": "redis", "timescale_restore": "postgres", "questdb_repair": "questdb",
                  "model_rollback": "model", "config_rollback": "config", "kill_switch": "kill_switch",
                  "pg_backup": "postgres"}

# exit codes of `tradeops-dr recover`, documented in the README
EXIT_CODES = {
    "recovered": 0, "healthy": 0, "planned": 0, "diagnosed": 0,
    "failed": 1, "broken": 1, "stopped": 1,
    "bad input": 2,
    "refused": 3, "approval needed": 3,
}


@dataclass
class ComponentOutcome:
    component: str
    host: str
    before: str
    after: str | None
    outcome: str
    seconds: float
    rto_seconds: int
    message: str = ""


@dataclass
class RecoveryResult:
    status: str  # recovered, healthy, planned, diagnosed, broken, approval needed, failed, refused, stopped, bad input
    reason: str
    incident: str | None
    classification: str
    recovery_seconds: float
    components: list[ComponentOutcome] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # every failed task, rescued ones included
    incident_record: str | None = None
    run: RunResult | None = None
    approval_code: str = ""  # the code of this run's plan: given back as approve=, it lets those steps run once
    approval_refused: str = ""  # why an approval that was given did not approve this plan

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_dict(self) -> dict:
        return dict(status=self.status, exit_code=self.exit_code, reason=self.reason, incident=self.incident,
                    classification=self.classification, recovery_seconds=self.recovery_seconds,
                    components=[c.__dict__ for c in self.components],
                    failures=[f.__dict__ for f in self.failures], incident_record=self.incident_record,
                    approval_code=self.approval_code, approval_refused=self.approval_refused,
                    artifact_dir=self.run.artifact_dir if self.run else None)


def _extravars(scenario: str, approve: str | None, incident: str | None, extravars: dict | None,
               approver: str | None = None) -> dict:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    extra = dict(extravars or {})
    extra["dr_interactive"] = False  # the runner has no terminal; the CLI asks before it runs again
    if scenario != "full":
        extra["dr_components"] = [scenario] + (["kill_switch"] if scenario in WITH_KILL_SWITCH else [])
    if approve:
        if not incident:
            raise ValueError("an approval code approves the plan of one incident: give the incident id with it")
        extra["dr_approve"] = approve
    if incident:
        extra["dr_incident_id"] = incident
    if approver:
        extra["dr_approver"] = approver
    return extra


def result_of(run: RunResult) -> RecoveryResult:
    rec = run.data.get("dr_recovery") or {}
    if not rec:
        # the run stopped in 'Check the request' (bad input), or ansible-playbook could not start
        bad = any(f.task.startswith("Refuse") for f in run.failures) or not run.stats
        msg = "; ".join(f.msg for f in run.failures) or "the run ended before its summary"
        incident = None
        if run.incident_record and os.path.exists(run.incident_record[:-3] + ".json"):
            with open(run.incident_record[:-3] + ".json") as handle:
                incident = json.load(handle).get("id")
        return RecoveryResult(status="bad input" if bad else "failed", reason=msg, incident=incident, classification="none",
                              recovery_seconds=round(run.duration, 2), failures=run.failures,
                              incident_record=run.incident_record, run=run)
    comps = [ComponentOutcome(component=name, host=host, before=e.get("before"), after=e.get("after"),
                              outcome=e.get("outcome"), seconds=float(e.get("seconds") or 0),
                              rto_seconds=int(e.get("rto_seconds") or 0), message=e.get("message") or "")
             for name, per_host in sorted((rec.get("components") or {}).items())
             for host, e in sorted(per_host.items())]
    return RecoveryResult(status=rec.get("status", "failed"), reason=rec.get("reason", ""), incident=rec.get("incident"),
                          classification=rec.get("classification", "none"),
                          recovery_seconds=float(rec.get("recovery_seconds") or run.duration), components=comps,
                          failures=[f for f in run.failures if f.task != "Fail unless every component holds"],
                          incident_record=run.incident_record, run=run, approval_code=rec.get("approval_code") or "",
                          approval_refused=rec.get("approval_refused") or "")


def recover(scenario: str = "full", inventory=None, check: bool = False, limit: str | None = None,
            approve: str | None = None, incident: str | None = None, tags: str | None = None,
            extravars: dict | None = None, envvars: dict | None = None, event_handler=None,
            approver: str | None = None) -> RecoveryResult:
    """Run playbooks/full_recovery.yml (all components, or one scenario) and read its outcome.
    Never raises for a failed recovery: read .status, .exit_code, .failures.

    approve: the approval code a plan of this incident printed (RecoveryResult.approval_code of a run
    with check=True or without approval); it needs the same incident. Raises ValueError for bad input."""
    run = run_playbook("full_recovery.yml", inventory=inventory,
                       extravars=_extravars(scenario, approve, incident, extravars, approver),
                       limit=limit, tags=tags, check=check, envvars=envvars, event_handler=event_handler)
    return result_of(run)


def recover_and_approve(scenario: str = "full", inventory=None, incident: str | None = None, **kwargs):
    """For callers that approve by policy (drills, benchmarks, rehearsals), the operator's own flow: a run
    without approval (it protects capital and recovers what needs no approval), then - when it ends
    'approval needed' - a second run approving exactly the code the first one printed for what still waits.
    Returns (first, final); final is first when no approval was needed."""
    incident = incident or time.strftime("INC-%Y%m%dT%H%M%SZ", time.gmtime())
    first = recover(scenario, inventory=inventory, incident=incident, **kwargs)
    if first.status != "approval needed" or not first.approval_code:
        return first, first
    return first, recover(scenario, inventory=inventory, incident=incident, approve=first.approval_code, **kwargs)


def progress_event(ev: dict, started: float) -> dict | None:
    """A runner event as a progress event, or None for the ones a person does not need."""
    kind = ev.get("event", "")
    ed = ev.get("event_data") or {}
    if kind == "playbook_on_play_start":
        return dict(kind="stage", stage=ed.get("play", ""), elapsed=round(time.monotonic() - started, 2))
    if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_start"):
        if kind == "runner_on_failed" and ed.get("ignore_errors"):
            status = "ignored"
        else:
            status = dict(runner_on_ok="changed" if (ed.get("res") or {}).get("changed") else "ok",
                          runner_on_failed="failed", runner_on_unreachable="unreachable",
                          runner_on_start="running")[kind]
        role = ed.get("role", "")
        return dict(kind="task", stage=ed.get("play", ""), component=ROLE_COMPONENT.get(role, ""), role=role,
                    host=ed.get("host", ""), task=ed.get("task", ""), status=status,
                    elapsed=round(time.monotonic() - started, 2))
    return None


async def recover_events(scenario: str = "full", inventory=None, **kw):
    """The same run as recover(), as an async stream: progress events while it runs, then
    {"kind": "result", "result": RecoveryResult}."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    started = time.monotonic()
    done = object()

    def handler(ev):
        pe = progress_event(ev, started)
        if pe is not None:
            loop.call_soon_threadsafe(queue.put_nowait, pe)
        return True

    box: dict = {}

    def work():
        try:
            box["result"] = recover(scenario, inventory, event_handler=handler, **kw)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer below
            box["error"] = exc
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    thread = threading.Thread(target=work, name="tradeops-dr-recover", daemon=True)
    thread.start()
    while True:
        item = await queue.get()
        if item is done:
            break
        yield item
    thread.join()
    if "error" in box:
        raise box["error"]
    yield dict(kind="result", result=box["result"])
