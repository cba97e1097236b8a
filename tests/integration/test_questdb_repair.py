"""playbooks/questdb_repair.yml through ansible-runner against a REPLAY of answers recorded
from a real QuestDB 8.1.2 (tests/helpers/questdb_replay.py): the error shapes that are hard
to provoke on a live server (an open checkpoint of someone else, a restore QuestDB cannot
complete, a table that suspends again). A refusal that is a module's own runs the module's main()
in-process against the same replay. The main test of the role runs the real QuestDB:
test_questdb_real.py."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.tradeops.dr.plugins.modules import questdb_checkpoint, questdb_health
from conftest import QUESTDB_FIXTURES as FIXTURES
from conftest import record, run_module
from tradeops_dr.sandbox import free_port, pid_alive, read_pid, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "tests" / "helpers" / "questdb_replay.py"
PLAYBOOK = "questdb_repair.yml"
# newest row of trades in the recording (select max(ts) from trades)
RECORDED_NEWEST = datetime.datetime(2026, 11, 23, 6, 39, 3, tzinfo=datetime.timezone.utc)


class Replay:
    def __init__(self, tmp: Path, wal: str = "healthy"):
        if not FIXTURES.is_dir():
            pytest.fail(f"the recorded QuestDB answers are missing: {FIXTURES}")
        self.tmp = tmp
        self.port = free_port()
        self.health_port = free_port(avoid={self.port})
        self.root = tmp / "questdb"
        (self.root / "db" / "trades~7").mkdir(parents=True)
        (self.root / "conf").mkdir()
        (self.root / "db" / "trades~7" / "_txn").write_bytes(b"\x01" * 4096)
        (self.root / "db" / "trades~7" / "ts.d").write_bytes(b"\x02" * 8192)
        (self.root / "conf" / "server.conf").write_text("http.bind.to=127.0.0.1:9000\n")
        self.pidfile = tmp / "questdb.pid"
        self.wal = wal
        self.fail_restore = False
        self.start()

    def command(self) -> list[str]:
        cmd = [sys.executable, str(REPLAY), "--fixtures", str(FIXTURES), "--port", str(self.port),
               "--health-port", str(self.health_port), "--wal", self.wal, "--root", str(self.root)]
        return cmd + (["--fail-restore"] if self.fail_restore else [])

    def start(self) -> None:
        proc = subprocess.Popen(self.command() + ["--pidfile", str(self.pidfile)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self._proc = proc
        try:
            wait_for(lambda: (self.healthy(), "health port"), 15, "QuestDB replay")
        except Exception:
            proc.kill()
            proc.wait()
            raise

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_replay/state", timeout=2) as r:
            return json.loads(r.read())

    def set_state(self, **kw) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_replay/state", data=json.dumps(kw).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=2).close()

    def stop(self) -> None:
        pid = read_pid(self.pidfile)
        if pid_alive(pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)
            wait_for(lambda: (not pid_alive(pid), "alive"), 10, "replay to exit")
        if self._proc.poll() is None:
            self._proc.wait(timeout=5)

    def role_vars(self, **overrides) -> dict:
        v = dict(
            questdb_repair_url=f"http://127.0.0.1:{self.port}",
            questdb_repair_health_url=f"http://127.0.0.1:{self.health_port}",
            questdb_repair_service=dict(name="questdb", manager="process", start_command=self.command(),
                                        foreground=True, pidfile=str(self.pidfile), stop_timeout=5),
            questdb_repair_ready_timeout=15,
            questdb_repair_root=str(self.root),
            questdb_repair_tables=[dict(name="trades", timestamp="ts")],
            questdb_repair_state_file=str(self.tmp / "known-counts.json"),
            questdb_repair_min_free_bytes=1,
            questdb_repair_wal_timeout=5,
            questdb_repair_backup_dir=str(self.tmp / "backups"),
        )
        v.update(overrides)
        return v


@pytest.fixture
def questdb(tmp_path):
    r = Replay(tmp_path)
    yield r
    r.stop()


def _run(run, q, **kw):
    return run(PLAYBOOK, q.role_vars(**kw), group="questdb_servers")


def _msg(res) -> str:
    return " ".join(f.msg for f in res.failures)


def _module(capsys, module, q, **args) -> tuple[dict, bool]:
    """A module's refusal in-process (its main() with the arguments the role passes), against the same replay: a
    refusal that is the module's needs no playbook run (issue 24)."""
    v = q.role_vars()
    return run_module(module, dict(url=v["questdb_repair_url"], health_url=v["questdb_repair_health_url"], **args),
                      capsys)


