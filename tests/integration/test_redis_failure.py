"""playbooks/redis_failure.yml run through ansible-runner against real redis-server
processes: crash, data loss, damaged AOF, bad input, check mode and idempotence. A refusal that is
a module's own (the ledger replay's, service control's) runs the module's main() in-process with the
arguments the role passes, against the same servers (issue 24: a playbook run per behaviour a user
sees, not per refusal)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from ansible_collections.tradeops.dr.plugins.modules import redis_ledger_replay, service_control
from conftest import artifacts_text, record, run_module

pytestmark = pytest.mark.integration

PLAYBOOK = "redis_failure.yml"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ROLE_DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[2] / "roles" / "redis_restart" / "defaults" /
                                "main.yml").read_text())


def _replay(capsys, r, ledger: Path) -> tuple[dict, bool]:
    """The role's ledger replay (verify.yml) in-process: its connection, ledger and protected keys."""
    return run_module(redis_ledger_replay, dict(login_port=r.port, login_password=r.srv.password,
                                                ledger_path=str(ledger),
                                                protected_keys=ROLE_DEFAULTS["redis_restart_protected_keys"]), capsys)


def test_healthy_redis_changes_nothing(redis_seeded, run):
    before = redis_seeded.snapshot()
    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert res.ok, res.failures
    assert res.changed == 0
    assert record(res)["restarted"] is False
    assert redis_seeded.snapshot() == before


def _files(folder: Path) -> dict:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_kill9_restart_brings_back_every_entry(redis_seeded, run):
    before = redis_seeded.snapshot()
    old_pid = redis_seeded.srv.pidfile.read_text().strip()
    redis_seeded.kill9()
    assert not redis_seeded.running()
    aof_dir = redis_seeded.srv.data_dir / "appendonlydir"
    on_disk = _files(aof_dir)  # what the crash left: the snapshot must keep exactly these bytes

    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert res.ok, res.failures
    rec = record(res)
    assert rec["was_reachable"] is False and rec["restarted"] is True
    assert rec["replayed_entries"] == 0  # the AOF had it all: no replay needed
    with redis_seeded.client() as c:
        assert c.ping() is True
    assert redis_seeded.srv.pidfile.read_text().strip() != old_pid
    assert redis_seeded.snapshot() == before
    assert float(rec["recovery_seconds"]) > 0
    # preserve state first (runbook 004): the AOF as the crash left it, and the ledger, kept before the restart
    kept = Path(rec["snapshot"])
    assert kept.parent == redis_seeded.backup_dir.parent / "snapshots"
    assert _files(kept / "redis" / "appendonlydir") == on_disk
    ledger = sqlite3.connect(kept / "redis" / "ledger" / redis_seeded.ledger.name)
    assert ledger.execute("SELECT count(*) FROM ledger").fetchone()[0] > 0
    ledger.close()
    manifest = json.loads((kept / "MANIFEST.json").read_text())
    assert set(manifest["files"]) >= {f"appendonlydir/{n}" for n in on_disk} | {"ledger/ledger.db"}

    again = run(PLAYBOOK, redis_seeded.role_vars())
    assert again.ok and again.changed == 0


