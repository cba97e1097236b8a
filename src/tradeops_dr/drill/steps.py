"""What every drill shares: a step with its evidence and objective, the list that reports each step as
it ends, the printed table, the operator's reset of the kill switch, and a component drilled
through the front door."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from ..api import RunResult, run_playbook
from ..recovery import recover
from ..sandbox import RedisServer, Sandbox


@dataclass
class DrillStep:
    scenario: str
    injected: str
    expected: str
    passed: bool  # the evidence: the recovery did what it must
    seconds: float
    details: list[str] = field(default_factory=list)
    objective: float | None = None  # seconds, from the runbooks (drill_history.objectives)

    @property
    def met(self) -> bool:
        return self.objective is None or self.seconds <= self.objective

    @property
    def ok(self) -> bool:
        return self.passed and self.met


def stream_order(stream_id: str) -> tuple:
    """A Redis stream entry id (<ms>-<seq>) as something to compare: which of two entries came first."""
    return tuple(map(int, stream_id.split("-")))


def redis_record(result: RunResult) -> dict:
    return next(iter((result.data.get("redis_recovery") or {}).values()), {})


def stream_lengths(srv: RedisServer, names) -> dict:
    with srv.client() as c:
        return {n: c.xlen(n) for n in names}


class Steps(list):
    """The steps of a drill; each one is handed to `on_step` the moment it is known (progress)."""

    def __init__(self, on_step=None):
        super().__init__()
        self.on_step = on_step
        self.objectives = getattr(on_step, "objectives", {})  # a Printer carries them

    def append(self, step: DrillStep) -> None:
        if step.objective is None and step.scenario in self.objectives:
            step.objective = float(self.objectives[step.scenario])
        if not step.met:
            step.details.append(f"MISSED its objective: {step.seconds:.1f}s > {step.objective:g}s (runbook RTO)")
        super().append(step)
        if self.on_step:
            self.on_step(step)


HEADER = ("Failure drills (sandbox: real Redis, PostgreSQL/TimescaleDB, QuestDB; stand-ins for the engines, the "
          "inference API and the PMS)")


def print_header(missing: dict | None = None) -> None:
    """The header; the parts this sandbox left out (and so its inventory) are named once, here."""
    print(HEADER)
    for name, why in sorted((missing or {}).items()):
        print(f"not part of this sandbox (nor of its inventory): {name} - {why}")
    print(f"{'scenario':<15} {'result':<6} {'recovery':>9}  injected -> expected", flush=True)


def print_step(s: DrillStep) -> None:
    print(f"{s.scenario:<15} {'PASS' if s.ok else 'FAIL':<6} {s.seconds:8.2f}s  {s.injected} -> {s.expected}")
    for d in s.details:
        print(f"{'':<33}{d}")
    sys.stdout.flush()


class Printer:
    """Prints each step as it ends; carries the objectives the steps are scored against."""

    def __init__(self, objectives: dict):
        self.objectives = objectives

    def __call__(self, step: DrillStep) -> None:
        print_step(step)


def print_report(steps: list[DrillStep]) -> None:
    print()
    print_header()
    for s in steps:
        print_step(s)
    print(f"\n{sum(s.ok for s in steps)} passed, {sum(not s.ok for s in steps)} failed")


def operator_resets_the_switch(sandbox: Sandbox, inventory: str = "local") -> RunResult:
    """What the operator does once the platform is verified: reset the switch, confirming the
    incident it was engaged for, and remove the local flag file a fail-closed engage wrote."""
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    status = run_playbook("kill_switch.yml", inventory=inventory, envvars=env, extravars=dict(kill_switch_action="status"))
    switch = next(iter((status.data.get("kill_switch") or {}).values()), {}).get("switch") or {}
    res = status
    if switch.get("enabled"):
        res = run_playbook("kill_switch.yml", inventory=inventory, envvars=env, extravars=dict(
            kill_switch_action="reset", kill_switch_confirm=switch.get("incident") or "RESET", kill_switch_actor="drill",
            kill_switch_reason="recovery verified"))
    if res.ok:
        (sandbox.state_dir / "kill_switch.flag").unlink(missing_ok=True)
    return res


def component_drill(sandbox: Sandbox, inventory: str, on_step, cases) -> list[DrillStep]:
    """Each case: (scenario, inject(sandbox, state) -> what was done, component, expected); the
    recovery is `recover(component)`, the front door narrowed to it, and the evidence is its
    own diagnosis after the run (plus the checks of the role)."""

    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    steps = Steps(on_step)
    for scenario, inject, component, expected in cases:
        state = sandbox.up()
        done = inject(sandbox, state)
        t0 = time.monotonic()
        res = recover(component, inventory=inventory, envvars=env)
        secs = time.monotonic() - t0
        c = next((c for c in res.components if c.component == component), None)
        ok = res.status == "recovered" and c is not None and \
            (c.before, c.after, c.outcome) == ("broken", "healthy", "recovered")
        steps.append(DrillStep(scenario, done, expected, ok, secs,
                               ([f"{c.before} -> {c.after}: {c.outcome} in {c.seconds:.1f}s"] if c else [])
                               + ([] if ok else [res.reason])))
    return steps


def reset_or_say(sandbox: Sandbox, inventory: str, steps: "Steps") -> None:
    """The operator's reset after a step that leaves the switch engaged; a reset that fails (or
    leaves it engaged) is a failed step, not a silent leftover for the next drill."""
    reset = operator_resets_the_switch(sandbox, inventory)
    with Sandbox.redis_server(sandbox.load()).client() as c:
        enabled = c.hget("policy:kill_switch", "enabled")
    if not reset.ok or enabled == "true":
        steps.append(DrillStep("switch reset", "-", "the operator resets the kill switch", False, reset.duration,
                               [f"enabled after the reset: {enabled}", *[f.msg for f in reset.failures]]))


# Every drill of `tradeops-dr drill` (and bench/drill.py), in the order `all` runs them: (name on the
