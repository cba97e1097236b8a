"""The data pipelines (runbook 000 scenario 5: Dagster; runbook 001: Airflow) on real orchestrators started on
127.0.0.1 (tradeops_dr.sandbox.orchestrators): a Dagster webserver and daemon, an Airflow 3 API server, scheduler and
DAG processor, both running the stand-in morning pack of the users (standins/pipelines: load_prices then build_pack,
which can be made to fail once as a step fails when its feed is late).

The modules' branches and refusals in-process (their main() with real arguments); the role through
playbooks/pipeline_recovery.yml once per behaviour a user sees: a dead daemon and a failed run recovered (check mode
first), a failed Airflow run re-run, an orchestrator that does not come back (the fallbacks, the run fails)."""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.tradeops.dr.plugins.modules import data_freshness, pipeline_info, pipeline_rerun
from conftest import artifacts_text, free_port, need, record, run_module, write_inventory
from tradeops_dr import builds, run_playbook
from tradeops_dr.sandbox import pid_alive, read_pid
from tradeops_dr.sandbox.orchestrators import JOB, PIPELINES, AirflowServer, DagsterServer

pytestmark = pytest.mark.integration


def _failed_run(orch):
    """A run of the morning pack that failed at build_pack (load_prices succeeded), as a late feed leaves it."""
    orch.fail_next_run()
    run_id = orch.launch()
    assert orch.wait_end(run_id, 90) in ("FAILURE", "FAILED")
    assert not (orch.work / "fail_next").exists()
    return run_id


@pytest.fixture(scope="module")
def dagster(tmp_path_factory):
    server = DagsterServer(tmp_path_factory.mktemp("dagster"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    need(builds.missing("airflow"))
    server = AirflowServer(tmp_path_factory.mktemp("airflow"))
    server.start()
    yield server
    server.stop()


def _dagster_args(server, **extra):
    return {"backend": "dagster", "url": server.url, **extra}


def _airflow_args(server, **extra):
    return {"backend": "airflow", "url": server.url, "username": server.USER, "password": server.password, **extra}


# --------------------------------------------------------------------------- Dagster, in-process

def test_dagster_info_names_the_failed_run_and_step_and_rerun_resumes_from_the_failure(dagster, capsys):
    failed = _failed_run(dagster)
    loads = dagster.loads()
    out, bad = run_module(pipeline_info, _dagster_args(dagster, jobs=[JOB]), capsys)
    assert not bad, out
    assert out["orchestrator"]["healthy"] and out["orchestrator"]["version"]
    assert out["failed_jobs"] == [JOB]
    latest = out["jobs"][JOB]["latest"]
    assert (latest["id"], latest["status"], latest["failed_steps"]) == (failed, "failed", ["build_pack"])

    runs_before = len(dagster.runs())
    out, bad = run_module(pipeline_rerun, dict(_dagster_args(dagster, job=JOB), _ansible_check_mode=True), capsys)
    assert not bad and out["changed"] and out["failed_run"]["id"] == failed, out
    assert "would be re-executed" in out["msg"]
    assert len(dagster.runs()) == runs_before, "check mode launched a run"

    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job=JOB, reason="INC-T-1"), capsys)
    assert not bad and out["changed"], out
    run = out["run"]
    assert run["status"] == "success" and run["parent"] == failed and run["id"] != failed
    assert dagster.loads() == loads, "the step that had succeeded (load_prices) ran again"
    assert (dagster.work / f"morning_pack_{datetime.date.today().isoformat()}.json").exists()
    tags = dagster.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
                           {"id": run["id"]})["runOrError"]["tags"]
    assert {"key": "tradeops.dr/reason", "value": "INC-T-1"} in tags

    # idempotent: the newest run succeeded, nothing is launched
    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job=JOB), capsys)
    assert not bad and not out["changed"] and "nothing to re-run" in out["msg"], out
    assert len(dagster.runs()) == runs_before + 1
    # the failed run named again: its re-execution exists and succeeded, it is not launched a second time
    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job=JOB, run_id=failed), capsys)
    assert not bad and not out["changed"] and out["run"]["id"] == run["id"], out
    assert len(dagster.runs()) == runs_before + 1


