"""_lock: the recovery lock's rules on real files and real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _lock

HOLDER = dict(user="alice", control_node="cn-1", playbook="full_recovery.yml", incident="INC-1")


def test_take_renew_refuse_release(tmp_path):
    d = str(tmp_path)
    first = _lock.acquire(d, "db-1", "run-a", HOLDER, lease=60)
    assert first["acquired"] and first["previous"] is None and first["why"] == "free"
    again = _lock.acquire(d, "db-1", "run-a", HOLDER, lease=60)
    assert again["acquired"] and again["why"] == "held by this run"
    other = _lock.acquire(d, "db-1", "run-b", dict(HOLDER, user="bob"), lease=60)
    assert not other["acquired"] and _lock.holds(other["record"], "run-a")
    assert _lock.describe(other["record"]).startswith("alice@cn-1 running full_recovery.yml (incident INC-1) since ")
    assert _lock.release(d, "db-1", "run-b") is False and _lock.holds(_lock.read(d, "db-1"), "run-a")
    with pytest.raises(_lock.LockError, match="no longer holds"):
        _lock.renew(d, "db-1", "run-b")
    assert _lock.release(d, "db-1", "run-a") is True and _lock.read(d, "db-1") is None
    assert [e["event"] for e in _lock.history(d, "db-1")] == ["taken", "released"]
    assert oct(os.stat(tmp_path / ".db-1.guard").st_mode & 0o777) == "0o640"


def test_expired_lease_and_dead_local_holder_are_taken_over(tmp_path):
    d = str(tmp_path)
    _lock.acquire(d, "h", "old", HOLDER, lease=60, now=time.time() - 120)
    took = _lock.acquire(d, "h", "new", HOLDER, lease=60)
    assert took["acquired"] and _lock.holds(took["previous"], "old") and "lease ran out" in took["why"]
    # a holder on this machine whose process is gone: known dead before its lease ends
    proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    dead = dict(HOLDER, controller_pid=proc.pid, controller_started="123")
    _lock.break_lock(d, "h", "tester", "set up the next case", force=True)
    _lock.acquire(d, "h", "dead-run", dead, lease=600)
    took = _lock.acquire(d, "h", "next", HOLDER, lease=60)
    assert took["acquired"] and took["why"] == "its ansible-playbook (pid %d) on this machine is gone" % proc.pid
    # a live holder on this machine (this very process) is not taken over
    with open("/proc/%d/stat" % os.getpid()) as handle:
        started = handle.read().rsplit(")", 1)[1].split()[19]
    _lock.break_lock(d, "h", "tester", "set up the next case", force=True)
    _lock.acquire(d, "h", "live-run", dict(HOLDER, controller_pid=os.getpid(), controller_started=started), lease=600)
    assert not _lock.acquire(d, "h", "next", HOLDER, lease=60)["acquired"]
    # nor broken without force (issue 26: `lock break` broke a live holder's lock without asking)
    with pytest.raises(_lock.LockError, match="held by a live run.*break it with force"):
        _lock.break_lock(d, "h", "tester", "impatient")
    assert _lock.holds(_lock.read(d, "h"), "live-run")
    assert _lock.break_lock(d, "h", "tester", "the run hangs on a dead NFS mount", force=True)["user"] == "alice"
    # a holder whose lease ran out is broken without force
    _lock.acquire(d, "h", "expired-run", HOLDER, lease=60, now=time.time() - 120)
    assert _lock.break_lock(d, "h", "tester", "its node is gone")["user"] == "alice"
    events = _lock.history(d, "h")
    assert [e["event"] for e in events] == ["taken", "taken over", "broken", "taken", "taken over", "broken", "taken",
                                            "broken", "taken", "broken"]
    assert (events[-3]["forced"], events[-3]["by"]) == (True, "tester") and events[-1]["forced"] is False


def test_a_damaged_lock_file_is_not_a_free_lock(tmp_path):
    (tmp_path / "h.lock.json").write_text("{half a rec")
    with pytest.raises(_lock.LockError, match="look at it, then `tradeops-dr lock break`"):
        _lock.acquire(str(tmp_path), "h", "run", HOLDER)
    with pytest.raises(_lock.LockError, match="plain file name"):
        _lock.lock_file(str(tmp_path), "../etc/x")
    with pytest.raises(_lock.LockError, match="who breaks it and why"):
        _lock.break_lock(str(tmp_path), "h", "", "")


def _race(d, token, out):
    out.put((token, _lock.acquire(d, "shared", token, HOLDER, lease=60)["acquired"]))


def test_runs_racing_for_a_free_lock_one_wins(tmp_path):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), "run-%d" % i, out)) for i in range(8)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=30) for _proc in procs)
    for p in procs:
        p.join()
    winners = [t for t, won in results.items() if won]
    assert len(winners) == 1
    assert _lock.holds(json.loads((tmp_path / "shared.lock.json").read_text()), winners[0])
    assert [e["event"] for e in _lock.history(str(tmp_path))] == ["taken"]


def test_the_token_that_releases_a_lock_is_never_written_nor_handed_out(tmp_path):
    """Issue 26 item 5: `lock status --json` printed the holder's token (also history.jsonl and set_stats),
    and with it `dr_lock action=release` freed a live lock."""
    d = str(tmp_path)
    token = "s3cret-run-token-" + os.urandom(8).hex()
    _lock.acquire(d, "db-1", token, HOLDER, lease=60)
    _lock.acquire(d, "db-1", token, HOLDER, lease=60)  # renewed
    _lock.acquire(d, "db-1", "someone-else", HOLDER, lease=60)  # refused
    _lock.release(d, "db-1", token)
    _lock.acquire(d, "db-1", token, HOLDER, lease=60, now=time.time() - 120)
    _lock.acquire(d, "db-1", "next-run", HOLDER, lease=60)  # taken over from the expired one
    for path in tmp_path.iterdir():
        assert token not in path.read_text(errors="replace"), path
        assert "next-run" not in path.read_text(errors="replace"), path
    assert "token" not in json.dumps(_lock.history(d)).replace("token_sha256", "")
    rec = _lock.read(d, "db-1")
    assert _lock.holds(rec, "next-run") and not _lock.holds(rec, token) and not _lock.holds(rec, "")
    assert "token_sha256" not in _lock.public(rec) and _lock.public(rec)["user"] == "alice"
    # a lock file written before tokens were hashed is still released by its own run
    (tmp_path / "old.lock.json").write_text(json.dumps(dict(HOLDER, name="old", token="old-run", expires=time.time() + 60,
                                                            node="x/y")))
    assert _lock.release(d, "old", "wrong") is False and _lock.release(d, "old", "old-run") is True


def test_two_hosts_making_a_new_lock_folder_at_once_both_take_their_lock(tmp_path, monkeypatch):
    """Seen in the suite: two local hosts of one run made the new lock folder at once and the second
    stopped the run ('File exists'). The other host's folder is made between this one's look and its mkdir."""
    d = str(tmp_path / "locks")
    real_makedirs = os.makedirs

    def the_other_host_was_first(path, *args, **kwargs):
        if path == d and not os.path.isdir(d):
            real_makedirs(d, 0o750)  # the other host's mkdir lands first
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(_lock.os, "makedirs", the_other_host_was_first)
    first = _lock.acquire(d, "db-1", "run-a", HOLDER, lease=60)
    assert first["acquired"] and _lock.read(d, "db-2") is None
    assert _lock.acquire(d, "db-2", "run-a", HOLDER, lease=60)["acquired"]


def test_acquire_all_takes_every_lock_of_a_machine_or_none(tmp_path):
    d = str(tmp_path)
    names = ["sandbox-redis", "sandbox-postgres", "sandbox-questdb"]
    results, refused = _lock.acquire_all(d, names, "run-a", HOLDER, lease=60)
    assert refused == [] and all(results[n]["acquired"] for n in names)
    assert sorted(e["name"] for e in _lock.history(d) if e["event"] == "taken") == sorted(names)
    # the same run again renews them all (it holds them already)
    results, refused = _lock.acquire_all(d, names, "run-a", HOLDER, lease=60)
    assert refused == [] and {results[n]["why"] for n in names} == {"held by this run"}
    # another run held one of them: refused before anything is written, naming that one
    for n in names:
        _lock.release(d, n, "run-a")
    _lock.acquire(d, "sandbox-questdb", "run-b", dict(HOLDER, user="bob"), lease=60)
    events = len(_lock.history(d))
    results, refused = _lock.acquire_all(d, names, "run-c", HOLDER, lease=60)
    assert results == {} and [name for name, _res in refused] == ["sandbox-questdb"]
    assert _lock.holds(refused[0][1]["record"], "run-b")
    assert len(_lock.history(d)) == events, "a refused set wrote to the history"
    assert _lock.read(d, "sandbox-redis") is None and _lock.read(d, "sandbox-postgres") is None
    # in check mode nothing is written either way
    _lock.release(d, "sandbox-questdb", "run-b")
    results, refused = _lock.acquire_all(d, names, "run-d", HOLDER, lease=60, check=True)
    assert refused == [] and all(results[n]["acquired"] for n in names)
    assert not list(tmp_path.glob("*.lock.json"))


def test_acquire_all_gives_back_what_it_took_when_another_run_wins_a_lock_between_look_and_take(tmp_path, monkeypatch):
    d = str(tmp_path)
    names = ["a", "b", "c"]
    real = _lock.acquire

    def racing(lock_dir, name, *args, **kwargs):
        if name == "c":  # another run takes "c" after acquire_all looked at it
            real(lock_dir, "c", "run-other", dict(HOLDER, user="bob"), lease=60)
        return real(lock_dir, name, *args, **kwargs)

    monkeypatch.setattr(_lock, "acquire", racing)
    results, refused = _lock.acquire_all(d, names, "run-a", HOLDER, lease=60)
    assert [name for name, _res in refused] == ["c"] and results["a"]["acquired"] and results["b"]["acquired"]
    assert _lock.read(d, "a") is None and _lock.read(d, "b") is None, "the locks taken before the race were kept"
    assert _lock.holds(_lock.read(d, "c"), "run-other")
    assert [(e["event"], e["name"]) for e in _lock.history(d) if e.get("run") == _lock.token_hash("run-a")[:16]] == [
        ("taken", "a"), ("taken", "b"), ("released", "b"), ("released", "a")]
