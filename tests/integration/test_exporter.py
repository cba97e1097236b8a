"""tradeops-dr exporter (issue 28) against a real Redis and the collection's own files: what each
source exports, what it says when a source is down (quickly: a scrape must not outlast Prometheus's
timeout), and the configuration refused by name."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.tradeops.dr.plugins.module_utils import _lock
from tradeops_dr import cli, exporter

pytestmark = pytest.mark.integration


def scrape(conf) -> dict:
    out = {}
    for family in text_string_to_metric_families(exporter.render(conf)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def conf(redis_seeded, tmp_path):
    pw = tmp_path / "redis_password"
    pw.write_text(redis_seeded.srv.password + "\n")
    locks = tmp_path / "locks"
    drills = tmp_path / "history.jsonl"
    beat = tmp_path / "heartbeat.json"
    return dict(redis=dict(port=redis_seeded.port, password_file=str(pw)),
                kill_switch=dict(key="policy:kill_switch", flag_file=str(tmp_path / "kill_switch.flag")),
                risk=dict(drawdown="risk:drawdown", var="risk:var", var_limit="risk:var_limit"),
                backups=dict(root=str(tmp_path / "backups"), databases=["trading"], max_age_hours=2),
                locks=dict(dir=str(locks)), drills=dict(history=str(drills), schedule_days=7),
                strategies=dict(momentum=dict(heartbeat_file=str(beat), heartbeat_max_age=30)),
                health=dict(model=dict(url="http://127.0.0.1:9/v1/health", timeout=0.5)))


def test_every_source_is_read_at_scrape_time(redis_seeded, conf, tmp_path):
    with redis_seeded.client() as r:
        r.hset("policy:kill_switch", mapping={"enabled": "false", "state": "active"})
        r.set("risk:drawdown", "0.07")
        r.set("risk:var", "120000")
        r.set("risk:var_limit", "100000")
    _lock.acquire(conf["locks"]["dir"], "db-1", "t" * 32, dict(user="alice", playbook="full_recovery.yml"), lease=60)
    now = time.time()
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        dict(drill="D1", at="2026-01-01T00:00:00Z", scenario="redis", passed=True),
        dict(drill="D2", at="2026-02-01T00:00:00Z", scenario="redis", passed=True),
        dict(drill="D2", at="2026-02-01T00:01:00Z", scenario="questdb", passed=False)]))
    (tmp_path / "heartbeat.json").write_text(json.dumps(dict(ts=now - 5, price_ts=now - 8, connected=True)))
    m = scrape(conf)
    assert m[("tradeops_dr_kill_switch_engaged", ())] == 0
    assert m[("tradeops_dr_risk_value", (("measure", "drawdown"),))] == 0.07
    assert m[("tradeops_dr_risk_value", (("measure", "var"),))] > m[("tradeops_dr_risk_value", (("measure", "var_limit"),))]
    assert m[("tradeops_dr_backup_newest_verified_timestamp_seconds", (("database", "trading"),))] == 0  # none
    assert m[("tradeops_dr_backup_max_age_seconds", (("database", "trading"),))] == 7200
    assert abs(m[("tradeops_dr_lock_expires_timestamp_seconds", (("lock", "db-1"),))] - (now + 60)) < 5
    assert m[("tradeops_dr_drill_last_success", ())] == 0  # the last drill (D2) had a failed step
    assert m[("tradeops_dr_drill_last_timestamp_seconds", ())] == 1769904060  # 2026-02-01T00:01:00Z
    assert m[("tradeops_dr_drill_schedule_seconds", ())] == 7 * 86400
    assert abs(m[("tradeops_dr_heartbeat_timestamp_seconds", (("strategy", "momentum"),))] - (now - 5)) < 1
    assert m[("tradeops_dr_strategy_connected", (("strategy", "momentum"),))] == 1
    assert m[("tradeops_dr_health_ok", (("component", "model"),))] == 0  # nothing listens on port 9
    assert all(v == 1 for (name, _l), v in m.items() if name == "tradeops_dr_source_up"), m
    with redis_seeded.client() as r:
        r.hset("policy:kill_switch", "enabled", "true")
    assert scrape(conf)[("tradeops_dr_kill_switch_engaged", ())] == 1


def test_redis_down_is_said_quickly_and_the_flag_file_still_counts(redis_seeded, conf, tmp_path):
    redis_seeded.kill9()
    started = time.monotonic()
    m = scrape(conf)
    took = time.monotonic() - started
    # a scrape of 1 s at most: Prometheus's timeout at the documented 5 s interval, and at the tests' 1 s
    assert took < 1.0, f"a scrape took {took:.2f} s with Redis down"
    assert m[("tradeops_dr_source_up", (("source", "redis"),))] == 0
    assert ("tradeops_dr_kill_switch_engaged", ()) not in m, "unknown is no sample, not 'released'"
    (tmp_path / "kill_switch.flag").write_text("{}")  # what the fast path writes while Redis is down
    assert scrape(conf)[("tradeops_dr_kill_switch_engaged", ())] == 1


def test_a_missing_heartbeat_is_as_stale_as_it_gets_and_says_so(conf):
    m = scrape(conf)
    assert m[("tradeops_dr_heartbeat_timestamp_seconds", (("strategy", "momentum"),))] == 0
    assert m[("tradeops_dr_source_up", (("source", "strategies"),))] == 0


@pytest.mark.parametrize("text, why", [
    ("redis: {port: 1}\nbogus: 1\n", "unknown keys bogus"),
    ("risk: {drawdown: risk:drawdown}\n", "risk are read from Redis"),
    ("redis: {port: 1}\nrisk: {sharpe: x}\n", "unknown measures sharpe"),
    ("- a list\n", "must be a mapping"),
])
def test_a_bad_configuration_is_refused_by_name(tmp_path, capsys, text, why):
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    assert cli.main(["exporter", "--config", str(path), "--once"]) == 2
    assert why in capsys.readouterr().err


def test_the_cli_prints_one_scrape(conf, tmp_path, capsys):
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(conf))
    assert cli.main(["exporter", "--config", str(path), "--once"]) == 0
    out = capsys.readouterr().out
    assert "# TYPE tradeops_dr_kill_switch_engaged gauge" in out and 'tradeops_dr_source_up{source="redis"} 1.0' in out
    assert conf["redis"]["password_file"] not in out and "pw-" not in out  # no secret, not even its path


def test_questdb_wal_tables_through_the_collections_client(questdb_real):
    """The WAL state as `wal_tables()` reports it (through module_utils _questdb, as questdb_wal reads it): a
    suspended table with transactions waiting, and the source down once QuestDB is gone."""
    q = questdb_real
    q.sql("create table trades (ts timestamp, price double) timestamp(ts) partition by DAY WAL")
    q.sql("create table quotes (ts timestamp, price double) timestamp(ts) partition by DAY WAL")
    q.sql("alter table trades suspend wal")
    q.sql("insert into trades select timestamp_sequence(now(), 1000), rnd_double() from long_sequence(5)")
    conf = dict(questdb=dict(url=q.url, timeout=2))
    deadline = time.monotonic() + 15
    while True:
        m = scrape(conf)
        if m.get(("tradeops_dr_questdb_wal_pending_transactions", (("table", "trades"),)), 0) >= 1 \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert m[("tradeops_dr_questdb_wal_table_suspended", (("table", "trades"),))] == 1
    assert m[("tradeops_dr_questdb_wal_table_suspended", (("table", "quotes"),))] == 0
    assert m[("tradeops_dr_questdb_wal_pending_transactions", (("table", "trades"),))] >= 1
    assert m[("tradeops_dr_source_up", (("source", "questdb"),))] == 1
    q.kill()
    assert scrape(conf)[("tradeops_dr_source_up", (("source", "questdb"),))] == 0