def test_flushed_redis_is_refilled_from_the_ledger_exactly_once(redis_seeded, run):
    # a risk limit the platform wrote (to its ledger and to Redis), which redis_restart_keys does not list
    ledger = sqlite3.connect(redis_seeded.ledger)
    with ledger:
        seq = ledger.execute("SELECT max(seq) FROM ledger").fetchone()[0] + 1
        ledger.execute("INSERT INTO ledger (seq, op, key, entry_id, payload) VALUES (?, 'hset', 'risk:drawdown', "
                       "NULL, ?)", (seq, json.dumps({"max": "0.15", "set_by": "risk-officer"})))
    ledger.close()
    with redis_seeded.client() as c:
        c.hset("risk:drawdown", mapping={"max": "0.15", "set_by": "risk-officer"})
    before = redis_seeded.snapshot()
    with redis_seeded.client() as c:
        c.flushall()

    # everything comes back but the control state (the kill switch, the risk limit): a replay never writes it,
    # so the run fails closed naming every control key the ledger knows, listed or not, with its last value
    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert not res.ok
    # Redis answered: a BGSAVE first, so the kept RDB is the emptied dataset the replay then filled
    kept = Path(record(res)["snapshot"])
    assert (kept / "redis" / "dump.rdb").stat().st_size > 0
    msg = " ".join(f.msg for f in res.failures)
    assert "key policy:kill_switch is missing" in msg and "Control state missing: policy:kill_switch" in msg
    # issue 31: risk:drawdown was lost silently (only listed keys were checked)
    assert 'risk:drawdown (the ledger\'s last value: {"max": "0.15", "set_by": "risk-officer"})' in msg, msg
    assert "a person confirms each value and sets it" in msg
    rec = record(res)
    n_stream_entries = sum(redis_seeded.expected["streams"].values())
    n_keys = len(redis_seeded.expected["keys"])
    assert rec["replayed_entries"] == n_stream_entries + n_keys - 1
    assert rec["control_state"] == {"policy:kill_switch": "missing", "risk:drawdown": "missing"}
    with redis_seeded.client() as c:
        assert not c.exists("policy:kill_switch")
        c.hset("policy:kill_switch", mapping=before["policy:kill_switch"])  # the operator sets it
    # the switch alone is not enough: the risk limit is still missing, and named
    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert not res.ok and "Control state missing: risk:drawdown" in " ".join(f.msg for f in res.failures)
    with redis_seeded.client() as c:
        c.hset("risk:drawdown", mapping={"max": "0.15", "set_by": "risk-officer"})  # and the risk limit

    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert res.ok, res.failures
    assert redis_seeded.snapshot() == before  # same IDs, same fields, same final hash state

    # replaying again, even when forced, writes nothing
    again = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_replay="always"))
    assert again.ok, again.failures
    assert again.changed == 0
    assert record(again)["replayed_entries"] == 0
    assert redis_seeded.snapshot() == before


def test_lost_tail_adds_only_what_is_missing_and_reports_what_differs(redis_seeded, run):
    """What an appendfsync window loses: the newest writes. Redis holds the first 300 ledger
    writes; the replay adds the missing stream entries and keys, and reports - never
    overwrites - the hash fields whose live value differs from the ledger's final state."""
    from tradeops_dr import seed

    before = redis_seeded.snapshot()
    rows = seed.ledger_rows()
    kept = rows[:300]
    with redis_seeded.client() as c:
        c.flushall()
        seed.apply_to_redis(c, kept)
    after_loss = redis_seeded.snapshot()
    kept_keys = {r[1] for r in kept if r[0] != "xadd"}
    lost_entries = sum(1 for r in rows[300:] if r[0] == "xadd")
    new_keys = {r[1] for r in rows[300:] if r[0] != "xadd"} - kept_keys
    stale = sorted(k for k in kept_keys if k != "policy:kill_switch" and after_loss[k] != before[k])
    assert stale, "the test needs hashes whose newest state was lost"

    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert res.ok, res.failures
    rec = record(res)
    assert rec["replayed_entries"] == lost_entries + len(new_keys)
    now = redis_seeded.snapshot()
    for key in stale:  # live values are left as they are, and each difference is reported
        assert now[key] == after_loss[key]
        assert any(d.startswith(f"hash {key} field ") for d in rec["diverged"]), rec["diverged"]
    for key, value in before.items():
        if key not in stale:
            assert now[key] == value, key


