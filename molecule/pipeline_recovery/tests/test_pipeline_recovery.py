"""testinfra: the container after molecule converged pipeline_recovery on a failed run and a stopped Dagster."""

import json

GRAPHQL = "http://127.0.0.1:3001/graphql"


ASK = """
import json, sys, urllib.request
query = "{ runsOrError { ... on Runs { results { runId status parentRunId } } } }"
req = urllib.request.Request(sys.argv[1], data=json.dumps({"query": query}).encode(),
                             headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=30).read().decode())
"""


def _runs(host):
    out = host.run("/opt/dagster/bin/python -c %s %s", ASK, GRAPHQL)  # the image has no curl
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)["data"]["runsOrError"]["results"]


def test_the_failed_run_was_re_executed_from_its_failure_once(host):
    runs = _runs(host)
    assert [r["status"] for r in runs] == ["SUCCESS", "FAILURE"], runs  # newest first: one re-run, no more
    assert runs[0]["parentRunId"] == runs[1]["runId"]
    # the step that had succeeded (load_prices) was not run again
    assert len(host.file("/srv/pipeline/loads.log").content_string.splitlines()) == 1


def test_todays_morning_pack_and_signals_are_there(host):
    today = host.check_output("date -u +%F")
    assert host.file(f"/srv/pipeline/morning_pack_{today}.json").exists
    assert json.loads(host.file("/srv/pipeline/signals.json").content_string)["updated"] == today


def test_webserver_and_daemon_run_again(host):
    for name in ("webserver", "daemon"):
        pid = host.file(f"/run/dagster-{name}.pid").content_string.strip()
        assert host.run(f"kill -0 {pid}").rc == 0, name
