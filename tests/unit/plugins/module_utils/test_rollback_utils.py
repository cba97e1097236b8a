"""Pure helpers of the rollback and backup-set modules: config validation, model card hashes,
the previous version of a file in real git history, backup-set path safety, retention rules."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible_collections.tradeops.dr.plugins.module_utils import _backup, _config, _fileset, _vcs
from ansible_collections.tradeops.dr.plugins.modules.model_integrity import card_hashes
from tradeops_dr.seed import seed_model_repo

MD5 = "9e107d9d372bb6826bd81d3542a419d6"
SHA = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"


@pytest.mark.parametrize("path, content, required, words", [
    ("c.toml", b"[trading]\n[risk]\n[live]\n", ["trading", "risk", "live"], None),
    ("c.toml", b"[trading]\n[live]\n", ["trading", "risk", "live"], "missing required section(s) risk"),
    ("c.toml", b"[trading", [], "not valid TOML"),
    ("c.yaml", b"a: [1,", [], "not valid YAML"),
    ("c.json", b'{"a": 1}', ["a"], None),
    ("c.json", b"[1, 2]", ["a"], "top level is list"),
    ("c.ini", b"x=1", [], "cannot tell its format"),
    ("c.json", b"\xff\xfe", [], "c.json"),
])
def test_config_validation(path, content, required, words):
    problems = _config.validate(path, content, required)
    assert (problems == []) if words is None else (len(problems) == 1 and words in problems[0])


@pytest.mark.parametrize("card, expected", [
    ({"md5": MD5}, {"md5": MD5}),
    ({"artifact": {"md5": MD5.upper(), "sha256": SHA}}, {"md5": MD5, "sha256": SHA}),
    ({"md5": "not-a-hash", "hashes": {"md5": MD5}}, {"md5": MD5}),
    ({"a": {"b": {"md5": MD5}}}, {}),  # only one level down
    (["md5", MD5], {}),
])
def test_card_hashes(card, expected):
    assert card_hashes(card) == expected


def test_previous_version_skips_commits_equal_to_the_work_tree(tmp_path):
    def git(*a):
        return subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "o@example.invalid")
    git("config", "user.name", "o")
    for content, msg in (("a", "one"), ("b", "two"), ("b", "touch other"), ("c", "three")):
        (tmp_path / "f.dvc").write_text(content)
        (tmp_path / "other").write_text(msg)
        git("add", "-A")
        git("commit", "-q", "-m", msg)
    sha, subject = _vcs.previous_version(str(tmp_path), "f.dvc", b"c")
    assert subject == "two"  # "touch other" did not change f.dvc
    # after a rollback to "b", the previous version is the one before it, not the newer "c"
    assert _vcs.previous_version(str(tmp_path), "f.dvc", b"b")[1] == "one"
    assert _vcs.previous_version(str(tmp_path), "f.dvc", b"a") == (None, None)
    assert _vcs.previous_version(str(tmp_path), "f.dvc", b"edited")[1] == "three"
    with pytest.raises(_vcs.VcsError, match="refused"):
        _vcs.check_rev("--upload-pack=evil")


@pytest.mark.parametrize("entry", [
    dict(category="data", root=0, path="../x"),
    dict(category="data", root=0, path="/etc/passwd"),
    dict(category="secrets", root=0, path="x"),
])
def test_fileset_refuses_unsafe_entries(entry):
    with pytest.raises(_fileset.FilesetError):
        _fileset.stored_path(entry)


def test_retention_keeps_newest_and_newest_verified_and_foreign_files():
    day = 86400.0
    now = 100 * day

    def e(name, age_days, status, db="trading", manifest=True):
        return dict(manifest=name if manifest else None, dump=name, database=db, kind="backup", status=status,
                    created_at=now - age_days * day, size=1)

    entries = [e("new", 1, "created"), e("old-verified", 40, "verified"), e("older", 50, "verified"),
               e("other-db", 60, "created", db="risk"), e("foreign", 90, "no-manifest", db=None, manifest=False)]
    plan = {entry["dump"]: (keep, reason) for entry, keep, reason in _backup.retention_plan(entries, 30, now)}
    assert plan["new"][0] and "newest backup" in plan["new"][1]
    assert plan["old-verified"][0] and "newest verified" in plan["old-verified"][1]
    assert plan["older"][0] is False and "older than 30 days" in plan["older"][1]  # the one deleted
    assert plan["other-db"][0] and "newest" in plan["other-db"][1]
    assert plan["foreign"][0] and "not managed" in plan["foreign"][1]


def test_catalog_reports_a_corrupt_manifest_and_never_picks_it(tmp_path):
    day = tmp_path / "2026-11-23"
    day.mkdir()
    (day / "trading_20261123T020000Z.manifest.json").write_text('{"format": "tradeops.dr/pg-backup/1", ')
    (day / "trading_20261123T020000Z.pgdump").write_bytes(b"PGDMP")
    (entry,) = _backup.catalog(str(tmp_path))
    assert entry["status"] == "unreadable" and "is not valid JSON" in entry["problem"]
    assert _backup.newest([entry]) is None
    plan = _backup.retention_plan([entry], 1, now=entry["created_at"] + 10 * 86400)
    assert plan[0][1] is True and "not managed" in plan[0][2]


def test_backup_set_metadata_is_written_atomically_and_read_back(tmp_path):
    src = tmp_path / "config"
    src.mkdir()
    (src / "a.toml").write_text("[trading]\n")
    set_dir, meta = _fileset.create(str(tmp_path / "sets"), {"config": [str(src)]}, "config")
    assert _fileset.read_metadata(set_dir) == meta and not list((tmp_path / "sets").rglob("*.tmp-*"))
    (tmp_path / "sets" / meta["backup_id"] / "metadata.json").write_text("{")
    with pytest.raises(_fileset.FilesetError, match="no readable metadata.json: it is not valid JSON"):
        _fileset.read_metadata(set_dir)


def test_dvc_runs_send_no_usage_analytics(tmp_path, monkeypatch):
    """DVC's usage analytics writes a report to a temporary file and starts a daemon that posts it to
    analytics.dvc.org: neither the sandbox's seed (`dvc init`) nor a recovery's dvc command may do so,
    even in a repository whose core.analytics is on. (The endpoint points at a closed loopback port, so
    that even a regression sends nothing off this machine.)"""
    if not shutil.which("dvc"):
        pytest.skip("dvc is not installed (pip install -e .[test])")
    reports = tmp_path / "tmp"
    reports.mkdir()
    monkeypatch.setenv("TMPDIR", str(reports))
    monkeypatch.setenv("DVC_ANALYTICS_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.delenv("DVC_NO_ANALYTICS", raising=False)
    monkeypatch.delenv("DVC_TEST", raising=False)
    repo = tmp_path / "repo"
    seed_model_repo(repo, tmp_path / "remote", versions=("v1",))
    assert sorted(p.name for p in reports.iterdir()) == []
    (repo / ".dvc" / "config").write_text((repo / ".dvc" / "config").read_text().replace(
        "analytics = false", "analytics = true"))
    assert "analytics = true" in (repo / ".dvc" / "config").read_text()
    _vcs.dvc(str(repo), "status")
    assert sorted(p.name for p in reports.iterdir()) == []
