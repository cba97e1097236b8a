"""A run's outcome is read from data (the exported record, the callback's pointer), never from task
names or output: renaming a task changes no exit code; recover(ask=...) answers the run's approval
request once, in a private file that appears whole."""

from __future__ import annotations

import os
import threading

from tradeops_dr.api import Failure, RunResult
from tradeops_dr.recovery import _asking, result_of


def _run(data=None, failures=(), stats=True, record=None) -> RunResult:
    return RunResult(status="failed", rc=2, duration=1.0, stats={"localhost": {"failures": 1}} if stats else {},
                     failures=list(failures), data=data or {}, record=record or {})


def test_a_refusal_is_read_from_the_exported_record_whatever_its_task_is_called():
    for task in ("Refuse variables of the wrong type", "Check the inputs", "anything at all"):
        run = _run({"dr_recovery": {"status": "bad input", "reason": "dr_components must be one of...",
                                    "incident": "INC-1", "components": {}}},
                   [Failure("localhost", task, "dr_components must be one of...")])
        res = result_of(run)
        assert (res.status, res.exit_code, res.incident) == ("bad input", 2, "INC-1")


def test_the_verdict_is_left_out_of_the_failures_by_what_it_says_not_by_its_name():
    rec = {"status": "failed", "reason": "redis on r1 is broken after recovery", "components": {}}
    verdict = Failure("localhost", "a renamed final assert", "FAILED: redis on r1 is broken after recovery")
    real = Failure("r1", "Start Redis", "redis-server did not answer PING")
    res = result_of(_run({"dr_recovery": rec}, [real, verdict]))
    assert res.exit_code == 1 and res.failures == [real]


def test_no_record_and_no_stats_is_bad_input_and_the_record_path_comes_from_the_pointer():
    res = result_of(_run(stats=False, failures=[Failure("-", "-", "Unable to parse inventory")],
                         record={"id": "INC-9", "markdown": "/x/INC-9_1.md", "json": "/x/INC-9_1.json"}))
    assert (res.status, res.exit_code, res.incident, res.incident_record) == ("bad input", 2, "INC-9", "/x/INC-9_1.md")
    assert result_of(_run()).status == "failed"


def test_ask_is_called_once_and_its_answer_appears_whole(tmp_path):
    answer_file = str(tmp_path / "answer")
    asked, seen = [], []
    handler = _asking(lambda request: asked.append(request) or " 1f3a-9c0d-77e2 ", answer_file, seen.append)
    request = {"incident": "INC-1", "steps": ["db1: restore"], "code": "1f3a-9c0d-77e2", "answer_file": answer_file}
    event = {"event": "runner_on_ok", "event_data": {"res": {"dr_approval_request": request}}}
    assert handler({"event": "runner_on_ok", "event_data": {"res": {"msg": "x"}}}) is True
    handler(event)
    handler(event)  # a second request event (a replay of the stream) asks nothing more
    assert asked == [{"incident": "INC-1", "steps": ["db1: restore"], "code": "1f3a-9c0d-77e2"}]
    assert len(seen) == 3  # the caller's own handler still sees every event
    with open(answer_file) as handle:
        assert handle.read() == "1f3a-9c0d-77e2\n"
    assert oct(os.stat(answer_file).st_mode & 0o777) == "0o600"
    # another run's request (another answer file) is not answered here
    other = tmp_path / "other"
    handler2 = _asking(lambda request: "x", str(other), None)
    handler2(event)
    assert not other.exists()


def test_an_ask_that_fails_still_answers_so_the_run_does_not_wait(tmp_path):
    answer_file = str(tmp_path / "answer")

    def ask(_request):
        raise KeyboardInterrupt

    handler = _asking(ask, answer_file, None)
    event = {"event": "runner_on_ok", "event_data": {"res": {"dr_approval_request": {"answer_file": answer_file}}}}
    done = threading.Event()
    try:
        handler(event)
    except KeyboardInterrupt:
        done.set()
    assert done.is_set()
    with open(answer_file) as handle:
        assert handle.read() == "\n"
