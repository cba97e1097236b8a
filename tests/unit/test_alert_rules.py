"""The Prometheus rules of extensions/monitoring (issue 28): promtool checks and unit-tests them, every
alert has a series that fires it and one that must not, carries what the response and the people need
(severity P1-P4, component, response, summary, runbook line, a documented link), and reads only
metrics that exist (the collection's exporter's, or the real exporters' names recorded in
tests/fixtures/exporter_metrics.txt)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import need
from tradeops_dr import catalog

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "extensions" / "monitoring"
RULES = MON / "prometheus" / "tradeops_dr.rules.yml"
RULE_TESTS = MON / "prometheus" / "tradeops_dr.rules.test.yml"
RESPONSES = {"kill_switch", "dead_man", "recover", "notify"}
# components an automatic recovery can start for: the front door's catalog, and the strategies
RECOVERABLE = set(catalog.components()) | {"strategy"}


def alerts() -> dict:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def promtool() -> str:
    found = shutil.which("promtool")
    need(None if found else "promtool is not installed (apt-get install prometheus; scripts/setup.sh installs it)")
    return found


def test_promtool_checks_the_rules():
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_promtool_unit_tests_pass():
    out = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_case_that_fires_it_and_one_that_must_not():
    fires, quiet = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) - fires == set(), "alerts no test fires"
    assert set(alerts()) - quiet == set(), "alerts without a case that must not fire"
    assert fires | quiet <= set(alerts()), "tests of alerts that do not exist"


@pytest.mark.parametrize("name", sorted(alerts()))
def test_each_alert_says_how_severe_what_and_where_in_the_runbooks(name):
    rule = alerts()[name]
    labels, notes = rule["labels"], rule["annotations"]
    assert labels["severity"] in ("P1", "P2", "P3", "P4"), labels
    assert labels["response"] in RESPONSES, labels
    assert labels["component"], labels
    if labels["response"] == "recover":
        assert labels["component"] in RECOVERABLE, (name, labels["component"], RECOVERABLE)
    if labels["response"] == "kill_switch":
        assert labels["severity"] == "P1", "a breach that halts trading is P1 (runbook 004 section 1)"
    assert re.search(r"\b00[0-4]\b|docs/", notes["runbook"]), notes["runbook"]
    assert notes["summary"] and notes["description"]
    assert notes["runbook_url"].endswith("docs/alerts.md#" + name.lower()), notes["runbook_url"]


def test_every_alert_is_explained_in_docs_alerts_md():
    text = (ROOT / "docs" / "alerts.md").read_text()
    headings = set(re.findall(r"^### (\w+)", text, re.M))
    assert set(alerts()) - headings == set(), "alerts docs/alerts.md does not explain"
    assert headings - set(alerts()) == set(), "docs/alerts.md explains alerts that do not exist"


def test_p1_follows_runbook_004_for_the_data_stores_and_the_switch():
    a = alerts()
    for name in ("TradeopsDrRedisDown", "TradeopsDrPostgresDown", "TradeopsDrKillSwitchEngaged",
                 "TradeopsDrExchangeDisconnected", "TradeopsDrDrawdownBreach"):
        assert a[name]["labels"]["severity"] == "P1", name
    assert a["TradeopsDrOrderLatencyHigh"]["labels"]["severity"] == "P2"  # latency > 100 ms
    assert a["TradeopsDrPriceStale"]["labels"]["severity"] == "P2"  # data feed degraded


def test_the_rules_read_only_metrics_that_exist():
    """The collection's own metrics are those src/tradeops_dr/exporter.py defines; the real exporters'
    names were read from the Debian exporters 0.11.1 (postgres), 1.45.0 (redis) and 1.5.0 (node)."""
    ours = set(re.findall(r'"(tradeops_dr_[a-z_]+)"', (ROOT / "src" / "tradeops_dr" / "exporter.py").read_text()))
    real = {line.strip() for line in (ROOT / "tests" / "fixtures" / "exporter_metrics.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    used = set()
    for rule in alerts().values():
        for token in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|>|<|=|/|\s|$)", rule["expr"]):
            if token.startswith(("tradeops_dr_", "redis_", "pg_", "node_")) or token == "up":
                used.add(re.sub(r"_bucket$", "", token))
    assert used, "no metric found in the rules"
    unknown = {m for m in used if m not in ours and m not in real and m != "up"}
    assert unknown == set(), f"metrics no exporter exports: {sorted(unknown)}"


def test_the_example_configurations_are_valid():
    tool = promtool()
    out = subprocess.run([tool, "check", "config", "prometheus.example.yml"], cwd=MON / "prometheus",
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    amtool = shutil.which("amtool")
    need(None if amtool else "amtool is not installed (apt-get install prometheus-alertmanager)")
    out = subprocess.run([amtool, "check-config", str(MON / "alertmanager" / "alertmanager.example.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
