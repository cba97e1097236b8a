"""testinfra: the PMS after position_reconcile.yml made it agree with the exchange (molecule/conftest.py's psql)."""

testinfra_hosts = ["ansible://tradeops-dr-recon-pms"]


def _rows(psql, sql):
    return [line.split(" ") for line in psql("pms", sql).splitlines()]


def test_the_pms_agrees_with_the_exchange(psql):
    rows = _rows(psql, "SELECT symbol, qty::float, price::float, side FROM book ORDER BY symbol")
    assert rows == [["BTCUSDT", "0.25", "60000", "long"], ["ETHUSDT", "0", "0", "flat"]]


def test_each_change_is_journaled_once_with_the_old_values(psql):
    rows = _rows(psql, "SELECT instrument, kind, before_quantity::float, after_quantity::float, actor, incident "
                       "FROM position_adjustments ORDER BY instrument")
    # once: the idempotence run found nothing to adjust
    assert rows == [["BTCUSDT", "quantity", "0.2", "0.25", "molecule", "INC-RECON-1"],
                    ["ETHUSDT", "missing_on_exchange", "1", "0", "molecule", "INC-RECON-1"]]


def test_no_row_was_deleted(psql):
    assert _rows(psql, "SELECT count(*) FROM book") == [["2"]]
