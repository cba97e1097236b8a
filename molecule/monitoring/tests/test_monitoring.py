"""testinfra: the monitoring host after molecule converged the monitoring role (issue 28)."""

import json
import time
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[3] / "extensions" / "monitoring" / "prometheus" / "tradeops_dr.rules.yml"
GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


def _get(host, url):
    out = host.run("python3 -c %s %s", GET, url)  # the image has no curl
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def test_every_alert_of_the_collection_is_loaded(host):
    ours = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    groups = _get(host, "http://127.0.0.1:9090/api/v1/rules?type=alert")["data"]["groups"]
    assert {r["name"] for g in groups for r in g["rules"]} == ours
    assert host.run("promtool check rules /etc/prometheus/tradeops_dr.rules.yml").rc == 0


def _redis_up(host, want: str, within: float = 20.0) -> list:
    """redis_up as Prometheus has it, polled until it is `want` (scraped every second) or `within` passed."""
    deadline = time.monotonic() + within
    while True:
        up = _get(host, "http://127.0.0.1:9090/api/v1/query?query=redis_up")["data"]["result"]
        if [r["value"][1] for r in up] == [want] or time.monotonic() > deadline:
            return up
        time.sleep(1)


def test_the_exporters_are_scraped(host):
    targets = _get(host, "http://127.0.0.1:9090/api/v1/targets")["data"]["activeTargets"]
    assert sorted((t["scrapePool"], t["health"]) for t in targets) == [("node", "up"), ("redis", "up")], targets
    up = _redis_up(host, "1")  # the tests run in random order: after the Redis test, Redis is started again
    assert [r["value"][1] for r in up] == ["1"], up  # the exporter logged in with the password


def test_what_the_rulebook_acts_on_goes_to_it_and_p1_to_people_too(host):
    cfg = "--config.file=/etc/prometheus/alertmanager.yml"
    assert host.check_output(f"amtool config routes test {cfg} response=recover severity=P1") == "eda,people"
    assert host.check_output(f"amtool config routes test {cfg} response=kill_switch severity=P1") == "eda,people"
    assert host.check_output(f"amtool config routes test {cfg} response=notify severity=P4") == "people"


def test_secrets_are_in_private_files_only(host):
    assert host.file("/etc/tradeops-dr").mode == 0o750
    token = host.file("/etc/tradeops-dr/eda_token")
    assert token.mode == 0o640 and token.content_string == "molecule-only-eda-token"
    env = host.file("/etc/default/prometheus-redis-exporter")
    assert env.mode == 0o640 and "molecule-only-redis-secret" in env.content_string
    assert "molecule-only-eda-token" not in host.file("/etc/prometheus/alertmanager.yml").content_string
    # never on a command line (ps shows every process's argv)
    assert "molecule-only-redis-secret" not in host.check_output("ps -eo args")


def test_a_dead_redis_reaches_alertmanager_for_the_rulebook(host):
    host.run("kill -9 $(cat /run/redis-mon.pid)")
    deadline, seen = time.monotonic() + 60, []
    try:
        while time.monotonic() < deadline:
            seen = [a for a in _get(host, "http://127.0.0.1:9093/api/v2/alerts")
                    if a["labels"]["alertname"] == "TradeopsDrRedisDown"]
            if seen:
                break
            time.sleep(2)
    finally:  # Redis back as prepare started it, for the tests that run after this one
        password = host.ansible.get_variables()["molecule_redis_password"]
        host.run("redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --pidfile /run/redis-mon.pid "
                 "--requirepass %s", password)
    assert seen, "TradeopsDrRedisDown never reached Alertmanager"
    (alert,) = seen
    assert alert["labels"]["severity"] == "P1" and alert["labels"]["response"] == "recover"
    assert sorted(r["name"] for r in alert["receivers"]) == ["eda", "people"]
