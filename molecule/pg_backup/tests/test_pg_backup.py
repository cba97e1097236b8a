"""testinfra: the container after molecule converged pg_backup (twice: idempotence)."""

import hashlib
import json

ROOT = "/var/backups/tradeops-dr/postgres"
PSQL = "PGPASSWORD=molecule-only-secret psql -qAt -h 127.0.0.1 -p 5432 -U tradeops -d trading -c "


def _manifests(host):
    res = host.run("find %s -name 'trading_*.manifest.json' -not -path '*/safety/*'" % ROOT)
    return [json.loads(host.file(p).content_string) | {"path": p} for p in res.stdout.split()]


def test_one_verified_backup_despite_two_runs(host):
    (m,) = _manifests(host)
    assert m["status"] == "verified"


def test_the_manifest_counts_what_the_database_holds(host):
    (m,) = _manifests(host)
    for table, count in m["row_counts"].items():
        assert int(host.run(PSQL + "'SELECT count(*) FROM %s'" % table).stdout.strip()) == count, table
    assert m["row_counts"]["public.ticks"] == 2500


def test_the_test_restore_read_the_same_rows_and_left_no_scratch_database(host):
    (m,) = _manifests(host)
    assert m["verification"]["test_restore"]["row_counts"] == m["row_counts"]
    dbs = host.run(PSQL + "'SELECT datname FROM pg_database'").stdout.split()
    assert sorted(d for d in dbs if d.startswith("trading")) == ["trading"]


def test_the_dump_matches_its_checksum(host):
    (m,) = _manifests(host)
    dump = m["path"].rsplit("/", 1)[0] + "/" + m["dump"]
    data = host.file(dump).content
    assert hashlib.sha256(data).hexdigest() == m["files"][m["dump"]]["sha256"]


def test_backups_are_private(host):
    # owner and group only (the collection's rule for backup locations: 0640 files, 0750 folders)
    (m,) = _manifests(host)
    folder = m["path"].rsplit("/", 1)[0]
    for path in (m["path"], folder + "/" + m["dump"], folder, ROOT):
        assert host.file(path).mode & 0o007 == 0, path
