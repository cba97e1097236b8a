"""testinfra: the container after molecule converged questdb_repair on a suspended WAL table."""

import json
import urllib.parse


def _sql(get_json, query):
    return get_json("http://127.0.0.1:9000/exec?query=" + urllib.parse.quote(query))["dataset"]


def _before(host):
    return json.loads(host.file("/srv/questdb/before.json").content_string)


def test_prepare_left_the_table_suspended_with_writes_waiting(host):
    before = _before(host)
    assert before["suspended"] is True
    assert int(before["sequencerTxn"]) >= int(before["writerTxn"]) + 3


def test_the_table_is_resumed_and_every_waiting_transaction_applied(host, get_json):
    ((suspended, writer, sequencer),) = _sql(get_json, "select suspended, writerTxn, sequencerTxn from wal_tables() "
                                                       "where name = 'trades'")
    assert suspended is False
    assert int(writer) == int(sequencer) >= int(_before(host)["sequencerTxn"])


def test_every_row_is_there(host, get_json):
    before = _before(host)
    assert _sql(get_json, "select count() from trades")[0][0] == before["applied_rows"] + before["waiting_rows"]


def test_the_server_that_was_repaired_is_the_one_prepare_started(host):
    # a WAL repair needs no restart: the same java process serves
    pid = int(host.file("/srv/questdb/questdb.pid").content_string.strip())
    assert pid == _before(host)["pid"]
    assert "questdb.jar" in host.file("/proc/%d/cmdline" % pid).content_string
    assert host.file("/srv/questdb/questdb.log").exists
