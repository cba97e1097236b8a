"""The modules' main() in-process with real arguments, against real redis-server and
real AOF files: check mode, idempotence, refusals."""

from __future__ import annotations

import hashlib

from ansible_collections.tradeops.dr.plugins.modules import redis_aof, redis_health, redis_ledger_replay

from conftest import run_module


def _conn(r):
    return dict(login_port=r.port, login_password=r.srv.password)


def test_redis_health_reports_facts_and_shortfalls(redis_seeded, capsys):
    with redis_seeded.client() as c:
        c.delete("orders.fills")
    out, failed = run_module(redis_health, dict(_conn(redis_seeded), min_stream_lengths=redis_seeded.expected[
        "streams"], keys=["policy:kill_switch", "nope"], config_file=str(redis_seeded.srv.conf)), capsys)
    assert not failed and out["changed"] is False
    diag = out["redis"]
    assert diag["reachable"] and diag["info"]["role"] == "master" and diag["info"]["aof_enabled"] == 1
    assert diag["streams"]["orders.fills"] == 0
    assert "stream orders.fills has 0 entries, expected at least 190" in diag["shortfalls"]
    assert "key nope is missing" in diag["shortfalls"]
    assert diag["aof"]["enabled"] is True and diag["failover_risk"] == []
    assert redis_seeded.srv.password not in str(out)


def test_redis_health_refuses_a_bad_expected_length(redis_seeded, capsys):
    out, failed = run_module(redis_health, dict(_conn(redis_seeded), min_stream_lengths={"s": "many"}), capsys)
    assert failed and "min_stream_lengths[s] must be a whole number" in out["msg"]


def test_redis_health_on_a_key_of_the_wrong_type_fails(redis_seeded, capsys):
    out, failed = run_module(redis_health, dict(_conn(redis_seeded), streams=["policy:kill_switch"]), capsys)
    assert failed and out["msg"] == "key policy:kill_switch is a hash, not a stream"


def test_ledger_replay_check_mode_then_real_then_idempotent(redis_seeded, capsys):
    with redis_seeded.client() as c:
        c.flushall()
    args = dict(_conn(redis_seeded), ledger_path=str(redis_seeded.ledger))
    out, failed = run_module(redis_ledger_replay, dict(args, _ansible_check_mode=True), capsys)
    # the kill switch is control state: never written by a replay, reported as missing
    total = sum(redis_seeded.expected["streams"].values()) + len(redis_seeded.expected["keys"]) - 1
    assert not failed and out["changed"] and out["replay"]["would_write"] == total
    assert out["replay"]["protected"] == {"policy:kill_switch": "missing"}
    with redis_seeded.client() as c:
        assert c.dbsize() == 0
    out, failed = run_module(redis_ledger_replay, args, capsys)
    assert not failed and out["changed"] and out["replay"]["written"] == total
    assert sorted(out["replay"]["keys_written"]) == [k for k in redis_seeded.expected["keys"] if k != "policy:kill_switch"]
    with redis_seeded.client() as c:
        assert not c.exists("policy:kill_switch")
    out, failed = run_module(redis_ledger_replay, args, capsys)
    assert not failed and not out["changed"] and out["replay"]["written"] == 0


def test_ledger_replay_batch_size_must_be_positive(redis_seeded, capsys):
    out, failed = run_module(redis_ledger_replay, dict(_conn(redis_seeded), ledger_path=str(redis_seeded.ledger),
                                                       batch_size=0), capsys)
    assert failed and "batch_size must be at least 1" in out["msg"]


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_redis_aof_checked_valid_then_damaged_in_check_mode(redis_seeded, capsys, tmp_path):
    redis_seeded.kill9()
    args = dict(config_file=str(redis_seeded.srv.conf))
    out, failed = run_module(redis_aof, args, capsys)
    assert not failed and out["aof"]["valid"] and out["aof"]["kind"] == "multi-part" and not out["changed"]

    incr = sorted((redis_seeded.srv.data_dir / "appendonlydir").glob("*.incr.aof"))[-1]
    with open(incr, "r+b") as fh:
        fh.truncate(incr.stat().st_size - 5)
    sha = _sha(incr)
    backup = tmp_path / "bk"
    out, failed = run_module(redis_aof, dict(args, state="repaired", allow_truncate=True, backup_dir=str(backup),
                                             _ansible_check_mode=True), capsys)
    assert not failed and out["changed"] and out["aof"]["valid"] is False
    assert out["aof"]["would"][1].startswith("truncate with --fix, losing")
    assert _sha(incr) == sha and not backup.exists()

    out, failed = run_module(redis_aof, dict(args, state="checked"), capsys)
    assert not failed and out["aof"]["valid"] is False and _sha(incr) == sha


