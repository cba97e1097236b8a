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
import contextlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field

from . import capital, catalog, errors
from .api import Failure, RunResult, inventory_path, run_playbook, runs_dir
from .paths import module_utils

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
    # what `recover <scenario>` may name: full, or a component of the catalog
    if scenario not in catalog.scenarios():
        raise errors.BadInput(f"unknown scenario {scenario!r}; one of {', '.join(catalog.scenarios())}")
    extra = dict(extravars or {})
    extra["dr_interactive"] = False  # the runner has no terminal: a caller asks through recover(ask=...)
    if scenario != "full":
        # a component trading depends on brings the kill switch along (runbook 004: protect capital)
        extra["dr_components"] = [scenario] + (list(catalog.capital_components())
                                               if scenario in catalog.protect_capital() else [])
    if approve:
        if not incident:
            raise errors.BadInput("an approval code approves the plan of one incident: give the incident id with it")
        extra["dr_approve"] = approve
    if incident:
        extra["dr_incident_id"] = incident
    if approver:
        extra["dr_approver"] = approver
    return extra


def result_of(run: RunResult) -> RecoveryResult:
    rec = run.data.get("dr_recovery") or {}
    if not rec:
        # ansible-playbook could not start (an inventory or playbook it cannot parse: bad input), or the run ended
        # before its summary
        msg = "; ".join(f.msg for f in run.failures) or "the run ended before its summary"
        return RecoveryResult(status="failed" if run.stats else "bad input", reason=msg,
                              incident=run.record.get("id"), classification="none",
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
                          # every failed task but the verdict, which restates the record's status and reason
                          failures=[f for f in run.failures
                                    if f.msg != f"{rec.get('status', '').upper()}: {rec.get('reason', '')}"],
                          incident_record=run.incident_record, run=run, approval_code=rec.get("approval_code") or "",
                          approval_refused=rec.get("approval_refused") or "")


def _write_answer(path: str, answer: str) -> None:
    """The answer appears at once and whole (the playbook waits for the path): written through the collection's
    atomic file (a private temp file in the same folder, renamed)."""
    module_utils("_manifest").write_text_atomic(path, answer + "\n", mode=0o600)


def _asking(ask, answer_file: str, event_handler):
    """An event handler that asks `ask` once, when the run prints its approval request, and writes the answer."""
    asked: list = []

    def handler(ev: dict) -> bool:
        if event_handler is not None:
            event_handler(ev)
        res = (ev.get("event_data") or {}).get("res") or {}
        request = res.get("dr_approval_request") if ev.get("event") == "runner_on_ok" else None
        if isinstance(request, dict) and request.get("answer_file") == answer_file and not asked:
            asked.append(request)
            answer = ""
            try:
                answer = str(ask(dict(incident=request.get("incident"), steps=list(request.get("steps") or []),
                                      code=request.get("code"))) or "").strip()
            finally:  # an ask that raised: the steps stay planned, and the run goes on at once
                _write_answer(answer_file, answer)
        return True

    return handler


def recover(scenario: str = "full", inventory=None, check: bool = False, limit: str | None = None,
            approve: str | None = None, incident: str | None = None, tags: str | None = None,
            extravars: dict | None = None, envvars: dict | None = None, event_handler=None,
            approver: str | None = None, ask=None) -> RecoveryResult:
    """Run playbooks/full_recovery.yml (all components, or one scenario) and read its outcome.
    Never raises for a failed recovery: read .status, .exit_code, .failures.

    approve: the approval code a plan of this incident printed (RecoveryResult.approval_code of a run
    with check=True or without approval); it needs the same incident. Raises errors.BadInput (a
    ValueError) for bad input.

    ask: for a caller with a person at hand (the CLI on a terminal): ask(request) is called once, during
    the run, when its plan has destructive steps and no approval was given; request is {incident,
    steps, code}. What it returns is the approval: the run checks it as it checks approve= (this plan's
    code, not spent, a second approver where required) and goes on - one run, one lock, one diagnosis."""
    started, extra = time.perf_counter(), _extravars(scenario, approve, incident, extravars, approver)
    extra.setdefault("dr_command_started", time.time())  # the run's seconds count from the command's start
    if not check and _recovers(tags):
        _front_door(extra, inventory, limit, incident, envvars, started)
    answer_dir = None
    if ask is not None and not approve and not check:
        answer_dir = tempfile.mkdtemp(prefix="answer-", dir=runs_dir())
        extra["dr_answer_file"] = os.path.join(answer_dir, "answer")
        event_handler = _asking(ask, extra["dr_answer_file"], event_handler)
    try:
        run = run_playbook("full_recovery.yml", inventory=inventory, extravars=extra,
                           limit=limit, tags=tags, check=check, envvars=envvars, event_handler=event_handler)
    finally:
        if answer_dir:
            shutil.rmtree(answer_dir, ignore_errors=True)
    return result_of(run)


def new_incident_id() -> str:
    """INC-<UTC time>, as the playbook and the incident callback name an incident nobody named."""
    return time.strftime("INC-%Y%m%dT%H%M%SZ", time.gmtime())


def _recovers(tags: str | None) -> bool:
    """Whether a run with these tags may change anything (--tags diagnose only reads)."""
    return not tags or bool({"recover", "all"} & {t.strip() for t in str(tags).split(",")})


@contextlib.contextmanager
def _environment(envvars: dict | None):
    """os.environ with the run's environment variables for the while (the inventory's templates read them,
    e.g. TRADEOPS_DR_SANDBOX), as ansible-playbook will see them."""
    saved = {k: os.environ.get(k) for k in (envvars or {})}
    os.environ.update({k: str(v) for k, v in (envvars or {}).items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _front_door(extra: dict, inventory, limit: str | None, incident: str | None, envvars: dict | None,
                started: float) -> None:
    """Protect capital before ansible-playbook starts (capital.protect): what it probed and did goes to the
    playbook as dr_front_door; when it engaged the switch, under the incident the run then carries."""
    env = dict(envvars or {})
    incident = incident or env.get("TRADEOPS_DR_INCIDENT_ID") or os.environ.get("TRADEOPS_DR_INCIDENT_ID") \
        or new_incident_id()
    with _environment(env):
        front = capital.protect(inventory_path(inventory), limit, extra, incident, started=started)
    if front is None:
        return
    extra["dr_front_door"] = front
    if front.get("engaged") or front.get("engage_failed"):
        extra["dr_incident_id"] = incident


def recover_and_approve(scenario: str = "full", inventory=None, incident: str | None = None, **kwargs):
    """For callers that approve by policy (drills, benchmarks, rehearsals), the operator's own flow: a run
    without approval (it protects capital and recovers what needs no approval), then - when it ends
    'approval needed' - a second run approving exactly the code the first one printed for what still waits.
    Returns (first, final); final is first when no approval was needed."""
    incident = incident or new_incident_id()
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
        return dict(kind="task", stage=ed.get("play", ""), component=catalog.role_component().get(role, ""), role=role,
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