def test_entries_below_a_stream_top_are_refused_and_nothing_is_written(redis_seeded, capsys):
    """XDEL keeps a stream's last ID: entries below it cannot be re-added in order. The
    replay must say so and write nothing at all, not half of the ledger."""
    with redis_seeded.client() as c:
        ids = [eid for eid, _fields in c.xrevrange("orders.fills", count=25)]
        c.xdel("orders.fills", *ids)
        c.delete("positions:EURUSD")
    after_loss = redis_seeded.snapshot()
    out, failed = _replay(capsys, redis_seeded, redis_seeded.ledger)
    assert failed
    msg = out["msg"]
    assert "nothing was written" in msg and "stream orders.fills: 25 ledger entries" in msg
    assert "cannot be inserted in order" in msg
    assert redis_seeded.snapshot() == after_loss


def test_check_mode_on_a_dead_server_changes_nothing(redis_seeded, run):
    redis_seeded.kill9()
    aof_dir = redis_seeded.srv.data_dir / "appendonlydir"
    files_before = {p.name: _sha(p) for p in aof_dir.iterdir()}
    res = run(PLAYBOOK, redis_seeded.role_vars(), check=True)
    assert res.ok, res.failures
    assert not redis_seeded.running()
    assert {p.name: _sha(p) for p in aof_dir.iterdir()} == files_before
    assert not redis_seeded.backup_dir.exists()
    assert "Start the Redis server and wait for PONG" in res.stdout
    # a dict's missing key must not print the dict's own method (jinja's ['keys'] falls back to .keys)
    assert "built-in method" not in res.stdout and "streams {}; keys {}" in res.stdout


def test_check_mode_on_a_flushed_server_reports_the_replay_and_writes_nothing(redis_seeded, run):
    with redis_seeded.client() as c:
        c.flushall()
    res = run(PLAYBOOK, redis_seeded.role_vars(), check=True)
    assert res.ok, res.failures
    rec = record(res)
    # every stream entry and key but the kill switch (control state is never replayed)
    assert rec["would_replay"] == sum(redis_seeded.expected["streams"].values()) + len(redis_seeded.expected["keys"]) - 1
    assert rec["replayed_entries"] == 0
    with redis_seeded.client() as c:
        assert c.dbsize() == 0


def _cut_aof_tail(redis_seeded, nbytes: int) -> Path:
    incr = sorted((redis_seeded.srv.data_dir / "appendonlydir").glob("*.incr.aof"))[-1]
    with open(incr, "r+b") as fh:
        fh.truncate(incr.stat().st_size - nbytes)
    return incr


def test_truncated_aof_is_kept_aside_and_refused_without_permission(redis_seeded, run):
    redis_seeded.kill9()
    incr = _cut_aof_tail(redis_seeded, 7)
    broken_sha = _sha(incr)

    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "is damaged" in msg and "allow_truncate" in msg and "kept aside" in msg
    assert incr.name in msg
    # nothing repaired, nothing started, the broken AOF is intact and a verified copy exists
    assert not redis_seeded.running()
    assert _sha(incr) == broken_sha
    copies = list(redis_seeded.backup_dir.glob("aof-*/appendonlydir/" + incr.name))
    assert len(copies) == 1 and _sha(copies[0]) == broken_sha
    manifest = json.loads((copies[0].parent.parent / "MANIFEST.json").read_text())
    assert manifest["files"][incr.name]["sha256"] == broken_sha

    # a second refused run does not pile up identical copies
    res2 = run(PLAYBOOK, redis_seeded.role_vars())
    assert not res2.ok
    assert len(list(redis_seeded.backup_dir.glob("aof-*"))) == 1


def test_check_mode_on_a_damaged_aof_predicts_the_refusal(redis_seeded, run):
    """Before, --check said it would start Redis while the real run refuses the damaged AOF."""
    redis_seeded.kill9()
    incr = _cut_aof_tail(redis_seeded, 7)
    broken_sha = _sha(incr)
    res = run(PLAYBOOK, redis_seeded.role_vars(), check=True)
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "check mode: the real run would copy the AOF aside and stop" in msg and "allow_truncate" in msg
    assert "Start the Redis server and wait for PONG" not in res.stdout  # no "would start"
    assert not redis_seeded.running() and _sha(incr) == broken_sha and not redis_seeded.backup_dir.exists()
    allowed = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_aof_allow_truncate=True), check=True)
    assert allowed.ok, allowed.failures
    assert not redis_seeded.running() and _sha(incr) == broken_sha and not redis_seeded.backup_dir.exists()