def test_redis_aof_repaired_requires_backup_dir(capsys, tmp_path):
    out, failed = run_module(redis_aof, dict(data_dir=str(tmp_path), state="repaired"), capsys)
    assert failed and "backup_dir" in out["msg"]


def test_a_damaged_rdb_base_is_kept_aside_and_not_truncated(redis_seeded, capsys, tmp_path):
    """The RDB part of a multi-part AOF cannot be repaired by --fix: refused (even with
    allow_truncate), the broken copy kept, the files left as they are."""
    import time

    with redis_seeded.client() as c:
        c.bgrewriteaof()  # the seeded data moves into the RDB base file
        deadline = time.monotonic() + 30
        while c.info("persistence")["aof_rewrite_in_progress"] or c.info("persistence")["aof_rewrite_scheduled"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    redis_seeded.kill9()
    (base,) = (redis_seeded.srv.data_dir / "appendonlydir").glob("*.base.rdb")
    data = bytearray(base.read_bytes())
    assert len(data) > 1000, "the base must hold the data set for the damage to be in it"
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xff" * 64
    base.write_bytes(bytes(data))
    sha = _sha(base)
    backup = tmp_path / "bk"
    out, failed = run_module(redis_aof, dict(config_file=str(redis_seeded.srv.conf), state="repaired",
                                             allow_truncate=True, backup_dir=str(backup)), capsys)
    assert failed and "the RDB part of the AOF is damaged" in out["msg"] and "--fix cannot repair it" in out["msg"]
    assert _sha(base) == sha
    copies = list(backup.glob("aof-*/appendonlydir/" + base.name))
    assert len(copies) == 1 and _sha(copies[0]) == sha


def test_a_replay_stopped_by_a_failed_batch_keeps_what_it_wrote_and_finishes_on_the_next_run(redis_seeded, capsys):
    """A write that fails half-way: here a Redis ACL lets the replay's user read every key but
    write only the streams, so the streams' batches pass and the first hash batch is refused.
    The message says so, the completed batches stay, and a run with the right user writes only
    the rest."""
    with redis_seeded.client() as c:
        c.flushall()
        c.acl_setuser("replayer", enabled=True, passwords=["+replayer-pw"], reset_keys=True,
                      keys=["%R~*", "~orders.*", "~signals:*"], commands=["+@all"])
    limited = dict(login_port=redis_seeded.port, login_user="replayer", login_password="replayer-pw",
                   ledger_path=str(redis_seeded.ledger), batch_size=20)
    out, failed = run_module(redis_ledger_replay, limited, capsys)
    assert failed and "stopped after a failed batch (completed batches are kept; run again to finish" in out["msg"]
    assert "NOPERM" in out["msg"] or "permission" in out["msg"].lower()
    # the batches of stream entries before the first hash went through; the batch holding the first
    # hash write was refused whole (MULTI/EXEC), its stream entries included
    total = sum(redis_seeded.expected["streams"].values())
    written = sum(redis_seeded.lengths().values())
    assert written == total - total % 20 and 0 < written < total
    with redis_seeded.client() as c:
        assert not c.keys("positions:*")
    out, failed = run_module(redis_ledger_replay, dict(_conn(redis_seeded), ledger_path=str(redis_seeded.ledger)),
                             capsys)
    assert not failed, out.get("msg")
    assert redis_seeded.lengths() == redis_seeded.expected["streams"]
    # only the rest (the kill switch is control state: never replayed)
    assert out["replay"]["stream_entries_written"] == total - written
    assert sorted(out["replay"]["keys_written"]) == [k for k in redis_seeded.expected["keys"] if k != "policy:kill_switch"]
