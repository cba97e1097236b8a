"""playbooks/model_rollback.yml against real git and DVC (PyPI dvc, a local remote folder) and
the inference API stand-in (src/tradeops_dr/standins/inference_api.py): corruption detected and put back,
reload failing then restart, rollback to the previous version and to a tag, dirty tree refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, artifacts_text, free_port, record
from tradeops_dr.seed import MODEL, seed_model_repo

pytestmark = pytest.mark.integration

STANDIN = ROOT / "src" / "tradeops_dr" / "standins" / "inference_api.py"


class ModelRepo:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.repo = tmp / "repo"
        self.remote = tmp / "dvc-remote"
        self.md5 = seed_model_repo(self.repo, self.remote)
        self.port = free_port()
        self.pidfile = tmp / "inference.pid"
        self.proc = None

    def start_api(self, reload_broken: bool = False):
        argv = self.command(reload_broken)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("inference stand-in did not start")

    def command(self, reload_broken: bool = False) -> list:
        argv = [sys.executable, str(STANDIN), "--port", str(self.port), "--model", str(self.repo / MODEL),
                "--pidfile", str(self.pidfile)]
        return argv + (["--reload-broken"] if reload_broken else [])

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/health", timeout=2) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def reload(self) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/models/reload", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self):
        try:
            pid = int(self.pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            pass
        if self.proc:
            self.proc.wait(timeout=5)

    def vars(self, **kw) -> dict:
        return dict(model_rollback_repo=str(self.repo), model_rollback_dvc_target="models/ppo_production.dvc",
                    model_rollback_model_path=MODEL, model_rollback_card="models/ppo_production/model_card.json",
                    model_rollback_backup_dir=str(self.tmp / "kept"),
                    model_rollback_api_url=f"http://127.0.0.1:{self.port}",
                    model_rollback_service=dict(name="inference-api", manager="process", foreground=True,
                                                start_command=self.command(), pidfile=str(self.pidfile)),
                    model_rollback_ready_timeout=20, **kw)

    def file_md5(self) -> str:
        return hashlib.md5((self.repo / MODEL).read_bytes()).hexdigest()


@pytest.fixture
def models(tmp_path):
    m = ModelRepo(tmp_path)
    yield m
    m.stop()


def play(run, models, **kw):
    return run("playbooks/model_rollback.yml", models.vars(**kw), group="model_servers")


def test_healthy_model_changes_nothing(run, models):
    models.start_api()
    res = play(run, models)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "model_recovery")
    assert rec["file_was_ok"] is True and rec["reloaded"] is False and rec["restarted"] is False
    assert rec["serving"]["model_md5"] == models.md5["v2"]


def test_corrupted_model_is_detected_restored_from_dvc_and_reloaded(run, models):
    models.start_api()
    (models.repo / MODEL).write_bytes(b"PK\x03\x04 truncated garbage")
    shutil.rmtree(models.repo / ".dvc" / "cache")  # only the DVC remote still has it
    models.reload()  # the service picked the bad file up: now unhealthy
    assert models.health()["status"] == "unhealthy"
    res = play(run, models)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "model_recovery")
    assert rec["file_was_ok"] is False and rec["reloaded"] is True and rec["restarted"] is False
    assert any(c.startswith("dvc pull") for c in rec["dvc"]["commands"])
    assert models.file_md5() == models.md5["v2"] == models.health()["model_md5"]
    kept = list((models.tmp / "kept").rglob("final_model.zip"))
    assert kept and kept[0].read_bytes() == b"PK\x03\x04 truncated garbage"  # the bad file, kept aside


def test_the_verified_model_is_backed_up_to_the_dvc_remote(run, models, capsys):
    """Issue 30 (runbook 001, model backup): after a verified recovery, dvc push to the remote, then checked: the
    remote holds the model's bytes under their md5 again; a second run pushes nothing; an unverified model is
    never pushed."""
    models.start_api()
    shutil.rmtree(models.remote / "files")  # a remote that lost its copies
    (models.repo / MODEL).write_bytes(b"PK\x03\x04 truncated garbage")
    models.reload()
    res = play(run, models, model_rollback_push=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    backup = record(res, "model_backup")
    assert "models/ppo_production/final_model.zip" in backup["remote_lacked"], backup  # the folder DVC tracks
    assert any(c.startswith("dvc push") for c in backup["commands"])
    stored = models.remote / "files" / "md5" / models.md5["v2"][:2] / models.md5["v2"][2:]
    assert hashlib.md5(stored.read_bytes()).hexdigest() == models.md5["v2"] == models.file_md5()
    again = play(run, models, model_rollback_push=True)
    assert again.status == "successful" and record(again, "model_backup")["remote_lacked"] == []
    assert again.changed == 0, again.stats
    # a model that does not match its .dvc file is never pushed
    from ansible_collections.tradeops.dr.plugins.modules import dvc_model
    from conftest import run_module

    (models.repo / MODEL).write_bytes(b"not the model")
    out, failed = run_module(dvc_model, dict(repo=str(models.repo), target="models/ppo_production.dvc", state="pushed",
                                             backup_dir=str(models.tmp / "kept")), capsys)
    assert failed and "only a verified model is backed up" in out["msg"] and "nothing was pushed" in out["msg"], out
    assert hashlib.md5(stored.read_bytes()).hexdigest() == models.md5["v2"]


def test_reload_failing_leads_to_a_restart(run, models):
    models.start_api(reload_broken=True)
    (models.repo / MODEL).write_bytes(b"garbage")
    subprocess.run(["kill", "-TERM", str(models.proc.pid)], check=True)
    models.proc.wait(timeout=5)
    models.start_api(reload_broken=True)  # comes up unhealthy on the garbage file
    assert models.health()["status"] == "unhealthy"
    res = play(run, models)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "model_recovery")
    assert rec["reloaded"] is False and rec["restarted"] is True
    assert models.health()["model_md5"] == models.md5["v2"]


def test_rollback_to_previous_then_to_a_tag(run, models):
    models.start_api()
    res = play(run, models, model_rollback_action="rollback")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "model_recovery")
    assert rec["dvc"]["revision_subject"] == "model v1" and rec["reloaded"] is True
    assert models.file_md5() == models.md5["v1"] == models.health()["model_md5"]
    # the .dvc file now differs from HEAD: a second rollback is refused without force
    res = play(run, models, model_rollback_action="rollback", model_rollback_revision="v2")
    assert res.status == "failed" and "uncommitted changes" in artifacts_text(res)
    assert models.health()["model_md5"] == models.md5["v1"]
    res = play(run, models, model_rollback_action="rollback", model_rollback_revision="v2",
               model_rollback_force=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert models.file_md5() == models.md5["v2"] == models.health()["model_md5"]


def test_check_mode_rollback_changes_nothing(run, models):
    models.start_api()
    before = (models.repo / "models" / "ppo_production.dvc").read_text()
    res = run("playbooks/model_rollback.yml", models.vars(model_rollback_action="rollback"), group="model_servers",
              check=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert (models.repo / "models" / "ppo_production.dvc").read_text() == before
    assert models.file_md5() == models.md5["v2"] == models.health()["model_md5"]


def test_verify_action_passes_on_a_healthy_model_and_fails_on_a_bad_one_changing_nothing(run, models):
    models.start_api()
    ok = play(run, models, model_rollback_action="verify")
    assert ok.status == "successful" and ok.changed == 0, artifacts_text(ok)[-2000:]
    assert "model file matches its card and the service serves it" in ok.stdout
    (models.repo / MODEL).write_bytes(b"PK\x03\x04 garbage")
    bad = play(run, models, model_rollback_action="verify")
    assert bad.status == "failed"
    msg = " ".join(f.msg for f in bad.failures)
    assert "The model is not right: file BAD" in msg and "Nothing was changed" in msg
    assert (models.repo / MODEL).read_bytes() == b"PK\x03\x04 garbage"  # not put back by a verify
    assert models.health()["model_md5"] == models.md5["v2"]  # nothing reloaded