def test_truncated_aof_over_the_loss_limit_is_refused(redis_seeded, run):
    redis_seeded.kill9()
    incr = _cut_aof_tail(redis_seeded, 7)
    broken_sha = _sha(incr)
    res = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_aof_allow_truncate=True,
                                               redis_restart_aof_max_loss_bytes=10))
    assert not res.ok
    assert "more than max_loss_bytes=10" in " ".join(f.msg for f in res.failures)
    assert _sha(incr) == broken_sha and not redis_seeded.running()


def test_truncated_aof_repaired_when_allowed_and_refilled_from_the_ledger(redis_seeded, run):
    before = redis_seeded.snapshot()
    redis_seeded.kill9()
    incr = _cut_aof_tail(redis_seeded, 7)
    size_before = incr.stat().st_size

    res = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_aof_allow_truncate=True))
    assert res.ok, res.failures
    aof = record(res)["aof"]
    assert aof["repaired"] is True and aof["kind"] == "multi-part"
    damaged = {d["file"]: d for d in aof["damaged"]}
    assert list(damaged) == [incr.name]
    # the fix cut the file back to its last valid command, and that is what was lost
    assert aof["bytes_lost"] == size_before - damaged[incr.name]["ok_up_to"] > 0
    assert Path(aof["backup"], "MANIFEST.json").is_file()
    # the commands cut off the AOF came back from the ledger
    assert record(res)["replayed_entries"] >= 1
    assert redis_seeded.snapshot() == before


# --------------------------------------------------------------------------- bad input

def test_unknown_manager_is_refused_before_anything_runs(redis_seeded, capsys):
    redis_seeded.kill9()
    svc = dict(name="redis", manager="supervisord", pidfile=str(redis_seeded.srv.pidfile))
    out, failed = run_module(service_control, dict(service=svc, state="started"), capsys)
    assert failed
    assert "manager" in out["msg"] and "supervisord" in out["msg"] and "process, systemd, docker, compose" in out["msg"]
    assert not redis_seeded.running()


def test_process_manager_without_start_command_says_so(redis_seeded, capsys):
    redis_seeded.kill9()
    svc = dict(name="redis", manager="process", pidfile=str(redis_seeded.srv.pidfile))
    out, failed = run_module(service_control, dict(service=svc, state="started"), capsys)
    assert failed and "needs start_command" in out["msg"]
    assert not redis_seeded.running()


def test_wrong_port_fails_with_the_last_probe_error_and_writes_nothing(redis_seeded, run):
    from tradeops_dr.sandbox import free_port

    before = redis_seeded.snapshot()
    wrong = free_port(avoid={redis_seeded.port})
    res = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_port=wrong, redis_restart_ready_timeout=2))
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert f"127.0.0.1:{wrong}" in msg and "did not pass within" in msg and "Connection refused" in msg
    assert "attempts" in msg
    assert redis_seeded.snapshot() == before


def test_missing_ledger_fails_clearly_and_writes_nothing(redis_seeded, capsys):
    with redis_seeded.client() as c:
        c.flushall()
    out, failed = _replay(capsys, redis_seeded, Path(str(redis_seeded.ledger) + ".missing"))
    assert failed and "ledger.db.missing does not exist" in out["msg"]
    with redis_seeded.client() as c:
        assert c.dbsize() == 0


