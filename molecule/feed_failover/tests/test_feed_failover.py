"""testinfra: the container after molecule converged feed_failover (yahoo -> moneycontrol)."""

import json

REGISTRY = "/srv/trading/config/registry.yaml"


def _registry(host):
    pairs = [line.split(":", 1) for line in host.file(REGISTRY).content_string.splitlines()
             if ":" in line and not line.startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def test_moneycontrol_is_primary_and_yahoo_the_backup(host):
    reg = _registry(host)
    assert reg["primary_feed"] == "moneycontrol" and reg["backup_feed"] == "yahoo"


def test_the_old_registry_is_kept_aside(host):
    kept = host.run("find /var/backups/tradeops-dr/feeds -type f -name 'registry.yaml*'").stdout.split()
    assert len(kept) == 1, kept  # one switch: the idempotence run kept nothing more
    assert "primary_feed: yahoo" in host.file(kept[0]).content_string


def test_the_worker_was_restarted_and_ingests_from_the_new_primary(host):
    status = json.loads(host.file("/run/feed_worker.json").content_string)
    assert status["primary"] == "moneycontrol"
    assert int(host.file("/run/feed_worker.pid").content_string.strip()) == status["pid"]


def test_the_gap_was_filled_once_from_the_new_primary(host):
    lines = host.file("/srv/trading/gap_fill.log").content_string.splitlines()
    assert [json.loads(x)["gap_fill_from"] for x in lines] == ["moneycontrol"]