def test_a_silent_daemon_is_named_and_a_rerun_refused_while_it_is(dagster, capsys):
    """Dagster calls a daemon unhealthy only 1800 s after its last heartbeat; the collection after 120 s (queued runs
    wait for the daemon). The real server's heartbeats, read with the clock 200 s on (as they are 200 s after the
    daemon died): every required daemon is named, and a re-run is refused rather than left queued."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _pipeline

    backend = _pipeline.Dagster(_pipeline.dagster_library(), dagster.url, None, 10, True)
    try:
        now = backend.health()
        assert now["healthy"] and now["problems"] == [], now
        later = backend.health(now=time.time() + 200)
    finally:
        backend.close()
    assert not later["healthy"]
    assert any("daemon QUEUED_RUN_COORDINATOR silent: last heartbeat" in p for p in later["problems"]), later
    assert all("(dagster-daemon is not running)" in p for p in later["problems"])

    out, bad = run_module(pipeline_info, _dagster_args(dagster, jobs=[JOB], heartbeat_max_age=0.001), capsys)
    assert not bad and not out["orchestrator"]["healthy"] and "silent" in out["orchestrator"]["evidence"], out
    runs = len(dagster.runs())
    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job=JOB, heartbeat_max_age=0.001), capsys)
    assert bad and "is not healthy" in out["msg"] and "nothing was launched" in out["msg"], out
    assert len(dagster.runs()) == runs


def test_dagster_refusals_launch_nothing(dagster, capsys):
    runs = len(dagster.runs())
    out, bad = run_module(pipeline_info, _dagster_args(dagster, jobs=["no_such_job"]), capsys)
    assert bad and out["kind"] == "not_found" and "its jobs: morning_pack" in out["msg"], out
    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job="no_such_job"), capsys)
    assert bad and "not a job of any code location" in out["msg"] and "nothing was launched" in out["msg"], out
    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job=JOB, run_id="0" * 8 + "-0000-0000-0000-" + "0" * 12),
                          capsys)
    assert bad and out["kind"] == "not_found", out
    out, bad = run_module(pipeline_rerun, _dagster_args(dagster, job=" "), capsys)
    assert bad and "job is empty" in out["msg"], out
    out, bad = run_module(pipeline_info, _dagster_args(dagster, url="127.0.0.1:3001"), capsys)
    assert bad and "is not the http(s) URL" in out["msg"], out
    assert len(dagster.runs()) == runs


def test_an_orchestrator_that_does_not_answer_is_a_diagnosis_not_a_failure(capsys):
    port = free_port()
    t0 = time.monotonic()
    out, bad = run_module(pipeline_info, dict(backend="dagster", url=f"http://127.0.0.1:{port}", jobs=[JOB], wait=1.5),
                          capsys)
    assert not bad, out
    assert out["orchestrator"]["up"] is False and out["orchestrator"]["healthy"] is False
    assert out["orchestrator"]["waited"] >= 1.5 and time.monotonic() - t0 < 15
    assert "does not answer" in out["orchestrator"]["evidence"] and out["jobs"] == {}
    out, bad = run_module(pipeline_rerun, dict(backend="airflow", url=f"http://127.0.0.1:{port}", job=JOB), capsys)
    assert bad and out["kind"] == "unreachable" and "nothing more was launched" in out["msg"], out


# --------------------------------------------------------------------------- Airflow, in-process

def test_airflow_failed_run_cleared_and_waited_for_and_a_wrong_login_refused(airflow, capsys):
    failed = _failed_run(airflow)
    loads = airflow.loads()
    out, bad = run_module(pipeline_info, _airflow_args(airflow, jobs=[JOB]), capsys)
    assert not bad and out["orchestrator"]["healthy"], out
    latest = out["jobs"][JOB]["latest"]
    assert (latest["id"], latest["status"], latest["failed_steps"]) == (failed, "failed", ["build_pack"])

    out, bad = run_module(pipeline_info, dict(_airflow_args(airflow, jobs=[JOB]), password="wrong-" + "pw"), capsys)
    assert bad and out["kind"] == "auth" and "refused the login of ops" in out["msg"], out
    assert airflow.password not in json.dumps(out)

    out, bad = run_module(pipeline_rerun, _airflow_args(airflow, job=JOB, reason="INC-T-2"), capsys)
    assert not bad and out["changed"], out
    assert out["run"]["id"] == failed and out["run"]["status"] == "success"  # Airflow clears the same run
    assert airflow.loads() == loads, "the task that had succeeded (load_prices) ran again"
    assert airflow.password not in json.dumps(out)
    out, bad = run_module(pipeline_rerun, _airflow_args(airflow, job=JOB), capsys)
    assert not bad and not out["changed"] and "nothing to re-run" in out["msg"], out


def test_airflow_refuses_to_rerun_a_paused_dag(airflow, capsys):
    _failed_run(airflow)
    airflow.api("PATCH", f"/dags/{JOB}", {"is_paused": True})
    try:
        out, bad = run_module(pipeline_rerun, _airflow_args(airflow, job=JOB), capsys)
        assert bad and "is paused" in out["msg"] and "nothing was launched" in out["msg"], out
        out, bad = run_module(pipeline_info, _airflow_args(airflow, jobs=[JOB]), capsys)
        assert not bad and not out["orchestrator"]["healthy"], out
        assert f"DAG {JOB} is paused" in out["orchestrator"]["evidence"]
        assert airflow.api("GET", f"/dags/{JOB}/dagRuns?order_by=-run_after&limit=1")["dag_runs"][0]["state"] == "failed"
    finally:
        airflow.api("PATCH", f"/dags/{JOB}", {"is_paused": False})
    out, bad = run_module(pipeline_rerun, _airflow_args(airflow, job=JOB), capsys)
    assert not bad and out["run"]["status"] == "success", out


# --------------------------------------------------------------------------- freshness, in-process

def _touch(path: Path, day: str, content: str = "") -> Path:
    path.write_text(content)
    stamp = datetime.datetime.fromisoformat(day + "T12:00:00+00:00").timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_freshness_counts_business_days_of_the_calendar(tmp_path, capsys):
    # Monday 2026-12-07: Friday's data is one business day old; Thursday's two
    _touch(tmp_path / "morning_pack_2026-12-04.json", "2026-12-04")
    _touch(tmp_path / "morning_pack_2026-12-03.json", "2026-12-03")
    _touch(tmp_path / "signals.json", "2026-12-03")
    _touch(tmp_path / "prices.json", "2026-11-01", '{"date": "2026-12-04", "EURUSD": 1.08}')
    checks = [
        dict(name="morning pack", path=str(tmp_path / "morning_pack_*.json"), date_from="name", max_age=1),
        dict(name="signals", path=str(tmp_path / "signals.json"), max_age=1),
        dict(name="prices", path=str(tmp_path / "prices.json"), date_from="content", max_age=1),
        dict(name="report", path=str(tmp_path / "report.pdf")),
    ]
    out, bad = run_module(data_freshness, dict(checks=checks, today="2026-12-07"), capsys)
    assert not bad, out
    got = {c["name"]: (c["state"], c["date"], c["age"]) for c in out["checks"]}
    assert got == {"morning pack": ("fresh", "2026-12-04", 1), "signals": ("stale", "2026-12-03", 2),
                   "prices": ("fresh", "2026-12-04", 1), "report": ("missing", None, None)}
    assert out["stale"] == ["signals", "report"] and out["fresh"] is False
    assert out["today"] == {"date": "2026-12-07", "business_day": True}
    # the same on Sunday: Friday's pack is dated "today" (max_age 0) - the weekend is not business days
    out, _bad = run_module(data_freshness, dict(checks=[dict(checks[0], max_age=0)], today="2026-12-06"), capsys)
    assert out["checks"][0]["state"] == "fresh" and out["today"]["business_day"] is False
    # a holiday on Monday: Thursday's signals are one business day old on Tuesday
    out, _bad = run_module(data_freshness, dict(checks=[checks[1]], today="2026-12-08",
                                                calendar=dict(holidays=["2026-12-07"])), capsys)
    assert out["checks"][0]["age"] == 2  # Friday and Tuesday
    out, _bad = run_module(data_freshness, dict(checks=[checks[1]], today="2026-12-07",
                                                calendar=dict(holidays=["2026-12-04"])), capsys)
    assert out["checks"][0]["age"] == 1 and out["fresh"] is True  # Friday a holiday: only Monday counts


def test_freshness_of_a_table_and_malformed_checks_refused(pg, tmp_path, capsys):
    pg.sql("postgres", 'CREATE DATABASE "fresh_t"')
    pg.sql("fresh_t", "CREATE SCHEMA market_data")
    pg.sql("fresh_t", "CREATE TABLE market_data.daily_prices (date date, px float)")
    pg.sql("fresh_t", "CREATE TABLE market_data.ticks (time timestamptz, px float)")
    pg.sql("fresh_t", "INSERT INTO market_data.daily_prices VALUES ('2026-12-02', 1), ('2026-12-04', 2)")
    login = dict(login_host="127.0.0.1", login_port=pg.port, login_user=pg.user, login_password=pg.password)
    checks = [dict(name="prices", database="fresh_t", table="market_data.daily_prices", column="date"),
              dict(name="ticks", database="fresh_t", table="market_data.ticks")]
    out, bad = run_module(data_freshness, dict(checks=checks, today="2026-12-07", **login), capsys)
    assert not bad, out
    assert [(c["state"], c["date"]) for c in out["checks"]] == [("fresh", "2026-12-04"), ("missing", None)]
    assert "the table is empty" in out["checks"][1]["evidence"]
    assert pg.password not in json.dumps(out)

    for args, words in [
        (dict(checks=[dict(name="x", path=str(tmp_path))], timezone="Mars/Olympus"), "not an IANA time zone"),
        (dict(checks=[dict(name="x", path=str(tmp_path), date_pattern="\\d+")]), "has no group"),
        (dict(checks=[dict(name="x", path=str(tmp_path), date_pattern="(")]), "not a regular expression"),
        (dict(checks=[dict(name="x", path=str(tmp_path))], calendar=dict(weekdays=[7])), "0 (Monday) to 6"),
        (dict(checks=[dict(name="x", path=str(tmp_path)), dict(name="x", path=str(tmp_path))]), "a name of its own"),
        (dict(checks=[dict(name="x", path=str(tmp_path))], today="07/12/2026"), "not YYYY-MM-DD"),
        (dict(checks=[dict(name="x", database="fresh_t", table="t; DROP TABLE x")], **login), "refused"),
    ]:
        out, bad = run_module(data_freshness, args, capsys)
        assert bad and words in out["msg"], (args, out)


# --------------------------------------------------------------------------- the role, through its playbook

def _hostvars(orch, **extra):
    fresh = [dict(name="morning pack", path=str(orch.work / "morning_pack_*.json"), date_from="name", max_age=0),
             dict(name="agent signals", path=str(orch.work / "signals.json"), max_age=0)]
    orchestrator = dict(backend="dagster", url=orch.url) if isinstance(orch, DagsterServer) else dict(
        backend="airflow", url=orch.url, username=orch.USER, password=orch.password)
    return {"pipeline_recovery_orchestrator": orchestrator, "pipeline_recovery_jobs": [JOB],
            "pipeline_recovery_services": orch.services(), "pipeline_recovery_freshness": fresh,
            "pipeline_recovery_ready_timeout": 60, "pipeline_recovery_run_timeout": 120, **extra}


def test_the_pipeline_drill_recovers_a_failed_run_and_a_dead_orchestrator(tmp_path):
    """Runbook 000 scenario 5 as `tradeops-dr drill pipeline` drills it (its own Dagster; playbooks/
    pipeline_recovery.yml): a run fails at build_pack, then the webserver and the daemon are killed ("If Dagster
    container is down") and today's morning pack is missing. The drill's evidence: --check leaves it down; the run
    restarts both, waits for the API and the daemons (not a port), re-executes the failed run from its failure
    (load_prices not run again), today's pack and signals are fresh, the lock is taken and given back; a second run
    changes nothing. Checked again here from what it left on disk."""
    from tradeops_dr.drill import DRILLS
    from tradeops_dr.drill.pipelines import pipeline_drill
    from tradeops_dr.sandbox import Sandbox

    assert "pipeline" in [name for name, _run, _what in DRILLS]
    (step,) = pipeline_drill(Sandbox(tmp_path / "sandbox"))
    assert step.passed, step.details
    assert step.details[0] == "restarted: dagster-webserver, dagster-daemon", step.details
    assert "re-executed from its failure" in step.details[1] and "failed at build_pack" in step.details[1]
    assert "2 of 2 freshness checks fresh" in step.details[2]
    work = tmp_path / "sandbox" / "pipeline-drill" / "pipeline"
    assert len((work / "loads.log").read_text().splitlines()) == 1  # load_prices ran once: the re-run resumed
    assert (work / f"morning_pack_{datetime.date.today().isoformat()}.json").exists()
    locks = tmp_path / "sandbox" / "pipeline-drill" / "locks"
    assert "DRILL-" in (locks / "history.jsonl").read_text() and not list(locks.glob("*.lock.json"))
    # the drill stopped its orchestrator
    assert not any(pid_alive(read_pid(tmp_path / "sandbox" / "pipeline-drill" / f"{r}.pid"))
                   for r in ("webserver", "daemon"))


def test_airflow_down_and_a_failed_run_recovered_through_the_role_and_stale_data_named(airflow, run, tmp_path):
    """Runbook 001's Airflow: a DAG run failed, then its API server died. The role restarts the API server,
    scheduler and DAG processor, waits for the REST API and the scheduler's health, clears the failed run."""
    failed = _failed_run(airflow)
    airflow.kill("api-server")
    result = run("pipeline_recovery.yml", _hostvars(airflow, pipeline_recovery_freshness=[]), group="pipeline_servers")
    assert result.rc == 0, artifacts_text(result)
    rec = record(result, "pipeline_recovery")
    assert "Airflow does not answer" in rec["before"]["evidence"]
    assert rec["restarted"] == ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor"]
    assert len(rec["reruns"]) == 1 and "cleared" in rec["reruns"][0] and rec["diagnosis"]["state"] == "healthy"
    assert airflow.status(failed) == "success"
    for text in (artifacts_text(result), Path(result.incident_record).read_text(),
                 Path(result.incident_record).with_suffix(".json").read_text()):
        assert airflow.password not in text

    # the pipeline ran, yet the market data it loads is two business days old: nothing to re-run, nothing restarted;
    # the run fails and says why (a schedule that did not run it is a person's call)
    old = _touch(tmp_path / "daily_prices_2020-01-02.csv", "2020-01-02")
    stale = _hostvars(airflow, pipeline_recovery_freshness=[dict(name="market data", path=str(old), max_age=1)])
    result = run("pipeline_recovery.yml", stale, group="pipeline_servers")
    assert result.rc != 0
    assert "market data stale" in result.stdout and "Stale data without a failed run to re-run" in result.stdout
    rec = record(result, "pipeline_recovery")
    assert rec["restarted"] == [] and rec["reruns"] == [] and rec["diagnosis"]["stale"] == ["market data"]


def test_orchestrator_that_does_not_come_back_runs_the_fallbacks_and_fails(dagster, run, tmp_path):
    """A broken deploy: the code location no longer loads, and the restart does not help. The manual fallbacks of
    runbook 000 (the daily run script) make today's morning pack; the run still fails, its record says the fallbacks
    were used, the incident stays open."""
    for stale in dagster.work.glob("morning_pack_*.json"):
        stale.unlink()
    broken = tmp_path / "defs_broken.py"
    broken.write_text("import dagster as dg\nraise ImportError('No module named pandas_ta (a broken deploy)')\n")
    services = dagster.services()
    services[0]["start_command"] = [a if a != str(PIPELINES / "dagster_defs.py") else str(broken)
                                    for a in services[0]["start_command"]]
    daily_run = ["env", f"TRADEOPS_PIPELINE_DIR={dagster.work}", sys.executable,
                 str(PIPELINES / "work.py"), "daily-run"]
    hostvars = _hostvars(dagster, pipeline_recovery_services=services, pipeline_recovery_ready_timeout=8,
                         pipeline_recovery_fallbacks=[dict(name="daily run script", command=daily_run)])
    dagster.kill("webserver")
    try:
        result = run("pipeline_recovery.yml", hostvars, group="pipeline_servers")
        text = artifacts_text(result)
        assert result.rc != 0, text
        assert "does not load" in result.stdout and "No module named pandas_ta" in result.stdout, result.stdout[-3000:]
        assert "Fallbacks ran: daily run script" in text and "The incident stays open" in text
        rec = record(result, "pipeline_recovery")
        assert rec["fallback_used"] is True and rec["fallbacks"] == ["daily run script"]
        assert (dagster.work / f"morning_pack_{datetime.date.today().isoformat()}.json").exists()
    finally:
        dagster.kill("webserver")
        dagster.start()


def test_the_front_door_recovers_the_pipeline_after_the_data_stores(dagster, tmp_path):
    """full_recovery.yml with the pipeline component (catalog entry `pipeline`): diagnosed read only with the others,
    recovered in the applications stage under the run's own lock, in the incident record with its RTO."""
    _failed_run(dagster)
    for stale in dagster.work.glob("morning_pack_*.json"):
        stale.unlink()
    inv = write_inventory(tmp_path / "inventory.yml", _hostvars(dagster, dr_lock_dir=str(tmp_path / "locks")),
                          group="pipeline_servers", host="pipeline-1")
    res = run_playbook("full_recovery.yml", inventory=str(inv), private_data_dir=str(tmp_path / "runner"),
                       extravars=dict(dr_components="pipeline", dr_incident_id="INC-T-FRONT"))
    assert res.rc == 0, artifacts_text(res)
    out = res.data["dr_recovery"]
    assert out["status"] == "recovered" and out["classification"] == "P3", out
    entry = out["components"]["pipeline"]["pipeline-1"]
    assert (entry["before"], entry["after"], entry["outcome"], entry["rto_seconds"]) == (
        "broken", "healthy", "recovered", 900), entry
    assert "failed at build_pack" in entry["evidence_before"] and "morning pack missing" in entry["evidence_before"]
    assert "2 of 2 freshness checks fresh" in entry["evidence_after"]
    assert dagster.runs()[0]["status"] == "SUCCESS" and dagster.runs()[0]["parentRunId"]
    assert not list((tmp_path / "locks").glob("*.lock.json"))
