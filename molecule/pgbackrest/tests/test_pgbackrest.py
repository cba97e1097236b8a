"""testinfra: the container after a point-in-time recovery to the restore point before-damage."""


def test_every_trade_deleted_after_the_restore_point_is_back(host, psql):
    assert psql("trading", "SELECT count(*) FROM trades") == "3000"
    assert psql("trading", "SELECT count(*) FROM ticks") == "2500"


def test_the_damaged_data_directory_is_kept_aside(host):
    aside = host.run("find /srv/pg -maxdepth 1 -type d -name 'data.pre_pitr_*'").stdout.split()
    assert len(aside) == 1, aside  # one recovery: the idempotence run found the database healthy
    assert host.file(aside[0] + "/PG_VERSION").exists


def test_the_server_runs_on_a_new_timeline_and_archives_again(host, psql):
    assert psql("postgres", "SHOW archive_mode") == "on"
    assert int(psql("postgres", "SELECT timeline_id FROM pg_control_checkpoint()")) >= 2


def test_the_backup_repository_is_private(host):
    assert host.file("/var/lib/pgbackrest").mode & 0o007 == 0