def _checkpoint(capsys, q, min_free_bytes: int = 1) -> tuple[dict, bool]:
    v = q.role_vars()
    return _module(capsys, questdb_checkpoint, q, root=v["questdb_repair_root"], backup_dir=v["questdb_repair_backup_dir"],
                   tables=["trades"], min_free_bytes=min_free_bytes)


def test_healthy_server_changes_nothing_after_the_counts_are_known(questdb, run):
    first = _run(run, questdb)
    assert first.ok, first.failures
    assert json.loads(Path(questdb.role_vars()["questdb_repair_state_file"]).read_text()) == {"trades": 1000}
    second = _run(run, questdb)
    assert second.ok and second.changed == 0
    check = run(PLAYBOOK, questdb.role_vars(), group="questdb_servers", check=True)
    assert check.ok and check.changed == 0
    assert not any(q.startswith(("alter", "checkpoint")) for q in questdb.state()["requests"])


def test_suspended_table_is_resumed_and_applied(questdb, run):
    questdb.set_state(wal="suspended")
    res = _run(run, questdb)
    assert res.ok, res.failures
    rec = record(res, "questdb_recovery")
    assert rec["resumed"] == ["alter table trades resume wal"]
    assert rec["tables"]["trades"]["count"] == 1001  # the row inserted while suspended is applied
    st = questdb.state()
    assert st["wal"] == "resumed" and st["requests"].count("alter table trades resume wal") == 1
    assert "suspended True, writerTxn 1 of 2" in res.stdout


def test_check_mode_reports_the_resume_and_sends_none(questdb, run):
    questdb.set_state(wal="suspended")
    res = run(PLAYBOOK, questdb.role_vars(), group="questdb_servers", check=True)
    assert res.ok, res.failures
    # the report names the statement that would run...
    assert record(res, "questdb_recovery")["resumed"] == ["alter table trades resume wal"]
    # ...and none was sent
    assert "alter table trades resume wal" not in questdb.state()["requests"]
    assert questdb.state()["wal"] == "suspended"


def test_resume_from_txn(questdb, run):
    questdb.set_state(wal="suspended")
    res = _run(run, questdb, questdb_repair_from_txn={"trades": 2})
    # QuestDB 8.1.2 was not recorded answering RESUME WAL FROM TXN: the replay refuses it, and the
    # failure must name the table and the statement tried
    assert not res.ok
    assert "table trades: alter table trades resume wal from txn 2 failed" in _msg(res)
    assert "not in the recorded QuestDB exchanges" in _msg(res)


def test_table_that_suspends_again_is_reported_not_looped_on(questdb, run):
    questdb.set_state(wal="stuck")
    res = _run(run, questdb)
    assert not res.ok
    assert "table trades was suspended again after RESUME WAL" in _msg(res) and "not retried" in _msg(res)
    assert questdb.state()["requests"].count("alter table trades resume wal") == 1


def test_disk_full_table_is_not_resumed_without_space(questdb, run):
    questdb.set_state(wal="disk_full")
    res = _run(run, questdb, questdb_repair_min_free_bytes=10 ** 18)
    assert not res.ok
    assert "table trades is suspended for DISK FULL" in _msg(res) and "free space first" in _msg(res)
    assert "Nothing was resumed" in _msg(res)
    assert "alter table trades resume wal" not in questdb.state()["requests"]


def test_disk_full_runs_the_free_space_command_then_resumes(questdb, run, tmp_path):
    questdb.set_state(wal="disk_full")
    marker = tmp_path / "freed"
    res = _run(run, questdb, questdb_repair_free_space_command=f"touch {marker}")
    assert res.ok, res.failures
    assert marker.exists()
    assert questdb.state()["requests"].count("alter table trades resume wal") == 1


def test_down_server_is_started_through_service_control(questdb, run):
    questdb.stop()
    res = _run(run, questdb)
    assert res.ok, res.failures
    rec = record(res, "questdb_recovery")
    assert rec["started"] is True and questdb.healthy()


def test_count_below_the_last_known_value_fails_verification(questdb, run):
    Path(questdb.role_vars()["questdb_repair_state_file"]).write_text(json.dumps({"trades": 2000}))
    res = _run(run, questdb)
    assert not res.ok
    assert "table trades has 1000 rows, last known 2000" in _msg(res)


