"""`tradeops-dr sandbox up` that fails half-way: the parts it started stop again (the failure named), the parts that
ran before it stay. A CI run once left a sandbox's QuestDB running for good after its inference API could not start
(Sandbox.up raised; nothing stopped what it had started). Stand-in servers: only up()'s bookkeeping is under test."""

from __future__ import annotations

import os

import pytest

from tradeops_dr.errors import SandboxError
from tradeops_dr.sandbox import stack


class _Part:
    def __init__(self, tmp_path, name, running=False, fails=False):
        self.name, self.fails, self.events = name, fails, []
        self.pidfile = tmp_path / f"{name}.pid"
        if running:
            self.pidfile.write_text(f"{os.getpid()}\n")  # alive: this very process

    def start(self):
        self.events.append("start")
        if self.fails:
            raise SandboxError(f"{self.name} not ready after 20.0s: timed out")

    def stop(self):
        self.events.append("stop")


def test_a_part_that_does_not_come_up_stops_what_this_up_started_and_leaves_the_rest(tmp_path, monkeypatch):
    parts = [_Part(tmp_path, "redis", running=True), _Part(tmp_path, "postgres"), _Part(tmp_path, "questdb"),
             _Part(tmp_path, "inference", fails=True), _Part(tmp_path, "pms")]
    state = dict(config={}, trading={}, standins={}, pms={}, seeded={"redis": 1})
    monkeypatch.setattr(stack.Sandbox, "load", lambda self: state)
    monkeypatch.setattr(stack.Sandbox, "parts", lambda self, st: [(p.name, p, None) for p in parts])
    with pytest.raises(SandboxError, match="inference not ready"):
        stack.Sandbox(tmp_path / "sb").up()
    assert {p.name: p.events for p in parts} == {
        "redis": ["start"],  # it ran before: start() found it running and returned; not stopped
        "postgres": ["start", "stop"], "questdb": ["start", "stop"], "inference": ["start", "stop"], "pms": []}
