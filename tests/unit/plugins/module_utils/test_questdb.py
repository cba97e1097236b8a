"""module_utils/_questdb.py against the recorded QuestDB 8.1.2 answers, served over real HTTP
by the replay stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _questdb
from conftest import QUESTDB_FIXTURES as FIXTURES
from tradeops_dr.sandbox import free_port, wait_for

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def client():
    if not FIXTURES.is_dir():
        pytest.fail(f"the recorded QuestDB answers are missing: {FIXTURES}")
    port, health = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "questdb_replay.py"), "--fixtures",
                             str(FIXTURES), "--port", str(port), "--health-port", str(health), "--wal", "suspended"])
    try:
        c = _questdb.QuestDBClient(dict(url=f"http://127.0.0.1:{port}", health_url=f"http://127.0.0.1:{health}"))
        wait_for(c.health, 15, "replay")
        yield c
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_version_from_build(client):
    assert client.version() == (8, 1, 2)


@pytest.mark.parametrize("text", [
    # a release build (the jar of ../shared/servers answers this)
    "Build Information: QuestDB 8.1.2, JDK 17.0.15, Commit Hash f5b0ff3331194700879ea6dc4835237828981d94",
    # the recorded answer came from a snapshot build
    "Build Information: questdb 8.1.2-SNAPSHOT, JDK 17.0.15, Commit Hash f5b0ff3331194700879ea6dc4835237828981d94",
])
def test_version_of_release_and_snapshot_builds(text):
    assert _questdb.parse_build(text) == (8, 1, 2)


def test_build_without_a_version_is_an_error():
    with pytest.raises(_questdb.QuestDBError, match="cannot read a version from 'Build Information: unknown'"):
        _questdb.parse_build("Build Information: unknown")


def test_wal_tables_and_problems_as_recorded(client):
    rows = client.wal_tables()
    assert [r["name"] for r in rows] == ["ilp_t", "t", "trades"]
    assert _questdb.wal_problems(rows) == [dict(name="trades", suspended=True, writerTxn=1, sequencerTxn=2, lag=1,
                                                errorTag="", errorMessage="")]


def test_checkpoint_status_and_the_second_create(client):
    assert client.checkpoint_status() == {"in_progress": False, "started_at": None}
    client.exec_sql("checkpoint create")
    assert client.checkpoint_status() == {"in_progress": True, "started_at": "2026-11-23T06:39:06.495816Z"}
    with pytest.raises(_questdb.QuestDBError) as exc:
        client.exec_sql("checkpoint create")
    assert exc.value.error == "Waiting for CHECKPOINT RELEASE to be called" and exc.value.position == 0
    assert client.exec_sql("checkpoint release") == {"ddl": "OK"}


def test_errors_carry_error_and_position(client):
    with pytest.raises(_questdb.QuestDBError, match=r"rejected `alter table no_such_table resume wal`: table does "
                                                    r"not exist \[table=no_such_table\] at position 12 \(HTTP 400\)"):
        client.exec_sql("alter table no_such_table resume wal")


def test_health_and_counts(client):
    ok, detail = client.health()
    assert ok and detail.endswith("HTTP 200 Status: Healthy")
    assert client.count("trades") == 1000
    assert client.newest("trades", "ts") == "2026-11-23T06:39:03.467048Z"


def test_unreachable_is_its_own_error():
    c = _questdb.QuestDBClient(dict(url=f"http://127.0.0.1:{free_port()}", health_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(_questdb.QuestDBUnreachable, match="cannot reach QuestDB at http://127.0.0.1:"):
        c.exec_sql("select 1")
    assert c.health()[0] is False


@pytest.mark.parametrize("name", ["trades; drop table t", "1trades", "", "a b", "t\"x"])
def test_unsafe_table_names_are_refused(name):
    with pytest.raises(ValueError, match="is refused"):
        _questdb.check_table(name)


def test_recorded_fixture_shapes_are_what_the_client_parses():
    body = json.loads(json.loads((FIXTURES / "wal_tables_suspended.json").read_text())["response"]["body"])
    assert [c["name"] for c in body["columns"]][:5] == ["name", "suspended", "writerTxn", "writerLagTxnCount",
                                                        "sequencerTxn"]
