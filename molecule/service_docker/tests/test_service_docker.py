"""testinfra: the sibling container after the docker service manager brought it back."""

import datetime
import json

testinfra_hosts = ["ansible://tradeops-dr-svc-ops"]


def _state(host):
    res = host.run("python3 -c \"import docker, json; print(json.dumps(docker.from_env().containers.get("
                   "'tradeops-dr-svc-cache').attrs['State']))\"")
    assert res.rc == 0, res.stderr
    return json.loads(res.stdout)


def test_the_sibling_runs_and_is_healthy(host):
    state = _state(host)
    assert state["Running"] and state["Health"]["Status"] == "healthy"


def _when(text):
    """Docker's RFC 3339 times carry up to nine fraction digits, trailing zeros trimmed."""
    whole, _dot, frac = text.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(whole) + datetime.timedelta(microseconds=int((frac + "000000")[:6]))


def test_it_was_started_after_the_crash(host):
    crashed_at = _when(host.file("/var/lib/molecule-crash.txt").content_string.strip())
    state = _state(host)
    assert _when(state["StartedAt"]) > crashed_at
    assert state["ExitCode"] == 0 and not state["OOMKilled"]


def test_its_redis_answers_inside(host):
    res = host.run("python3 -c \"import docker; r = docker.from_env().containers.get('tradeops-dr-svc-cache')"
                   ".exec_run(['redis-cli', 'ping']); print(r.output.decode().strip())\"")
    assert res.stdout.strip() == "PONG"
