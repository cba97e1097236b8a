"""testinfra: the PMS's book after book_correction.yml, read from its PostgreSQL tables."""

testinfra_hosts = ["ansible://tradeops-dr-book-pms"]
PSQL = "PGPASSWORD=molecule-only-secret psql -qAt -h 127.0.0.1 -p 5432 -U tradeops -d pms -F '|' -c "


def _rows(host, sql):
    res = host.run(PSQL + '"%s"' % sql)
    assert res.rc == 0, res.stderr
    return [line.split("|") for line in res.stdout.splitlines()]


def test_the_wrong_position_is_closed_at_entry_and_the_right_one_open(host):
    rows = _rows(host, "SELECT id, instrument, size::float, status, realized_pnl::float, exit_price::float "
                       "FROM pms_positions ORDER BY id")
    assert rows == [["1", "BTC-PERP", "20", "CLOSED", "0", "50000"], ["2", "ETH-PERP", "10", "OPEN", "0", ""],
                    ["3", "BTC-PERP", "2", "OPEN", "0", ""]]


def test_the_mark_is_corrected(host):
    assert _rows(host, "SELECT current_price::float FROM pms_positions WHERE id = 2") == [["2950"]]


def test_each_correction_is_journaled_once(host):
    # once: the idempotence run found both in the journal
    rows = _rows(host, "SELECT entry_type, related_position_id, metadata->>'kind', metadata->>'incident' "
                       "FROM pms_journal ORDER BY id")
    assert rows == [["correction", "1", "position_correction", "INC-BOOK-1"],
                    ["correction", "", "mtm_correction", "INC-BOOK-1"]]


def test_the_pms_answers_its_health_check(host):
    assert host.run("python3 -c \"import urllib.request; print(urllib.request.urlopen("
                    "'http://127.0.0.1:8000/health').status)\"").stdout.strip() == "200"
