"""testinfra: the PMS's book after book_correction.yml, read from its PostgreSQL tables (molecule/conftest.py's
psql and get_json)."""

testinfra_hosts = ["ansible://tradeops-dr-book-pms"]


def _rows(psql, sql):
    return [line.split(" ") for line in psql("pms", sql).splitlines()]


def test_the_wrong_position_is_closed_at_entry_and_the_right_one_open(psql):
    rows = _rows(psql, "SELECT id, instrument, size::float, status, realized_pnl::float, "
                       "coalesce(exit_price::float::text, '-') FROM pms_positions ORDER BY id")
    assert rows == [["1", "BTC-PERP", "20", "CLOSED", "0", "50000"], ["2", "ETH-PERP", "10", "OPEN", "0", "-"],
                    ["3", "BTC-PERP", "2", "OPEN", "0", "-"]]


def test_the_mark_is_corrected(psql):
    assert _rows(psql, "SELECT current_price::float FROM pms_positions WHERE id = 2") == [["2950"]]


def test_each_correction_is_journaled_once(psql):
    # once: the idempotence run found both in the journal
    rows = _rows(psql, "SELECT entry_type, coalesce(related_position_id::text, '-'), metadata->>'kind', "
                       "metadata->>'incident' FROM pms_journal ORDER BY id")
    assert rows == [["correction", "1", "position_correction", "INC-BOOK-1"],
                    ["correction", "-", "mtm_correction", "INC-BOOK-1"]]


def test_the_pms_answers_its_health_check(get_json):
    assert get_json("http://127.0.0.1:8000/health") == {"status": "healthy", "database": "connected"}