def test_malformed_ledger_rows_are_listed_and_nothing_is_written(redis_seeded, capsys, tmp_path):
    bad = tmp_path / "bad-ledger.db"
    bad.write_bytes(redis_seeded.ledger.read_bytes())
    with sqlite3.connect(bad) as conn:
        conn.execute("INSERT INTO ledger VALUES (100000, 'xdel', 'orders.fills', NULL, '{}')")
        conn.execute("INSERT INTO ledger VALUES (100001, 'hset', 'positions:ES', NULL, '{not json')")
        conn.execute("INSERT INTO ledger VALUES (100002, 'xadd', 'orders.fills', 'garbage', '{\"a\": 1}')")
    conn.close()
    with redis_seeded.client() as c:
        c.flushall()
    out, failed = _replay(capsys, redis_seeded, bad)
    assert failed
    msg = out["msg"]
    assert "3 malformed ledger row(s), nothing was written" in msg
    assert "seq=100000" in msg and "seq=100001" in msg and "seq=100002" in msg
    with redis_seeded.client() as c:
        assert c.dbsize() == 0


def test_wrong_password_fails_clearly_and_no_secret_is_printed(redis_seeded, run):
    before = redis_seeded.snapshot()
    wrong = "not-the-password-" + redis_seeded.srv.password[-6:]
    res = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_password=wrong))
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "authentication" in msg and "password not shown" in msg
    text = artifacts_text(res)
    assert wrong not in text and redis_seeded.srv.password not in text
    assert redis_seeded.snapshot() == before


def test_the_password_never_reaches_the_output_of_a_recovery(redis_seeded, run):
    """A crash AND data loss: restart, AOF check and the ledger replay all run, and their
    output is searched for the password."""
    with redis_seeded.client() as c:
        c.delete("orders.fills", "positions:ES")  # lost after the last AOF write...
    redis_seeded.kill9()  # ...and then the crash
    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert res.ok, res.failures
    rec = record(res)
    assert rec["restarted"] is True and int(rec["replayed_entries"]) > 0  # the replay's output is there to search
    assert redis_seeded.srv.password not in artifacts_text(res)


def test_diagnose_tag_is_read_only_on_a_dead_server(redis_seeded, run):
    redis_seeded.kill9()
    res = run(PLAYBOOK, redis_seeded.role_vars(), tags="diagnose")
    assert res.ok, res.failures
    assert res.changed == 0
    assert not redis_seeded.running()
    assert "DOWN - cannot connect to Redis at 127.0.0.1:%d" % redis_seeded.port in res.stdout


def test_a_recovery_never_turns_off_an_engaged_kill_switch(redis_seeded, run):
    """Engage the switch, lose a stream, recover: the stream comes back from the ledger, the
    switch stays engaged (the ledger's older enabled=false is never written), and so do a risk
    limit and the active broker the ledger knows older values of."""
    import json
    import sqlite3

    with sqlite3.connect(redis_seeded.ledger) as conn:
        top = conn.execute("SELECT max(seq) FROM ledger").fetchone()[0]
        conn.execute("INSERT INTO ledger VALUES (?, 'hset', 'risk:limits', NULL, ?)",
                     (top + 1, json.dumps({"max_position": "1000000"})))
        conn.execute("INSERT INTO ledger VALUES (?, 'set', 'broker:active', NULL, ?)", (top + 2, json.dumps("primary")))
    conn.close()
    engaged = {"enabled": "true", "state": "halted", "reason": "drawdown 5%", "updated_by": "risk-desk"}
    with redis_seeded.client() as c:
        c.hset("policy:kill_switch", mapping=engaged)
        c.hset("risk:limits", mapping={"max_position": "0"})
        c.set("broker:active", "backup")
        c.delete("orders.fills")
    res = run(PLAYBOOK, redis_seeded.role_vars())
    assert res.ok, res.failures
    rec = record(res)
    assert rec["replayed_entries"] == redis_seeded.expected["streams"]["orders.fills"]
    with redis_seeded.client() as c:
        assert c.hgetall("policy:kill_switch") == engaged
        assert c.hgetall("risk:limits") == {"max_position": "0"}
        assert c.get("broker:active") == "backup"
        assert c.xlen("orders.fills") == redis_seeded.expected["streams"]["orders.fills"]
    assert rec["control_state"] == {"broker:active": "present", "policy:kill_switch": "present",
                                    "risk:limits": "present"}
