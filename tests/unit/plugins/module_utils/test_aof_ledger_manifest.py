"""Pure helpers of module_utils: redis-check-aof output, ledger validation, manifests and
path safety."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _aof, _ledger, _manifest, _redis

# Output of redis-check-aof 7.0.15 (Debian 12) on a multi-part AOF whose incr file lost
# its last 7 bytes, as recorded on this project's machines.
TRUNCATED = """Start checking Multi Part AOF
Start to check BASE AOF (RDB format).
[offset 89] \\o/ RDB looks OK! \\o/
AOF analyzed: filename=appendonly.aof.1.base.rdb, size=89, ok_up_to=89, ok_up_to_line=1, diff=0
BASE AOF appendonly.aof.1.base.rdb is valid
Start to check INCR files.
0x             b9a: Expected to read 7 bytes, got 0 bytes
AOF analyzed: filename=appendonly.aof.1.incr.aof, size=2970, ok_up_to=2914, ok_up_to_line=564, diff=56
AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it.
"""
MIDDLE = """AOF appendonly.aof.1.incr.aof format error
AOF analyzed: filename=appendonly.aof.1.incr.aof, size=2970, ok_up_to=1000, ok_up_to_line=193, diff=1970
AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it.
"""
VALID = """AOF analyzed: filename=appendonly.aof.1.base.rdb, size=89, ok_up_to=89, ok_up_to_line=1, diff=0
AOF analyzed: filename=appendonly.aof.1.incr.aof, size=2914, ok_up_to=2914, ok_up_to_line=564, diff=0
All AOF files and manifest are valid
"""


@pytest.mark.parametrize("text,rc,valid,cut,damaged", [
    (TRUNCATED, 1, False, 56, ["appendonly.aof.1.incr.aof"]),
    (MIDDLE, 1, False, 1970, ["appendonly.aof.1.incr.aof"]),
    (VALID, 0, True, 0, []),
])
def test_parse_check_output(text, rc, valid, cut, damaged):
    res = _aof.parse_check_output(text, rc)
    assert res["valid"] is valid
    assert res["bytes_to_cut"] == cut
    assert [d["file"] for d in res["damaged"]] == damaged


def test_truncated_report_keeps_offsets_and_the_explaining_lines():
    res = _aof.parse_check_output(TRUNCATED, 1)
    assert res["damaged"][0] == dict(file="appendonly.aof.1.incr.aof", size=2970, ok_up_to=2914,
                                     ok_up_to_line=564, bytes_after_ok=56)
    assert any("Expected to read 7 bytes" in line for line in res["detail"])


def test_aof_target_finds_multi_part_single_and_absent(tmp_path):
    assert _aof.AofTarget(str(tmp_path)).kind == "absent"
    (tmp_path / "appendonly.aof").write_bytes(b"*1\r\n$4\r\nPING\r\n")
    t = _aof.AofTarget(str(tmp_path))
    assert t.kind == "single" and t.files() == {"appendonly.aof": 14}
    d = tmp_path / "appendonlydir"
    d.mkdir()
    (d / "appendonly.aof.manifest").write_text("file appendonly.aof.1.incr.aof seq 1 type i\n")
    (d / "appendonly.aof.1.incr.aof").write_bytes(b"")
    t = _aof.AofTarget(str(tmp_path))
    assert t.kind == "multi-part" and t.check_path.endswith("appendonly.aof.manifest")


def test_redis_conf_parsing_follows_includes_and_finds_replicaof(tmp_path):
    (tmp_path / "common.conf").write_text("appendonly yes\ndir /srv/redis\n")
    conf = tmp_path / "redis.conf"
    conf.write_text("# comment\nport 6380\ninclude common.conf\nreplicaof 10.0.0.4 6379\n"
                    'appendfilename "trading.aof"\n')
    parsed = _redis.parse_redis_conf(str(conf))
    assert parsed["port"] == "6380" and parsed["appendonly"] == "yes"
    assert _redis.replica_of(parsed) == "10.0.0.4 6379"
    assert _redis.aof_location(parsed, str(conf)) == ("/srv/redis", "appendonlydir", "trading.aof")


def test_relative_redis_dir_is_taken_from_the_config_folder(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("dir ./data\n")
    assert _redis.aof_location(_redis.parse_redis_conf(str(conf)), str(conf))[0] == str(tmp_path / "data")


def _rows(*rows):
    return [dict(seq=i + 1, op=r[0], key=r[1], entry_id=r[2], payload=r[3]) for i, r in enumerate(rows)]


def test_validate_decodes_good_rows():
    entries = _ledger.validate(_rows(
        ("xadd", "orders.fills", "1-0", json.dumps({"qty": 3, "px": 1.5})),
        ("hset", "policy:kill_switch", None, json.dumps({"enabled": False})),
        ("set", "strategy:mode", None, json.dumps("live")),
    ))
    assert entries[0]["payload"] == {"qty": "3", "px": "1.5"}
    assert entries[1]["payload"] == {"enabled": "false"}
    assert entries[2]["payload"] == "live"


@pytest.mark.parametrize("row,needle", [
    (("xdel", "s", "1-0", "{}"), "op 'xdel' is not one of xadd, hset, set"),
    (("xadd", "", "1-0", '{"a": 1}'), "empty key"),
    (("xadd", "s", "1-0", "{nope"), "payload is not JSON"),
    (("xadd", "s", "abc", '{"a": 1}'), "xadd needs entry_id of the form <ms>-<seq>"),
    (("xadd", "s", "0-0", '{"a": 1}'), "xadd needs entry_id"),
    (("hset", "h", None, "[]"), "hset payload must be a non-empty JSON object"),
    (("hset", "h", None, '{"a": {"b": 1}}'), "field(s) a must be strings or numbers"),
    (("set", "k", None, "true"), "set payload must be a JSON string or number"),
])
def test_validate_names_each_bad_row(row, needle):
    with pytest.raises(_ledger.LedgerError) as exc:
        _ledger.validate(_rows(row))
    assert needle in str(exc.value) and "row seq=1" in str(exc.value)
    assert "nothing was written" in str(exc.value)


def test_validate_refuses_stream_ids_out_of_order():
    with pytest.raises(_ledger.LedgerError, match="entry_id 5-0 is not after the previous entry of stream s"):
        _ledger.validate(_rows(("xadd", "s", "9-0", '{"a": 1}'), ("xadd", "s", "5-0", '{"a": 2}')))


def test_read_ledger_errors(tmp_path):
    with pytest.raises(_ledger.LedgerError, match="does not exist"):
        _ledger.read_ledger(str(tmp_path / "nope.db"))
    with pytest.raises(_ledger.LedgerError, match="not a plain identifier"):
        _ledger.read_ledger(str(tmp_path / "nope.db"), table='x"; drop table y; --')
    import sqlite3

    db = tmp_path / "other.db"
    sqlite3.connect(db).execute("CREATE TABLE ledger (id int)").connection.close()
    with pytest.raises(_ledger.LedgerError, match="expected columns seq, op, key, entry_id, payload"):
        _ledger.read_ledger(str(db))


def test_plan_and_apply_against_real_redis_are_idempotent(redis_seeded):
    from tradeops_dr import seed

    entries = _ledger.validate(_ledger.read_ledger(str(redis_seeded.ledger)))
    with redis_seeded.client() as c:
        assert _ledger.plan(c, entries)["writes"] == []
        c.flushall()
        report = _ledger.plan(c, entries)
        n = len(report["writes"])
        # every stream entry and key but the control state, which a replay never writes
        assert n == sum(redis_seeded.expected["streams"].values()) + len(redis_seeded.expected["keys"]) - 1
        assert report["protected"] == {"policy:kill_switch": "missing"}
        assert not any(w[1] == "policy:kill_switch" for w in report["writes"])
        assert _ledger.apply(c, report["writes"], batch=64) == n
        assert _ledger.plan(c, entries)["writes"] == []
        assert not c.exists("policy:kill_switch")
        # with no protected keys (seeding an empty Redis on purpose) the ledger's state is written
        assert _ledger.apply(c, _ledger.plan(c, entries, protected=())["writes"]) == 1
        assert c.hget("policy:kill_switch", "enabled") == "false"
        # a live value that differs is reported and left; a missing field is added
        c.hset("positions:ES", "qty", "999")
        c.hdel("positions:ES", "last_price")
        report = _ledger.plan(c, entries)
        assert report["writes"] == [("hset", "positions:ES", None, {"last_price": report["writes"][0][3]["last_price"]})]
        assert [d for d in report["diverged"] if d.startswith("hash positions:ES field qty: live '999', ledger")]
        _ledger.apply(c, report["writes"])
        assert c.hget("positions:ES", "qty") == "999"
        # a key of another type is a conflict, not an overwrite
        c.delete("strategy:mode")
        c.rpush("strategy:mode", "x")
        assert _ledger.plan(c, entries)["conflicts"] == [
            "key strategy:mode is a list in Redis, the ledger has a string"]
    assert seed.expected_counts(seed.ledger_rows())["ledger_entries"] == len(entries)


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "a/../../b", "~/x", "", ".."])
def test_safe_relpath_refuses_escapes(rel):
    with pytest.raises(ValueError, match="unsafe path"):
        _manifest.safe_relpath(rel)


def test_safe_relpath_accepts_plain_relative_paths():
    assert _manifest.safe_relpath("config/./trading.toml") == os.path.join("config", "trading.toml")


def test_copy_aside_verifies_and_reuses_an_identical_copy(tmp_path):
    src = tmp_path / "aof"
    src.mkdir()
    (src / "a.aof").write_bytes(b"x" * 100)
    backups = tmp_path / "backups"
    dest, entries, reused = _manifest.copy_aside(str(src), str(backups), "aof-", reason="test")
    assert not reused and entries["a.aof"]["size"] == 100
    manifest = json.loads((backups / os.path.basename(dest) / "MANIFEST.json").read_text())
    assert manifest["files"] == entries and manifest["reason"] == "test"
    again, _e, reused = _manifest.copy_aside(str(src), str(backups), "aof-", reason="test")
    assert reused and again == dest
    (src / "a.aof").write_bytes(b"y" * 100)  # changed content: a new copy, the old one kept
    third, _e, reused = _manifest.copy_aside(str(src), str(backups), "aof-", reason="test")
    assert not reused and third != dest and len(list(backups.iterdir())) == 2


def test_a_reset_never_lifts_an_engagement_that_landed_after_its_check(redis_seeded, monkeypatch):
    """Issue 26: reset read the switch, then wrote 'active' in a second step; an engagement under another
    incident landing in between was lifted by a reset confirmed for the old one. The check and the write
    are now one Lua script."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _killswitch

    key, events = "policy:kill_switch", "policy:kill_switch:events"
    with redis_seeded.client() as c:
        _killswitch.engage(c, key, events, "halted", "feed down", "ops", "INC-OLD")
        real_status = _killswitch.status

        def status_then_engaged_again(client, k):
            seen = real_status(client, k)
            client.hset(k, mapping={"incident": "INC-NEW", "reason": "drawdown 16%"})  # another engagement lands
            return seen

        monkeypatch.setattr(_killswitch, "status", status_then_engaged_again)
        with pytest.raises(_killswitch.KillSwitchError, match="engaged again \\(incident INC-NEW\\)"):
            _killswitch.reset(c, key, events, "alice", "feed back", "INC-OLD")
        monkeypatch.setattr(_killswitch, "status", real_status)
        now = c.hgetall(key)
        assert now["enabled"] == "true" and now["incident"] == "INC-NEW"
        assert _killswitch.reset(c, key, events, "alice", "reviewed", "INC-NEW")[0] is True
        assert c.hget(key, "enabled") == "false" and c.xrange(events)[-1][1]["incident"] == "INC-NEW"
        assert _killswitch.same_person(" Alice", "alice") and not _killswitch.same_person("alice", "bob")
