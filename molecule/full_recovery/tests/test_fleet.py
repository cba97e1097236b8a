"""testinfra: the fleet after playbooks/full_recovery.yml ran (twice: Molecule's idempotence)."""

import hashlib
import json
import urllib.parse

import pytest

testinfra_hosts = ["ansible://fleet-cache", "ansible://fleet-db", "ansible://fleet-questdb",
                   "ansible://fleet-strategy-1", "ansible://fleet-strategy-2"]


def _name(host):
    return host.backend.get_hostname()


def _only(host, *names):
    if _name(host) not in names:
        pytest.skip("not on %s" % _name(host))


def _redis(host, *args):
    res = host.run("REDISCLI_AUTH=molecule-only-secret redis-cli -p 6390 --no-auth-warning " + " ".join(args))
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def test_redis_is_back_with_every_stream(host):
    _only(host, "fleet-cache")
    crashed = int(host.file("/var/lib/molecule-crashed.pid").content_string)
    pid = int(host.file("/run/redis-dr.pid").content_string)
    assert pid != crashed and _redis(host, "PING") == "PONG"
    for stream, length in {"orders.validated": 200, "orders.fills": 190, "signals:ppo_primary:stream": 100}.items():
        assert int(_redis(host, "XLEN", "'%s'" % stream)) == length, stream


def test_the_kill_switch_was_engaged_for_the_incident_and_left_engaged(host):
    _only(host, "fleet-cache")
    # engaged while Redis was down: the fail-closed flag file holds it (Redis came back after)
    flag = host.file("/var/lib/tradeops-dr/kill_switch.flag")
    assert flag.exists and "INC-FLEET-1" in flag.content_string
    # and once Redis was back, Redis holds it too ("Hold the kill switch in Redis too"): engaged, not
    # merely carrying the incident of an engagement since reset (issue 31)
    assert _redis(host, "HGET", "policy:kill_switch", "enabled") == "true"
    assert _redis(host, "HGET", "policy:kill_switch", "incident") == "INC-FLEET-1"


def test_the_database_holds_the_backup_and_the_damaged_one_is_kept(host, psql):
    _only(host, "fleet-db")
    assert psql("trading", "SELECT count(*) FROM trades") == "3000"
    assert psql("trading", "SELECT count(*) FROM ticks") == "2500"
    aside = psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'trading__pre_restore_%'")
    assert len(aside.split()) == 1
    assert psql(aside, "SELECT count(*) FROM trades") == "0"


def test_questdb_applied_every_waiting_write(host, get_json):
    _only(host, "fleet-questdb")
    before = json.loads(host.file("/srv/questdb/before.json").content_string)
    q = "select suspended, writerTxn, sequencerTxn from wal_tables() where name = 'trades'"
    ((suspended, writer, sequencer),) = get_json("http://127.0.0.1:9000/exec?query=" + urllib.parse.quote(q))["dataset"]
    assert suspended is False and writer == sequencer
    count = get_json("http://127.0.0.1:9000/exec?query=select%20count()%20from%20trades")["dataset"][0][0]
    assert count == before["applied_rows"] + before["waiting_rows"]


def test_the_model_is_restored_and_served(host, get_json):
    _only(host, "fleet-strategy-1")
    v2 = json.loads(host.file("/srv/model/versions.json").content_string)["v2"]
    model = host.file("/srv/model/repo/models/ppo_production/final_model.zip").content
    assert hashlib.md5(model).hexdigest() == v2
    assert get_json("http://127.0.0.1:8000/v1/health")["model_md5"] == v2


def test_a_healthy_configuration_is_not_touched(host):
    _only(host, "fleet-strategy-1")
    assert not host.file("/var/backups/tradeops-dr/config").exists
    assert host.run("git -C /srv/trading status --porcelain").stdout.strip() == ""


def test_the_broken_configuration_is_back_and_kept_aside(host):
    _only(host, "fleet-strategy-2")
    committed = host.run("git -C /srv/trading show HEAD:config/trading_config.toml").stdout
    assert host.file("/srv/trading/config/trading_config.toml").content_string == committed
    kept = host.run("find /var/backups/tradeops-dr/config -type f -name 'trading_config.toml*'").stdout.split()
    assert len(kept) == 1


def test_each_run_took_the_recovery_lock_and_gave_it_back(host):
    history = host.file("/var/lib/tradeops-dr/locks/history.jsonl").content_string.splitlines()
    events = [json.loads(line)["event"] for line in history]
    # converge and idempotence (and the --check converge, when check mode locks): each took it and gave it back
    assert events.count("taken") >= 2 and events.count("released") == events.count("taken"), events
    assert not host.file("/var/lib/tradeops-dr/locks/%s.lock.json" % _name(host)).exists