def test_the_last_known_counts_file_is_read_by_the_diagnosis_itself(questdb, capsys, tmp_path):
    """questdb_health reads the counts the role records (one module run, no stat/slurp tasks before it): the file's
    values, the given min_counts over them, no expectation without a file, and a refusal of a file that is not one."""
    tables = [dict(name="trades", timestamp="ts")]
    known = tmp_path / "known-counts.json"
    known.write_text(json.dumps({"trades": 2000, "gone": None}))
    out, failed = _module(capsys, questdb_health, questdb, tables=tables, min_counts_file=str(known))
    assert not failed and out["questdb"]["min_counts"] == {"trades": 2000, "gone": None}
    assert out["questdb"]["shortfalls"] == ["table trades has 1000 rows, last known 2000"]
    out, failed = _module(capsys, questdb_health, questdb, tables=tables, min_counts_file=str(known),
                          min_counts={"trades": 900})
    assert not failed and out["questdb"]["shortfalls"] == [] and out["questdb"]["min_counts"]["trades"] == 900
    out, failed = _module(capsys, questdb_health, questdb, tables=tables, min_counts_file=str(tmp_path / "none.json"))
    assert not failed and out["questdb"]["min_counts"] == {} and out["questdb"]["shortfalls"] == []
    for bad in ("{not json", json.dumps(["trades", 1000]), json.dumps({"trades": "1000"})):
        known.write_text(bad)
        out, failed = _module(capsys, questdb_health, questdb, tables=tables, min_counts_file=str(known))
        assert failed and str(known) in out["msg"], out


def test_freshness_window(questdb, run):
    age = (datetime.datetime.now(datetime.timezone.utc) - RECORDED_NEWEST).total_seconds()
    fresh = _run(run, questdb, questdb_repair_tables=[dict(name="trades", timestamp="ts", max_age=int(age) + 3600)])
    assert fresh.ok, fresh.failures
    stale = _run(run, questdb, questdb_repair_tables=[dict(name="trades", timestamp="ts", max_age=int(age) - 3600)])
    assert not stale.ok
    assert "table trades is stale: newest row 2026-11-23T06:39:03.467048Z" in _msg(stale)


def test_missing_table_maps_questdb_error_and_position(questdb, run):
    # the module reports the table's error; the role's verification fails on it: a playbook run
    res = _run(run, questdb, questdb_repair_tables=[dict(name="no_such_table", timestamp="ts")])
    assert not res.ok
    assert ("QuestDB rejected `select count() from no_such_table`: table does not exist [table=no_such_table] "
            "at position 20 (HTTP 400)") in _msg(res)


def test_bad_table_name_is_refused_before_any_sql(questdb, capsys):
    out, failed = _module(capsys, questdb_health, questdb,
                          tables=[dict(name="trades; drop table trades", timestamp="ts")])
    assert failed
    assert "table name 'trades; drop table trades' is refused" in out["msg"]
    assert not any("drop" in q for q in questdb.state()["requests"])


def test_connection_refused_with_no_way_to_start_is_clear(questdb, run):
    questdb.stop()
    svc = dict(name="questdb", manager="process", pidfile=str(questdb.pidfile))
    res = _run(run, questdb, questdb_repair_service=svc)
    assert not res.ok
    assert "needs start_command" in _msg(res)


# --------------------------------------------------------------------------- backup and restore

def test_backup_creates_copies_and_always_releases(questdb, run):
    res = _run(run, questdb, questdb_repair_action="backup")
    assert res.ok, res.failures
    rec = record(res, "questdb_backup")
    manifest = json.loads((Path(rec["backup"]) / "MANIFEST.json").read_text())
    assert manifest["questdb_version"] == [8, 1, 2] and manifest["kind"] == "questdb-checkpoint"
    assert set(manifest["files"]) == {"conf/server.conf", "db/trades~7/_txn", "db/trades~7/ts.d"}
    assert rec["released"] is True and questdb.state()["checkpoint"] == "idle"
    reqs = questdb.state()["requests"]
    assert reqs.index("checkpoint create") < reqs.index("checkpoint release")


def test_backup_refuses_while_a_checkpoint_is_open_and_leaves_it(questdb, capsys):
    questdb.set_state(checkpoint="in_progress")
    out, failed = _checkpoint(capsys, questdb)
    assert failed
    assert "a QuestDB checkpoint is already open (since 2026-11-23T06:39:06.495816Z)" in out["msg"]
    assert questdb.state()["checkpoint"] == "in_progress"
    assert "checkpoint release" not in questdb.state()["requests"]


def test_backup_without_room_creates_no_checkpoint(questdb, capsys):
    out, failed = _checkpoint(capsys, questdb, min_free_bytes=10 ** 18)
    assert failed and "no checkpoint was created" in out["msg"]
    assert "checkpoint create" not in questdb.state()["requests"]


