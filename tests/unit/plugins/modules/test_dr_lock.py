"""dr_lock with names (the hosts of one machine in one module run), through main() on real files."""

from __future__ import annotations

import json

from ansible_collections.tradeops.dr.plugins.module_utils import _lock
from ansible_collections.tradeops.dr.plugins.modules import dr_lock
from conftest import run_module

HOLDER = dict(user="alice", control_node="cn-1", playbook="full_recovery.yml", incident="INC-1")
NAMES = ["sandbox-risk", "sandbox-redis", "sandbox-postgres"]


def test_names_are_taken_together_refused_together_and_released_together(tmp_path, capsys):
    d = str(tmp_path / "locks")
    out, failed = run_module(dr_lock, dict(action="acquire", lock_dir=d, names=NAMES, token="run-a", holder=HOLDER),
                             capsys)
    assert not failed and not out["changed"], out
    assert sorted(out["locks"]) == sorted(NAMES) and all(out["locks"][n]["acquired"] for n in NAMES)
    assert "run-a" not in json.dumps(out)  # the token that releases them is in no result
    # a second run: refused, every held host named with its holder, nothing of its own written
    out, failed = run_module(dr_lock, dict(action="acquire", lock_dir=d, names=NAMES, token="run-b",
                                           holder=dict(HOLDER, user="bob")), capsys)
    assert failed and out["msg"].startswith("REFUSED: another recovery holds sandbox-risk: alice@cn-1 running ")
    assert all("another recovery holds %s: " % n in out["msg"] for n in NAMES) and "Nothing was done" in out["msg"]
    assert all(_lock.holds(_lock.read(d, n), "run-a") for n in NAMES)
    # release by another token frees nothing; by the holder's, all of them
    out, failed = run_module(dr_lock, dict(action="release", lock_dir=d, names=NAMES, token="run-b"), capsys)
    assert not failed and all(out["locks"][n]["held"] for n in NAMES)
    out, failed = run_module(dr_lock, dict(action="release", lock_dir=d, names=NAMES, token="run-a"), capsys)
    assert not failed and all(out["locks"][n]["released"] and not out["locks"][n]["held"] for n in NAMES)
    assert [e["event"] for e in _lock.history(d)] == ["taken"] * 3 + ["released"] * 3


def test_names_refuse_bad_input(tmp_path, capsys):
    d = str(tmp_path / "locks")
    out, failed = run_module(dr_lock, dict(action="acquire", lock_dir=d, names=["a", "a"], token="run-token-1"), capsys)
    assert failed and "names must list each lock once" in out["msg"]
    out, failed = run_module(dr_lock, dict(action="break", lock_dir=d, names=["a"], actor="x", reason="y"), capsys)
    assert failed and "break acts on one lock at a time" in out["msg"]
    out, failed = run_module(dr_lock, dict(action="acquire", lock_dir=d, name="a", names=["b"], token="run-token-1"), capsys)
    assert failed and "mutually exclusive" in out["msg"]
    out, failed = run_module(dr_lock, dict(action="status", lock_dir=d), capsys)
    assert failed and "one of the following is required: name, names" in out["msg"]
    assert not (tmp_path / "locks").exists() or not list((tmp_path / "locks").glob("*.lock.json"))
