"""testinfra: the container after a point-in-time recovery to the restore point before-damage."""

PSQL = "PGPASSWORD=molecule-only-secret psql -qAt -h 127.0.0.1 -p 5432 -U tradeops "


def _q(host, db, sql):
    res = host.run(PSQL + "-d %s -c \"%s\"" % (db, sql))
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def test_every_trade_deleted_after_the_restore_point_is_back(host):
    assert _q(host, "trading", "SELECT count(*) FROM trades") == "3000"
    assert _q(host, "trading", "SELECT count(*) FROM ticks") == "2500"


def test_the_damaged_data_directory_is_kept_aside(host):
    aside = host.run("find /srv/pg -maxdepth 1 -type d -name 'data.pre_pitr_*'").stdout.split()
    assert len(aside) == 1, aside  # one recovery: the idempotence run found the database healthy
    assert host.file(aside[0] + "/PG_VERSION").exists


def test_the_server_runs_on_a_new_timeline_and_archives_again(host):
    assert _q(host, "postgres", "SHOW archive_mode") == "on"
    assert int(_q(host, "postgres", "SELECT timeline_id FROM pg_control_checkpoint()")) >= 2


def test_the_backup_repository_is_private(host):
    assert host.file("/var/lib/pgbackrest").mode & 0o007 == 0
