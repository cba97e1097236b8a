"""The pipeline drill (runbook 000 scenario 5): a real Dagster (webserver and daemon on 127.0.0.1, under the
sandbox's state folder) running the stand-in morning pack of the users; a run fails at its build step, then the
orchestrator goes down. playbooks/pipeline_recovery.yml - plan first (--check), then the run, then a second run.

The orchestrator is the drill's own, not a part of the sandbox (the sandbox's inventory holds what the sandbox runs):
the drill writes an inventory of its own for it and stops it at the end."""

from __future__ import annotations

import datetime
import sys
import time

import yaml

from .. import run_playbook
from ..sandbox import Sandbox
from ..sandbox.orchestrators import JOB, DagsterServer
from .steps import DrillStep, Steps


def _record(res) -> dict:
    return next(iter((res.data.get("pipeline_recovery") or {}).values()), {})


def pipeline_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    del inventory  # the orchestrator is the drill's own, with an inventory of its own (see above)
    steps = Steps(on_step)
    root = sandbox.state_dir / "pipeline-drill"
    dagster = DagsterServer(root)
    try:
        dagster.start()
        fresh = [dict(name="morning pack", path=str(dagster.work / "morning_pack_*.json"), date_from="name", max_age=0),
                 dict(name="agent signals", path=str(dagster.work / "signals.json"), max_age=0)]
        hostvars = dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                        pipeline_recovery_orchestrator=dict(backend="dagster", url=dagster.url),
                        pipeline_recovery_jobs=[JOB], pipeline_recovery_services=dagster.services(),
                        pipeline_recovery_freshness=fresh, pipeline_recovery_ready_timeout=60,
                        dr_lock_dir=str(root / "locks"))
        inv = root / "inventory.yml"
        inv.write_text(yaml.safe_dump({"all": {"children": {"pipeline_servers": {"hosts": {"drill-pipeline": hostvars}}}}}))

        # the morning pack job fails at build_pack (its feed late), then the orchestrator goes down
        dagster.fail_next_run()
        failed = dagster.launch()
        dagster.wait_end(failed)
        for old in dagster.work.glob("morning_pack_*.json"):
            old.unlink()
        dagster.kill("daemon")
        dagster.kill("webserver")
        loads = dagster.loads()

        incident = time.strftime("DRILL-%Y%m%d%H%M%S")
        planned = run_playbook("pipeline_recovery.yml", inventory=str(inv), check=True)
        still_down = not dagster.ready()[0]
        # the recovery's time (no approval is needed here: the plan is the drill's look, not a step of the recovery)
        t0 = time.monotonic()
        done = run_playbook("pipeline_recovery.yml", inventory=str(inv), extravars=dict(dr_incident_id=incident))
        secs = time.monotonic() - t0
        again = run_playbook("pipeline_recovery.yml", inventory=str(inv))
        rec = _record(done)
        newest = dagster.runs()[0] if dagster.ready()[0] else {}
        today = dagster.work / f"morning_pack_{datetime.date.today().isoformat()}.json"
        history = root / "locks" / "history.jsonl"
        locked = history.exists() and incident in history.read_text() and not list((root / "locks").glob("*.lock.json"))
        ok = (planned.ok and still_down and done.ok and again.ok and again.changed == 0 and locked
              and rec.get("restarted") == ["dagster-webserver", "dagster-daemon"] and len(rec.get("reruns") or []) == 1
              and newest.get("status") == "SUCCESS" and newest.get("parentRunId") == failed
              and dagster.loads() == loads and today.exists())
        steps.append(DrillStep(
            "pipeline rerun", f"run {failed[:8]} of {JOB} failed at build_pack, then Dagster's webserver and daemon "
            "killed; today's morning pack missing",
            "--check changes nothing; under the host's lock the orchestrator restarted and waited for through its "
            "API, the failed run re-executed from its failure (load_prices not run again); today's morning pack and "
            "signals fresh; the lock given back; a 2nd run changes nothing", ok, secs,
            [f"restarted: {', '.join(rec.get('restarted') or []) or 'nothing'}",
             *(rec.get("reruns") or ["no re-run"]),
             f"after: {(rec.get('diagnosis') or {}).get('evidence', '?')}",
             f"--check left it down: {still_down}; lock taken for {incident} and given back: {locked}; "
             f"load_prices ran {dagster.loads() - loads} more time(s); second run changed={again.changed}",
             *[f.msg for f in planned.failures + done.failures + again.failures]]))
    finally:
        dagster.stop()
    return steps
