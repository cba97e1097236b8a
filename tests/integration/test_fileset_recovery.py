"""playbooks/fileset_recovery.yml (runbook 002's recovery manager) on real files: sets with
metadata, deleted data restored selectively with a backup of the current state first, dry
runs that change nothing, tampering and path traversal refused, staleness; and the recover action
of full_recovery.yml's files component - the damaged categories found, restored around the
application that reads them, validated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import artifacts_text, free_port, record
from tradeops_dr.paths import STANDINS
from tradeops_dr.sandbox import pid_alive, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "srv"
    (root / "config").mkdir(parents=True)
    (root / "state").mkdir()
    (root / "data" / "daily").mkdir(parents=True)
    (root / "config" / "config.toml").write_text("[trading]\n[risk]\n[live]\n")
    (root / "state" / "engine.json").write_text('{"last_order": 42}')
    (root / "data" / "positions.csv").write_text("symbol,qty\nUSDCOP,10\nEURUSD,-3\n")
    (root / "data" / "daily" / "trades.csv").write_text("id,symbol\n1,USDCOP\n2,EURUSD\n")
    sources = {c: [str(root / c)] for c in ("config", "state", "data")}
    return root, sources, tmp_path / "sets"


def fvars(sources, sets, **kw):
    return dict(fileset_recovery_sources=sources, fileset_recovery_root=str(sets), **kw)


def play(run, sources, sets, **kw):
    return run("playbooks/fileset_recovery.yml", fvars(sources, sets, **kw), group="trading_hosts")


def backup(run, sources, sets):
    res = play(run, sources, sets, fileset_recovery_description="nightly", fileset_recovery_tags=["scheduled"])
    assert res.status == "successful", artifacts_text(res)[-3000:]
    (set_dir,) = [d for d in sets.iterdir() if d.name.startswith("full_")]
    return set_dir


def test_backup_set_has_metadata_of_every_file(run, host):
    root, sources, sets = host
    set_dir = backup(run, sources, sets)
    meta = json.loads((set_dir / "metadata.json").read_text())
    assert meta["type"] == "full" and meta["description"] == "nightly" and meta["tags"] == ["scheduled"]
    assert meta["status"] == "created" and meta["created_at"].endswith("Z") and meta["files_count"] == 4
    paths = {(f["category"], f["path"]) for f in meta["files"]}
    assert ("data", "daily/trades.csv") in paths and ("config", "config.toml") in paths
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in meta["files"])


def test_deleted_data_restored_selectively_with_backups_around_it(run, host):
    root, sources, sets = host
    backup(run, sources, sets)
    (root / "data" / "positions.csv").unlink()
    (root / "data" / "daily" / "trades.csv").write_text("corrupt")
    (root / "config" / "config.toml").write_text("[trading]\n[risk]\n[live]\n# edited after the backup\n")
    (root / "data" / "new_since_backup.csv").write_text("kept")
    res = play(run, sources, sets, fileset_recovery_action="restore", fileset_recovery_categories=["data"])
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "fileset_recovery")
    assert (root / "data" / "positions.csv").read_text().startswith("symbol,qty\nUSDCOP,10")
    assert (root / "data" / "daily" / "trades.csv").read_text().startswith("id,symbol")
    assert "edited after the backup" in (root / "config" / "config.toml").read_text()  # not restored
    assert (root / "data" / "new_since_backup.csv").read_text() == "kept"
    assert str(root / "data" / "new_since_backup.csv") in rec["not_in_backup"]
    actions = {Path(p["path"]).name: p["action"] for p in rec["plan"]}
    assert actions == {"positions.csv": "create", "trades.csv": "replace"}
    pre = json.loads((sets / rec["pre_restore_backup"] / "metadata.json").read_text())
    assert pre["type"] == "pre-restore" and any(f["path"] == "daily/trades.csv" for f in pre["files"])
    assert rec["post_restore_backup"].startswith("post-restore_") and 0 <= float(rec["data_loss_window_s"]) < 600


def test_dry_run_changes_nothing(run, host):
    root, sources, sets = host
    backup(run, sources, sets)
    (root / "state" / "engine.json").unlink()
    before = sorted(p.name for p in sets.iterdir())
    res = play(run, sources, sets, fileset_recovery_action="restore", fileset_recovery_dry_run=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "fileset_recovery")
    assert rec["dry_run"] is True and rec["written"] == []
    assert {Path(p["path"]).name: p["action"] for p in rec["plan"]}["engine.json"] == "create"
    assert not (root / "state" / "engine.json").exists() and sorted(p.name for p in sets.iterdir()) == before


def test_tampered_set_is_detected_and_not_restored(run, host):
    root, sources, sets = host
    set_dir = backup(run, sources, sets)
    (set_dir / "files" / "data" / "0" / "positions.csv").write_text("symbol,qty\nUSDCOP,999999\n")
    res = play(run, sources, sets, fileset_recovery_action="verify")
    assert res.status == "failed" and "tampered or corrupted" in artifacts_text(res)
    (root / "data" / "positions.csv").unlink()
    res = play(run, sources, sets, fileset_recovery_action="restore")
    assert res.status == "failed" and "failed verification" in artifacts_text(res)
    assert not (root / "data" / "positions.csv").exists()


@pytest.mark.parametrize("evil", ["../../../outside.txt", "/etc/tradeops-evil"])
def test_paths_escaping_the_target_are_refused(run, host, tmp_path, evil):
    root, sources, sets = host
    set_dir = backup(run, sources, sets)
    meta_path = set_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][0]["path"] = evil
    meta_path.write_text(json.dumps(meta))
    res = play(run, sources, sets, fileset_recovery_action="restore")
    assert res.status == "failed" and "refused" in artifacts_text(res)
    assert not Path("/etc/tradeops-evil").exists() and not (tmp_path.parent / "outside.txt").exists()


def test_stale_and_incomplete_sets_are_reported(run, host):
    root, sources, sets = host
    set_dir = backup(run, sources, sets)
    meta = json.loads((set_dir / "metadata.json").read_text())
    meta["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 50 * 3600))
    (set_dir / "metadata.json").write_text(json.dumps(meta))
    res = play(run, sources, sets, fileset_recovery_action="verify")
    assert res.status == "failed" and "STALE BACKUP" in artifacts_text(res) and "50.0 hours old" in artifacts_text(res)
    (sets / "full_20260101T000000Z").mkdir()
    res = play(run, sources, sets, fileset_recovery_action="verify", fileset_recovery_max_age_hours=0)
    assert res.status == "failed" and "no readable metadata.json" in artifacts_text(res)


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() and not p.is_symlink() else "link"
                                       if p.is_symlink() else "dir") for p in sorted(path.rglob("*"))}


def test_a_link_inside_a_set_is_refused_not_restored_as_content(run, host, tmp_path):
    """A stored file replaced by a link to an outside file with the same bytes still passes a
    checksum; the set must be refused because it holds a link."""
    root, sources, sets = host
    set_dir = backup(run, sources, sets)
    stored = set_dir / "files" / "state" / "0" / "engine.json"
    outside = tmp_path / "outside-engine.json"
    outside.write_bytes(stored.read_bytes())
    stored.unlink()
    stored.symlink_to(outside)
    (root / "state" / "engine.json").unlink()
    before = _tree(root)
    res = play(run, sources, sets, fileset_recovery_action="restore", fileset_recovery_categories=["state"])
    assert res.status == "failed"
    assert "files/state/0/engine.json is a symbolic link or lies outside the set: refused" in artifacts_text(res)
    assert _tree(root) == before


def test_a_restore_never_writes_through_a_link_in_the_live_folder(run, host, tmp_path):
    root, sources, sets = host
    (root / "config" / "sub").mkdir()
    (root / "config" / "sub" / "limits.toml").write_text("max_position = 10\n")
    backup(run, sources, sets)
    # the live folder now has a link where the set has a folder: a write would land elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "config" / "sub" / "limits.toml").unlink()
    (root / "config" / "sub").rmdir()
    (root / "config" / "sub").symlink_to(elsewhere)
    res = play(run, sources, sets, fileset_recovery_action="restore", fileset_recovery_categories=["config"])
    assert res.status == "failed"
    assert "a restore never writes through a link" in artifacts_text(res)
    assert list(elsewhere.iterdir()) == []
    assert (root / "config" / "sub").is_symlink()


# --------------------------------------------------------------------------- recover (the files component)

def _health(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except OSError as exc:
        return 0, str(exc)


def test_recover_restores_what_is_damaged_around_the_application_that_reads_it(run, host, tmp_path):
    """Issue 30 (runbook 002 procedure B): a CSV cut mid-row and a state file gone - found, the application that reads
    the state stopped, the state and data categories restored from the set with good copies (the newer set taken
    after the damage passed over), validated, the application started on the restored state; config untouched."""
    root, sources, sets = host
    (root / "state" / "positions.json").write_text('{"USDCOP": 10, "EURUSD": -3}')
    good = backup(run, sources, sets)
    time.sleep(1.1)  # the next set gets a later stamp
    (root / "data" / "positions.csv").write_text("symbol,qty\nUSDCOP,10\nEURUSD")  # a write cut short mid-row
    bad = play(run, sources, sets)  # the nightly set ran after the damage
    assert bad.status == "successful", artifacts_text(bad)[-3000:]
    (root / "config" / "config.toml").write_text("[trading]\n[risk]\n[live]\n# edited after the backup\n")
    port, pidfile = free_port(), tmp_path / "live_ops.pid"
    service = dict(name="live-ops", manager="process", foreground=True, pidfile=str(pidfile), stop_timeout=5,
                   log_file=str(tmp_path / "live_ops.log"),
                   start_command=[sys.executable, str(STANDINS / "live_ops.py"), "--port", str(port), "--pidfile",
                                  str(pidfile), "--state", str(root / "state" / "positions.json"),
                                  "--max-seconds", "600"])
    app = subprocess.Popen(service["start_command"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    health = f"http://127.0.0.1:{port}/health"
    try:
        wait_for(lambda: (_health(health)[0] == 200, _health(health)), 20, "the application's health")
        first = app.pid
        (root / "state" / "positions.json").unlink()  # the state gone under the running application
        vars_ = dict(fileset_recovery_action="recover", fileset_recovery_dependants=[
            dict(service=service, health_url=health)], fileset_recovery_dependants_timeout=20,
            fileset_recovery_critical=[str(root / "state" / "positions.json")])
        # --check: the plan, nothing stopped, nothing written, no set taken
        sets_before = sorted(p.name for p in sets.iterdir())
        checked = run("playbooks/fileset_recovery.yml", fvars(sources, sets, **vars_), group="trading_hosts",
                      check=True)
        assert checked.status == "successful", artifacts_text(checked)[-3000:]
        assert not (root / "state" / "positions.json").exists() and pid_alive(first)
        planned = record(checked, "fileset_recovery")
        assert planned["dry_run"] is True and planned["dependants"] == [] and planned["written"] == []
        assert sorted(p.name for p in sets.iterdir()) == sets_before
        res = play(run, sources, sets, **vars_)
        assert res.status == "successful", artifacts_text(res)[-3000:]
        rec = record(res, "fileset_recovery")
        assert rec["restored_from"] == good.name and rec["validated_after"] is True
        assert any("positions.json: missing (a critical file)" in p for p in rec["problems_found"])
        assert any("positions.csv: row 3 has 1 fields, the header 2" in p for p in rec["problems_found"])
        assert any(o.startswith("full_") and "holds damaged copies too" in o for o in rec["passed_over"])
        assert {p["category"] for p in rec["plan"]} == {"state", "data"} and rec["dependants"] == ["live-ops"]
        assert (root / "data" / "positions.csv").read_text() == "symbol,qty\nUSDCOP,10\nEURUSD,-3\n"
        assert "edited after the backup" in (root / "config" / "config.toml").read_text()  # not damaged: untouched
        pre = json.loads((sets / rec["pre_restore_backup"] / "metadata.json").read_text())
        assert any(f["path"] == "positions.csv" for f in pre["files"])  # the damaged copy kept aside
        assert rec["post_restore_backup"].startswith("post-restore_")
        assert app.wait(timeout=10) is not None  # stopped before the restore
        second = int(pidfile.read_text())
        code, body = _health(health)
        assert second != first and code == 200 and body["pid"] == second
        assert body["positions"] == {"USDCOP": 10, "EURUSD": -3}  # it loaded the restored state
        # a second run finds every file healthy and changes nothing
        again = play(run, sources, sets, **vars_)
        assert again.status == "successful" and not again.data.get("fileset_recovery")
        assert int(pidfile.read_text()) == second
    finally:
        for pid in {app.pid, *([int(pidfile.read_text())] if pidfile.exists() else [])}:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        app.wait(timeout=10)


def test_recover_without_a_good_set_fails_naming_why_and_changes_nothing(run, host):
    root, sources, sets = host
    (root / "state" / "engine.json").write_text('{"last_order": 4')  # cut short before any set existed
    backup(run, sources, sets)  # holds the damaged copy only
    before, sets_before = _tree(root), sorted(p.name for p in sets.iterdir())
    res = play(run, sources, sets, fileset_recovery_action="recover")
    text = artifacts_text(res)
    assert res.status == "failed" and "NOT RECOVERED: no verified set below" in text
    assert "holds damaged copies too" in text and "Nothing was changed" in text
    assert _tree(root) == before and sorted(p.name for p in sets.iterdir()) == sets_before
