"""Refusals of the file-state, model and failover modules, each run through main() with real
files, real git and DVC, and a real Redis: the message says why, and nothing changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ansible_collections.tradeops.dr.plugins.modules import (broker_failover, dvc_model, feed_failover, fileset_backup,
                                                             fileset_restore, model_integrity)
from conftest import run_module
from tradeops_dr.seed import MODEL, seed_model_repo


def tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- file-state sets

@pytest.fixture
def srv(tmp_path):
    root = tmp_path / "srv"
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.toml").write_text("[trading]\n")
    return root, tmp_path / "sets"


@pytest.mark.parametrize("sources, words", [
    ({"configs": ["/srv/config"]}, "unknown source categories configs (use config, state, data)"),
    ({"config": ["relative/config"]}, "sources.config must be a list of absolute paths"),
    ({"config": "/srv/config"}, "sources.config must be a list of absolute paths"),
])
def test_fileset_backup_refuses_bad_sources_and_writes_no_set(srv, capsys, sources, words):
    _root, sets = srv
    out, failed = run_module(fileset_backup, dict(backup_root=str(sets), sources=sources), capsys)
    assert failed and words in out["msg"] and "backup set not written" in out["msg"]
    assert not sets.exists()


def test_fileset_restore_refuses_an_unknown_backup_id_and_changes_nothing(srv, capsys):
    root, sets = srv
    sources = {"config": [str(root / "config")]}
    out, failed = run_module(fileset_backup, dict(backup_root=str(sets), sources=sources), capsys)
    assert not failed, out
    (root / "config" / "config.toml").write_text("[trading]\n# edited\n")
    before, sets_before = tree(root), tree(sets)
    out, failed = run_module(fileset_restore, dict(backup_root=str(sets), sources=sources,
                                                   backup_id="full_20200101T000000Z"), capsys)
    assert failed and f"no backup set full_20200101T000000Z below {sets}" in out["msg"]
    assert "nothing was changed" in out["msg"]
    assert tree(root) == before and tree(sets) == sets_before


def test_fileset_restore_refuses_an_unknown_category(srv, capsys):
    root, sets = srv
    out, failed = run_module(fileset_restore, dict(backup_root=str(sets), sources={"config": [str(root)]},
                                                   categories=["secrets"]), capsys)
    assert failed and "value of categories must be one or more of: config, state, data" in out["msg"]


# --------------------------------------------------------------------------- models

@pytest.fixture
def models(tmp_path):
    repo = tmp_path / "repo"
    md5 = seed_model_repo(repo, tmp_path / "remote", versions=("v1",))
    return repo, md5


def test_model_card_unreadable_or_without_a_hash_is_refused(models, tmp_path, capsys):
    repo, _md5 = models
    bad = tmp_path / "card.json"
    bad.write_text("{ not json nor: [yaml")
    out, failed = run_module(model_integrity, dict(path=str(repo / MODEL), card=str(bad)), capsys)
    assert failed and f"cannot read the model card {bad}" in out["msg"]
    empty = tmp_path / "empty-card.json"
    empty.write_text(json.dumps({"name": "ppo", "version": "v1"}))
    out, failed = run_module(model_integrity, dict(path=str(repo / MODEL), card=str(empty)), capsys)
    assert failed and f"model card {empty} holds no md5 or sha256" in out["msg"]


def test_dvc_model_refuses_what_is_not_a_dvc_file_and_a_missing_earlier_version(models, tmp_path, capsys):
    repo, _md5 = models
    before = tree(repo / "models")
    out, failed = run_module(dvc_model, dict(repo=str(repo), target="models/ppo_production/model_card.json",
                                             backup_dir=str(tmp_path / "kept")), capsys)
    assert failed and "models/ppo_production/model_card.json is not a .dvc file in" in out["msg"]
    # one version only: there is nothing to roll back to
    out, failed = run_module(dvc_model, dict(repo=str(repo), target="models/ppo_production.dvc", state="rollback",
                                             backup_dir=str(tmp_path / "kept")), capsys)
    assert failed and "the git history of models/ppo_production.dvc holds no earlier version" in out["msg"]
    assert not out["changed"] and tree(repo / "models") == before and not (tmp_path / "kept").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""


# --------------------------------------------------------------------------- broker and feed

def _redis_args(redis_seeded) -> dict:
    return dict(login_host="127.0.0.1", login_port=redis_seeded.port, login_password=redis_seeded.srv.password)


@pytest.mark.parametrize("args, words", [
    (dict(chain=["primary", "backup", "primary"]), "chain must list each adapter once"),
    (dict(chain=["primary", "backup"], target="paper"), "target paper is not in the chain primary, backup"),
])
def test_broker_chain_refusals_write_nothing(redis_seeded, capsys, args, words):
    before = redis_seeded.snapshot()
    out, failed = run_module(broker_failover, dict(_redis_args(redis_seeded), action="switch", **args), capsys)
    assert failed and words in out["msg"]
    assert redis_seeded.snapshot() == before


def test_broker_failover_with_no_backup_left_or_an_unknown_active_adapter(redis_seeded, capsys):
    for active, words in (("backup", "no backup adapter left after backup in the chain primary, backup"),
                          ("legacy", "the active adapter 'legacy' (broker:active) is not in the chain")):
        with redis_seeded.client() as c:
            c.set("broker:active", active)
        before = redis_seeded.snapshot()
        out, failed = run_module(broker_failover, dict(_redis_args(redis_seeded), action="switch",
                                                       chain=["primary", "backup"]), capsys)
        assert failed and words in out["msg"], out["msg"]
        assert redis_seeded.snapshot() == before


REGISTRY = "# feeds\nprimary_feed: yahoo\nbackup_feed: moneycontrol\nfeeds:\n  yahoo: {}\n  moneycontrol: {}\n"


@pytest.mark.parametrize("registry, primary, words", [
    (REGISTRY, "../etc", "feed name '../etc' is refused"),
    (REGISTRY, "bloomberg", "feed bloomberg is neither the backup_feed (moneycontrol) nor listed under feeds"),
    ("primary_feed: yahoo\nprimary_feed: x\nbackup_feed: moneycontrol\n", "moneycontrol",
     "the registry must have exactly one top-level primary_feed line"),
    (": : not yaml [", "moneycontrol", "cannot read the feed registry"),
])
def test_feed_registry_refusals_leave_the_registry_as_it_was(tmp_path, capsys, registry, primary, words):
    reg = tmp_path / "registry.yaml"
    reg.write_text(registry)
    out, failed = run_module(feed_failover, dict(registry=str(reg), primary=primary,
                                                 backup_dir=str(tmp_path / "bk")), capsys)
    assert failed and words in out["msg"], out["msg"]
    assert reg.read_text() == registry and not (tmp_path / "bk").exists()


def test_feed_failover_on_a_host_without_pyyaml_names_what_is_missing(tmp_path, capsys, monkeypatch):
    """Found by the Molecule rehearsal (a Debian base without python3-yaml): the module failed with
    "'NoneType' object has no attribute 'YAMLError'"."""
    monkeypatch.setattr(feed_failover, "yaml", None)
    reg = tmp_path / "registry.yaml"
    reg.write_text(REGISTRY)
    out, failed = run_module(feed_failover, dict(registry=str(reg), primary="moneycontrol",
                                                 backup_dir=str(tmp_path / "bk")), capsys)
    assert failed and "PyYAML" in out["msg"] and "python3-yaml" in out["msg"], out["msg"]
    assert reg.read_text() == REGISTRY and not (tmp_path / "bk").exists()


def test_dvc_model_fails_clearly_when_the_dvc_cache_is_corrupted(models, tmp_path, capsys):
    """The DVC cache itself is corrupted (the object of the model file holds other bytes) and no
    pull is allowed: DVC 3 detects it during the checkout, and the module fails with its words
    instead of claiming a recovery. (Its own "still differs" check, after a checkout DVC accepted,
    is a second line that this DVC does not let a test reach.)"""
    repo, md5 = models
    obj = repo / ".dvc" / "cache" / "files" / "md5" / md5["v1"][:2] / md5["v1"][2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not the model")
    (repo / MODEL).write_bytes(b"broken")
    out, failed = run_module(dvc_model, dict(repo=str(repo), target="models/ppo_production.dvc", pull=False,
                                             backup_dir=str(tmp_path / "kept")), capsys)
    assert failed and "dvc checkout --force models/ppo_production.dvc failed" in out["msg"], out["msg"]
    assert "Is your cache up to date?" in out["msg"]
    assert not (repo / MODEL).exists() or (repo / MODEL).read_bytes() != b"not the model"
    kept = list((tmp_path / "kept").rglob("final_model.zip"))
    assert kept and kept[0].read_bytes() == b"broken"  # what was there is kept aside, and the message says where
    assert f"The files as they were before are kept in {tmp_path / 'kept'}" in out["msg"]


# --------------------------------------------------------------------------- QuestDB restore

def test_questdb_restore_says_when_the_copy_in_place_does_not_match(tmp_path, capsys, monkeypatch):
    """Fault injection at the copy (a disk that returns other bytes): the module checks the copy
    in place against the manifest and says where the previous data is; it never starts QuestDB."""
    import shutil

    from ansible_collections.tradeops.dr.plugins.module_utils import _manifest
    from ansible_collections.tradeops.dr.plugins.modules import questdb_restore
    from tradeops_dr.sandbox import free_port

    live = tmp_path / "questdb"
    (live / "db" / "trades~1").mkdir(parents=True)
    (live / "db" / "trades~1" / "ts.d").write_bytes(b"\x01" * 4096)
    source = tmp_path / "snapshot" / "questdb"
    shutil.copytree(live, source)
    backup, _entries, _reused = _manifest.copy_aside(str(source), str(tmp_path / "backups"), "questdb-", reason="test")
    manifest = Path(backup) / "MANIFEST.json"
    manifest.write_text(json.dumps(dict(json.loads(manifest.read_text()), questdb_version=[8, 1, 2])))
    (live / "db" / "written-after-backup").write_text("x")

    real_copytree = shutil.copytree

    def copy_that_goes_wrong(src, dst, *args, **kw):
        out = real_copytree(src, dst, *args, **kw)
        if Path(dst) == live:  # the whole copy (shutil recurses through copytree for sub-folders)
            (live / "db" / "trades~1" / "ts.d").write_bytes(b"\x00" * 4096)
        return out

    monkeypatch.setattr(questdb_restore.shutil, "copytree", copy_that_goes_wrong)
    closed = f"http://127.0.0.1:{free_port()}"  # QuestDB is stopped
    out, failed = run_module(questdb_restore, dict(root=str(live), backup=backup, server_version="8.1.2", url=closed,
                                                   health_url=closed), capsys)
    assert failed and f"the restored copy in {live} does not match the manifest" in out["msg"], out["msg"]
    aside = out["restore"]["moved_aside"]
    assert f"the previous data is in {aside}" in out["msg"]
    assert (Path(aside) / "db" / "written-after-backup").read_text() == "x"  # nothing lost
    assert not (live / "_restore").exists()  # no trigger: QuestDB will not take the bad copy as a restore


def test_strategy_health_scrubs_the_log_lines_it_returns(tmp_path, capsys):
    """Issue 26: strategy_health returned raw log lines in its results (and so in artifacts and incident
    records): a password in a URL, an API key, a signed query string reached them."""
    import json as _json
    import time as _time

    from ansible_collections.tradeops.dr.plugins.modules import strategy_health

    secrets = ["hunter2-redis", "AKIA-LIVE-KEY-1", "sig0123456789abcdef", "eyJhbGciOi.jwt"]
    log = tmp_path / "momentum.log"
    log.write_text("\n".join([
        "INFO loop ok",
        "ERROR cannot connect redis://ops:hunter2-redis@10.0.0.1:6379/0",
        "ERROR order rejected GET /fapi/v1/order?symbol=BTCUSDT&signature=sig0123456789abcdef",
        "WARNING reconnect attempt 2 api_key=AKIA-LIVE-KEY-1",
        "ERROR 401 Authorization: Bearer eyJhbGciOi.jwt",
    ]) + "\n")
    hb = tmp_path / "hb.json"
    hb.write_text(_json.dumps({"ts": _time.time(), "price_ts": _time.time()}))
    out, failed = run_module(strategy_health, dict(heartbeat_file=str(hb), log_file=str(log)), capsys)
    assert not failed, out
    text = _json.dumps(out)
    for secret in secrets:
        assert secret not in text, secret
    strategy = out["strategy"]
    assert len(strategy["errors"]) == 3 and strategy["reconnect_attempts"] == 1
    assert "redis://ops:********@10.0.0.1" in strategy["errors"][0]
