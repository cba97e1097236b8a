"""testinfra: the PMS after position_reconcile.yml made it agree with the exchange."""

testinfra_hosts = ["ansible://tradeops-dr-recon-pms"]
PSQL = "PGPASSWORD=molecule-only-secret psql -qAt -h 127.0.0.1 -p 5432 -U tradeops -d pms -F '|' -c "


def _rows(host, sql):
    res = host.run(PSQL + '"%s"' % sql)
    assert res.rc == 0, res.stderr
    return [line.split("|") for line in res.stdout.splitlines()]


def test_the_pms_agrees_with_the_exchange(host):
    rows = _rows(host, "SELECT symbol, qty::float, price::float, side FROM book ORDER BY symbol")
    assert rows == [["BTCUSDT", "0.25", "60000", "long"], ["ETHUSDT", "0", "0", "flat"]]


def test_each_change_is_journaled_once_with_the_old_values(host):
    rows = _rows(host, "SELECT instrument, kind, before_quantity::float, after_quantity::float, actor, incident "
                       "FROM position_adjustments ORDER BY instrument")
    # once: the idempotence run found nothing to adjust
    assert rows == [["BTCUSDT", "quantity", "0.2", "0.25", "molecule", "INC-RECON-1"],
                    ["ETHUSDT", "missing_on_exchange", "1", "0", "molecule", "INC-RECON-1"]]


def test_no_row_was_deleted(host):
    assert _rows(host, "SELECT count(*) FROM book") == [["2"]]