def _backup(run, questdb) -> Path:
    res = _run(run, questdb, questdb_repair_action="backup")
    assert res.ok, res.failures
    return Path(record(res, "questdb_backup")["backup"])


def test_restore_moves_current_data_aside_and_questdb_consumes_the_trigger(questdb, run):
    backup = _backup(run, questdb)
    (questdb.root / "db" / "written-after-backup").write_text("x")
    res = _run(run, questdb, questdb_repair_action="restore", questdb_repair_restore_from=str(backup))
    assert res.ok, res.failures
    assert questdb.healthy() and not (questdb.root / "_restore").exists()
    assert not (questdb.root / "db" / "written-after-backup").exists()
    aside = list(questdb.tmp.glob("questdb.before-restore-*"))
    assert len(aside) == 1 and (aside[0] / "db" / "written-after-backup").exists()


def test_failed_restore_is_detected_by_the_trigger_file(questdb, run):
    backup = _backup(run, questdb)
    questdb.fail_restore = True
    res = _run(run, questdb, questdb_repair_action="restore", questdb_repair_restore_from=str(backup))
    assert not res.ok
    msg = _msg(res)
    assert "the _restore trigger file is still in" in msg and "could not complete the restore" in msg
    assert "before-restore-" in msg
    assert (questdb.root / "_restore").exists()


def test_restore_of_another_major_version_is_refused_before_any_change(questdb, run):
    backup = _backup(run, questdb)
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    manifest["questdb_version"] = [7, 4, 0]
    (backup / "MANIFEST.json").write_text(json.dumps(manifest))
    pid = read_pid(questdb.pidfile)
    res = _run(run, questdb, questdb_repair_action="restore", questdb_repair_restore_from=str(backup))
    assert not res.ok
    assert "was made by QuestDB 7.4.0; the server is QuestDB 8.1.2: major versions differ" in _msg(res)
    assert not list(questdb.tmp.glob("questdb.before-restore-*"))
    assert read_pid(questdb.pidfile) == pid and pid_alive(pid), "QuestDB was stopped for a refused restore"


def test_tampered_backup_is_refused(questdb, run):
    backup = _backup(run, questdb)
    (backup / "questdb" / "db" / "trades~7" / "ts.d").write_bytes(b"\x00" * 8192)
    pid = read_pid(questdb.pidfile)
    res = _run(run, questdb, questdb_repair_action="restore", questdb_repair_restore_from=str(backup))
    assert not res.ok
    assert "does not match its manifest" in _msg(res) and "db/trades~7/ts.d" in _msg(res)
    assert not list(questdb.tmp.glob("questdb.before-restore-*"))
    assert read_pid(questdb.pidfile) == pid and pid_alive(pid), "QuestDB was stopped for a refused restore"


def test_a_writer_that_never_catches_up_fails_after_the_wait_and_rebase_is_never_run(questdb, run):
    questdb.set_state(wal="lagging")
    res = _run(run, questdb, questdb_repair_wal_timeout=2)
    assert not res.ok
    assert "WAL not applied within 2" in _msg(res) and "trades writerTxn 1 < sequencerTxn 2" in _msg(res)
    reqs = questdb.state()["requests"]
    assert "alter table trades resume wal" not in reqs  # it was not suspended: nothing to resume
    assert not any("rebase" in q for q in reqs)


def test_rebase_wal_is_never_sent_in_any_repair(questdb, run):
    outcomes = {}
    for wal in ("suspended", "stuck", "disk_full"):
        questdb.set_state(wal=wal)
        res = _run(run, questdb, questdb_repair_wal_timeout=2, questdb_repair_min_free_bytes=10 ** 18)
        outcomes[wal] = (res.ok, _msg(res))
    # each repair did what its state calls for (issue 31: the runs' results were ignored) ...
    assert outcomes["suspended"] == (True, ""), outcomes["suspended"]
    assert not outcomes["stuck"][0] and "suspended again after RESUME WAL" in outcomes["stuck"][1]
    assert not outcomes["disk_full"][0] and "suspended for DISK FULL" in outcomes["disk_full"][1]
    # ... and none of them ever sent a rebase
    assert not any("rebase" in q for q in questdb.state()["requests"])


def test_a_checkpoint_release_that_fails_is_reported_with_what_to_do(questdb, run):
    questdb.set_state(release_fails=True)
    res = _run(run, questdb, questdb_repair_action="backup")
    assert not res.ok
    msg = _msg(res)
    assert "CHECKPOINT RELEASE failed" in msg and "run this module with state=released" in msg
    assert questdb.state()["checkpoint"] == "in_progress"  # said, not hidden
