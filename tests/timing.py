"""Where the suite's time goes: a pytest plugin (installed by conftest.py) that splits every test's
time into what it spent

- in fixture set-up (servers started, data seeded: per fixture name),
- starting ansible-playbook (an in-process ansible-runner run, from the call to its first event),
- running playbooks (the rest of such a run, and `ansible-playbook` started as a command),
- in other commands it started (the `tradeops-dr` CLI, git, dvc, pg_ctl...),
- waiting (time.sleep in the test process),
- in teardown (servers stopped, folders removed),
- and the rest: real work in the test process (modules called in-process, checks, queries).

Beside the wall time, each line has `cpu`: the CPU seconds (user + system) of the test's worker and of
the processes it started and reaped during the test (ansible-playbook, modules, the CLI, servers
stopped by the test) - on two shared cores, CPU is what the suite spends; servers a fixture started
count where they are reaped, and daemons a CLI left running count nowhere.

The categories do not overlap: time inside a fixture's set-up, a playbook run or a command counts
there only, whatever it does inside; only the test's own thread is timed (the exchange stand-in and
the writers of some tests sleep in threads of their own). One JSON line per test goes to
$TRADEOPS_DR_TEST_TIMES/<worker>.jsonl (default .state/test-times); scripts/test_times.py sums them
per file, per fixture and per category. Timing adds no assertion and changes no outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("TRADEOPS_DR_TEST_TIMES") or ROOT / ".state" / "test-times")


class _Clock:
    """A stack of categories: time goes to the innermost one; an opaque one keeps what runs inside it."""

    def __init__(self):
        self.stack: list[tuple[str, bool]] = []
        self.totals: dict[str, float] = {}
        self.fixtures: dict[str, float] = {}
        self.mark = time.perf_counter()

    def _flush(self) -> None:
        now = time.perf_counter()
        if self.stack:
            name = self.stack[-1][0]
            self.totals[name] = self.totals.get(name, 0.0) + now - self.mark
        self.mark = now

    def opaque(self) -> bool:
        return any(op for _name, op in self.stack)

    def push(self, name: str, opaque: bool = True) -> bool:
        # only the test's own thread: stand-ins and writers sleep in threads of their own
        if threading.get_ident() != _MAIN or self.opaque():
            return False
        self._flush()
        self.stack.append((name, opaque))
        return True

    def pop(self) -> None:
        self._flush()
        self.stack.pop()

    @contextlib.contextmanager
    def within(self, name: str, opaque: bool = True):
        """Time what runs inside under `name`; yields whether it is timed there (False inside an
        opaque category, or in another thread)."""
        pushed = self.push(name, opaque)
        try:
            yield pushed
        finally:
            if pushed:
                self.pop()

    def reset(self) -> None:
        self.stack, self.totals, self.fixtures = [], {}, {}
        self.mark = time.perf_counter()


_MAIN = threading.get_ident()
CLOCK = _Clock()
_real_sleep = time.sleep
_real_run = subprocess.run
_real_check_output = subprocess.check_output
_real_check_call = subprocess.check_call
_real_call = subprocess.call


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children so far (user + system)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _command_kind(args) -> str:
    argv = args if isinstance(args, (list, tuple)) else str(args).split()
    name = os.path.basename(str(argv[0])) if argv else "?"
    if name == "ansible-playbook":
        return "playbook"
    if name == "tradeops-dr":
        return "cli"
    return "command"


def _timed(real):
    def wrapper(*args, **kwargs):
        with CLOCK.within(_command_kind(args[0] if args else kwargs.get("args"))):
            return real(*args, **kwargs)
    wrapper.__wrapped__ = real
    return wrapper


def _sleep(seconds):
    with CLOCK.within("waiting"):
        _real_sleep(seconds)


def _first_event_time(runner) -> float | None:
    for ev in getattr(runner, "events", ()) or ():
        created = ev.get("created")
        if created:
            try:
                return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


def _wrap_runner() -> None:
    import ansible_runner

    real = ansible_runner.run

    def run(*args, **kwargs):
        started_wall = time.time()
        with CLOCK.within("playbook") as timed:
            runner = real(*args, **kwargs)
        first = _first_event_time(runner) if timed else None
        if first is not None:
            # move the start-up share (call -> first event) from playbook to playbook_startup
            share = max(0.0, min(first - started_wall, CLOCK.totals.get("playbook", 0.0)))
            CLOCK.totals["playbook"] -= share
            CLOCK.totals["playbook_startup"] = CLOCK.totals.get("playbook_startup", 0.0) + share
        return runner

    run.__wrapped__ = real
    ansible_runner.run = run  # tradeops_dr.api calls ansible_runner.run through the module


def install(config) -> None:
    """Called from conftest.py's pytest_configure."""
    if os.environ.get("TRADEOPS_DR_TEST_TIMES_OFF") == "1":
        return
    time.sleep = _sleep
    subprocess.run = _timed(_real_run)
    subprocess.check_output = _timed(_real_check_output)
    subprocess.check_call = _timed(_real_check_call)
    subprocess.call = _timed(_real_call)
    _wrap_runner()
    config.pluginmanager.register(_Recorder(config), "tradeops_dr_timing")


class _Recorder:
    def __init__(self, config):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        OUT.mkdir(parents=True, exist_ok=True)
        self.path = OUT / f"{worker}.jsonl"
        if not hasattr(config, "workerinput"):  # the controller (or a run without xdist) starts afresh
            for old in OUT.glob("*.jsonl"):
                old.unlink()
        self.phases: dict[str, float] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        name = fixturedef.argname
        started = time.perf_counter()
        with CLOCK.within("fixture") as timed:
            yield
        if timed:
            CLOCK.fixtures[name] = CLOCK.fixtures.get(name, 0.0) + time.perf_counter() - started

    def _phase(self, phase):
        CLOCK.push(phase, opaque=phase == "teardown")
        started = time.perf_counter()
        yield
        CLOCK.pop()
        self.phases[phase] = time.perf_counter() - started

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        yield from self._phase("setup")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        yield from self._phase("work")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item, nextitem):
        yield from self._phase("teardown")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        CLOCK.reset()
        self.phases = {}
        cpu0 = _cpu()
        yield
        cpu = _cpu() - cpu0
        line = dict(test=item.nodeid, file=item.nodeid.split("::", 1)[0],
                    worker=os.environ.get("PYTEST_XDIST_WORKER", "main"),
                    total=round(sum(self.phases.values()), 3), cpu=round(cpu, 3),
                    categories={k: round(v, 3) for k, v in CLOCK.totals.items() if v > 0.0005},
                    fixtures={k: round(v, 3) for k, v in CLOCK.fixtures.items() if v > 0.0005})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
