"""testinfra: the container after molecule converged timescale_restore on a damaged database."""


def _before(host):
    return [int(x) for x in host.file("/srv/pg/before.txt").content_string.split()]


def test_the_restored_database_holds_what_the_backup_held(host, psql):
    trades, positions, ticks, compressed = _before(host)
    assert trades == 3000 and compressed >= 2
    got = psql("trading", "SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM positions), "
                          "(SELECT count(*) FROM ticks)")
    assert [int(x) for x in got.split()] == [trades, positions, ticks]


def test_the_compressed_chunks_came_back_compressed(host, psql):
    compressed = _before(host)[3]
    got = psql("trading", "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                          "WHERE hypertable_name = 'ticks'")
    assert int(got) == compressed
    # and they read: a compressed chunk's rows are counted
    assert int(psql("trading", "SELECT count(*) FROM ticks WHERE ts < now() - interval '2 days'")) > 0


def test_the_damaged_database_is_kept_aside_not_dropped(host, psql):
    aside = psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'trading__pre_restore_%'")
    names = aside.split()
    assert len(names) == 1, names
    # it is the damaged copy: no trades, the rest as it was. It is frozen (timescaledb.restoring on, no
    # policy runs in it): its compressed chunks are read in a session that turns restoring off.
    assert psql(names[0], "SELECT count(*) FROM trades") == "0"
    assert psql(names[0], "SHOW timescaledb.restoring") == "on"
    assert int(psql(names[0], "SET timescaledb.restoring = off; SELECT count(*) FROM ticks")) == _before(host)[2]


def test_the_extension_is_timescaledb_2_28_3(host, psql):
    assert psql("trading", "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'") == "2.28.3"


def test_the_password_is_in_no_log(host):
    assert "molecule-only-secret" not in host.file("/srv/pg/postgres.log").content_string
