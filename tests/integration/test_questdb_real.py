"""playbooks/questdb_repair.yml through ansible-runner against a REAL QuestDB 8.1.2 (the jar
of ../shared/servers, installed by scripts/setup.sh; skipped with the reason where it is not
installed, failed under CI=true). The replay tests (test_questdb_repair.py) keep the error
shapes that are hard to provoke; this file is the main test of the role."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
from pathlib import Path

import pytest

from conftest import record
from tradeops_dr.sandbox import pid_alive, read_pid, wait_for

pytestmark = pytest.mark.integration
PLAYBOOK = "questdb_repair.yml"


def rows(srv, statement: str) -> list[dict]:
    data = srv.sql(statement)
    names = [c["name"] for c in data.get("columns", [])]
    return [dict(zip(names, r)) for r in data.get("dataset", [])]


def count(srv, table: str = "trades") -> int:
    return rows(srv, f"select count() from {table}")[0]["count"]


def wal(srv, table: str = "trades") -> dict:
    return next(r for r in rows(srv, "select * from wal_tables()") if r["name"] == table)


def applied(srv, table: str = "trades"):
    w = wal(srv, table)
    return w["writerTxn"] == w["sequencerTxn"] and not w["suspended"], w


def insert(srv, n: int, table: str = "trades") -> None:
    srv.sql(f"insert into {table} select timestamp_sequence(now(), 1000) ts, rnd_symbol('BTC','ETH') sym, "
            f"rnd_double() price from long_sequence({n})")


def make_trades(srv, n: int = 1000, table: str = "trades") -> None:
    srv.sql(f"create table {table} (ts timestamp, sym symbol, price double) timestamp(ts) partition by DAY WAL")
    insert(srv, n, table)
    wait_for(lambda: applied(srv, table), 30, f"{table} applied")


def suspend_with_pending(srv, pending_txns: int = 3, rows_each: int = 5, code: str = "") -> None:
    """Suspend the table the way QuestDB does on a failed apply, then write: the new
    transactions wait in the WAL (sequencerTxn ahead of writerTxn)."""
    srv.sql("alter table trades suspend wal" + code)
    for _txn in range(pending_txns):
        insert(srv, rows_each)
    wait_for(lambda: (wal(srv)["sequencerTxn"] >= wal(srv)["writerTxn"] + pending_txns, wal(srv)), 15,
             "transactions to reach the sequencer")


def role_vars(srv, tmp: Path, **overrides) -> dict:
    v = dict(
        questdb_repair_url=srv.url,
        questdb_repair_health_url=srv.health_url,
        questdb_repair_service=srv.service(),
        questdb_repair_ready_timeout=60,
        questdb_repair_root=str(srv.root),
        questdb_repair_tables=[dict(name="trades", timestamp="ts")],
        questdb_repair_state_file=str(tmp / "known-counts.json"),
        questdb_repair_min_free_bytes=1,
        questdb_repair_wal_timeout=30,
        questdb_repair_backup_dir=str(tmp / "backups"),
    )
    v.update(overrides)
    return v


def _msg(res) -> str:
    return " ".join(f.msg for f in res.failures)


@pytest.fixture
def qdb(questdb_real):
    make_trades(questdb_real)
    return questdb_real


def test_diagnosis_reads_the_version_of_a_release_build(qdb, run, tmp_path):
    # select build() of a release says "Build Information: QuestDB 8.1.2, ..." (capital Q)
    assert "QuestDB 8.1.2" in rows(qdb, "select build()")[0]["build"]
    res = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers", tags="diagnose")
    assert res.ok, res.failures
    assert "answers, QuestDB 8.1.2" in res.stdout


def test_healthy_server_twice_then_check_mode_changes_nothing(qdb, run, tmp_path):
    first = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")
    assert first.ok, first.failures
    assert json.loads((tmp_path / "known-counts.json").read_text()) == {"trades": 1000}
    second = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")
    assert second.ok and second.changed == 0
    check = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers", check=True)
    assert check.ok and check.changed == 0


def test_suspended_table_with_pending_rows_is_resumed_and_applied(qdb, run, tmp_path):
    suspend_with_pending(qdb, pending_txns=3, rows_each=5)
    before = wal(qdb)
    assert before["suspended"] and before["sequencerTxn"] - before["writerTxn"] == 3 and count(qdb) == 1000

    check = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers", check=True)
    assert check.ok, check.failures
    assert wal(qdb)["suspended"] and count(qdb) == 1000  # check mode resumed nothing

    res = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")
    assert res.ok, res.failures
    rec = record(res, "questdb_recovery")
    assert rec["resumed"] == ["alter table trades resume wal"]
    assert rec["tables"]["trades"]["count"] == 1015 == count(qdb)
    assert applied(qdb)[0]
    again = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")
    assert again.ok and again.changed == 0


def test_resume_from_txn_skips_the_named_transaction(qdb, run, tmp_path):
    suspend_with_pending(qdb, pending_txns=3, rows_each=5)
    w = wal(qdb)
    skip_to = w["writerTxn"] + 2  # the first pending transaction is skipped, the other two applied
    res = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_from_txn={"trades": skip_to}), group="questdb_servers")
    assert res.ok, res.failures
    assert record(res, "questdb_recovery")["resumed"] == [f"alter table trades resume wal from txn {skip_to}"]
    assert count(qdb) == 1010 and applied(qdb)[0]


def test_disk_full_is_triaged_before_any_resume(qdb, run, tmp_path):
    suspend_with_pending(qdb, pending_txns=1, code=" with 28, 'could not mmap: No space left on device'")
    assert wal(qdb)["errorTag"] == "DISK FULL"
    refused = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_min_free_bytes=10 ** 18), group="questdb_servers")
    assert not refused.ok
    assert "table trades is suspended for DISK FULL (could not mmap: No space left on device)" in _msg(refused)
    assert "Nothing was resumed" in _msg(refused)
    assert wal(qdb)["suspended"] and count(qdb) == 1000

    marker = tmp_path / "freed"
    res = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_free_space_command=f"touch {marker}"),
              group="questdb_servers")
    assert res.ok, res.failures
    assert marker.exists() and count(qdb) == 1005 and applied(qdb)[0]


def test_killed_server_is_restarted_with_its_data(qdb, run, tmp_path):
    run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")  # learn the counts
    qdb.kill(signal.SIGKILL)
    assert not qdb.ready()[0]
    res = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")
    try:
        assert res.ok, res.failures
        rec = record(res, "questdb_recovery")
        assert rec["started"] is True and rec["tables"]["trades"]["count"] == 1000
        assert qdb.ready()[0] and count(qdb) == 1000
    finally:
        qdb.kill(signal.SIGKILL)  # started by the role: stop it by its pidfile


def test_checkpoint_backup_then_restore_after_the_table_was_dropped(qdb, run, tmp_path):
    backup = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="backup"), group="questdb_servers")
    assert backup.ok, backup.failures
    rec = record(backup, "questdb_backup")
    manifest = json.loads((Path(rec["backup"]) / "MANIFEST.json").read_text())
    assert manifest["questdb_version"] == [8, 1, 2] and manifest["row_counts"] == {"trades": 1000}
    assert rows(qdb, "select * from checkpoint_status()")[0]["in_progress"] is False
    # the damage a restore is for: more rows, then the table dropped
    insert(qdb, 20)
    wait_for(lambda: applied(qdb), 30, "rows applied")
    (tmp_path / "known-counts.json").write_text(json.dumps({"trades": 1020}))
    qdb.sql("drop table trades")

    res = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="restore",
                                  questdb_repair_restore_from=rec["backup"]), group="questdb_servers")
    try:
        assert res.ok, res.failures
        assert count(qdb) == 1000 and not (qdb.root / "_restore").exists()
        aside = list(qdb.root.parent.glob("root.before-restore-*"))
        assert len(aside) == 1
        restored = record(res, "questdb_restore")
        assert restored["tables"]["trades"]["count"] == 1000
        # the known counts are now the restored ones: the next repair passes
        assert json.loads((tmp_path / "known-counts.json").read_text()) == {"trades": 1000}
        repair = run(PLAYBOOK, role_vars(qdb, tmp_path), group="questdb_servers")
        assert repair.ok, repair.failures
    finally:
        qdb.kill(signal.SIGKILL)


def test_restore_in_check_mode_plans_and_changes_nothing(qdb, run, tmp_path):
    backup = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="backup"), group="questdb_servers")
    assert backup.ok, backup.failures
    path = record(backup, "questdb_backup")["backup"]
    pid = read_pid(qdb.pidfile)
    res = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="restore", questdb_repair_restore_from=path),
              group="questdb_servers", check=True)
    assert res.ok, res.failures
    assert "would" in res.stdout and f"move {qdb.root}" in res.stdout
    assert read_pid(qdb.pidfile) == pid and pid_alive(pid) and qdb.ready()[0]
    assert not list(qdb.root.parent.glob("root.before-restore-*")) and not (qdb.root / "_restore").exists()


def test_restore_refuses_a_backup_of_another_major_before_stopping_anything(qdb, run, tmp_path):
    backup = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="backup"), group="questdb_servers")
    path = Path(record(backup, "questdb_backup")["backup"])
    manifest = json.loads((path / "MANIFEST.json").read_text())
    manifest["questdb_version"] = [7, 4, 0]
    (path / "MANIFEST.json").write_text(json.dumps(manifest))
    pid = read_pid(qdb.pidfile)
    res = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="restore", questdb_repair_restore_from=str(path)),
              group="questdb_servers")
    assert not res.ok
    assert "was made by QuestDB 7.4.0; the server is QuestDB 8.1.2: major versions differ" in _msg(res)
    assert read_pid(qdb.pidfile) == pid and pid_alive(pid), "QuestDB was stopped for a restore that was refused"
    assert not list(qdb.root.parent.glob("root.before-restore-*"))


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, from /proc: the sockets its file
    descriptors hold, looked up in /proc/net/tcp and tcp6 (state 0A = LISTEN)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:
                continue
            addr, port = cols[1].split(":")
            raw = bytes.fromhex(addr)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((str(ipaddress.ip_address(raw) if v6 else ipaddress.ip_address(raw)), int(port, 16)))
    return found


def test_sandbox_questdb_uses_only_loopback(questdb_real):
    """Issue 31: what QuestDB listens on, read from the sockets of its process (not from the
    configuration the harness wrote): every one on loopback, the four the harness chose among them."""
    pid = read_pid(questdb_real.pidfile)
    sockets = _listening(pid)
    assert {questdb_real.http_port, questdb_real.health_port, questdb_real.pg_port, questdb_real.ilp_port} <= \
        {port for _addr, port in sockets}, sockets
    for addr, port in sockets:
        ip = ipaddress.ip_address(addr)
        ip = ip.ipv4_mapped or ip if ip.version == 6 else ip
        assert ip.is_loopback, f"QuestDB listens on {addr}:{port}"


def test_a_backup_whose_copy_fails_still_releases_the_checkpoint(qdb, run, tmp_path):
    """The copy fails half-way (a file of the root cannot be read): CHECKPOINT RELEASE runs all
    the same, or QuestDB would keep superseded data files until someone releases it by hand."""
    (qdb.root / "db" / "unreadable").symlink_to(tmp_path / "gone")  # a dangling link: reading it fails
    res = run(PLAYBOOK, role_vars(qdb, tmp_path, questdb_repair_action="backup"), group="questdb_servers")
    assert not res.ok
    assert "the copy failed (the checkpoint was released)" in _msg(res)
    assert rows(qdb, "select * from checkpoint_status()")[0]["in_progress"] is False
    insert(qdb, 5)  # and QuestDB goes on applying writes
    wait_for(lambda: applied(qdb), 30, "rows applied")
    assert count(qdb) == 1005
