"""playbooks/config_rollback.yml against a real git repository: a corrupted config put back from
HEAD and validated, the last change rolled back, a version that does not validate refused
with nothing changed, the services that read the files restarted (real processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import artifacts_text, record

pytestmark = pytest.mark.integration

GOOD_V1 = '[trading]\nsymbols = ["USDCOP"]\n[risk]\nmax_drawdown = 0.05\n[live]\nenabled = false\n'
GOOD_V2 = '[trading]\nsymbols = ["USDCOP", "EURUSD"]\n[risk]\nmax_drawdown = 0.08\n[live]\nenabled = true\n'
NO_RISK = '[trading]\nsymbols = ["USDCOP"]\n[live]\nenabled = true\n'
TOML = "config/trading_config.toml"
JSON = "config/norm_stats.json"


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def cfg(tmp_path):
    repo = tmp_path / "repo"
    (repo / "config").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ops@example.invalid")
    git(repo, "config", "user.name", "ops")
    for n, (toml, stats) in enumerate([(NO_RISK, '{"mean": 0}'), (GOOD_V1, '{"mean": 1}'), (GOOD_V2, '{"mean": 2}')]):
        (repo / TOML).write_text(toml)
        (repo / JSON).write_text(stats)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"config {n}")
    pidfile = tmp_path / "engine.pid"
    service = dict(name="trading-engine", manager="process", foreground=True, pidfile=str(pidfile),
                   start_command=[sys.executable, "-c", "import time; time.sleep(300)"],
                   probe=dict(type="command", command=["test", "-s", str(pidfile)]))  # a role option, not a service one
    yield repo, service, pidfile
    subprocess.run(["pkill", "-F", str(pidfile)], check=False)


def cvars(repo, tmp, service=None, **kw):
    return dict(config_rollback_repo=str(repo), config_rollback_files=[TOML, JSON],
                config_rollback_required_sections={TOML: ["trading", "risk", "live"]},
                config_rollback_backup_dir=str(tmp / "kept"), config_rollback_services=[service] if service else [],
                config_rollback_ready_timeout=10, **kw)


def test_corrupted_config_is_put_back_validated_and_the_service_restarted(run, cfg, tmp_path):
    repo, service, pidfile = cfg
    (repo / TOML).write_text('[trading\nsymbols = ["USDCOP"')  # truncated by a bad write
    pidfile.write_text("999999\n")
    res = run("playbooks/config_rollback.yml", cvars(repo, tmp_path, service), group="config_hosts")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    rec = record(res, "config_recovery")
    assert "not valid TOML" in rec["invalid_before"][TOML] and rec["restored"] == [TOML]
    assert (repo / TOML).read_text() == GOOD_V2 and rec["restarted"] == ["trading-engine"]
    assert int(pidfile.read_text()) != 999999
    kept = list((tmp_path / "kept").rglob("trading_config.toml"))
    assert kept and kept[0].read_text().startswith("[trading\n")
    again = run("playbooks/config_rollback.yml", cvars(repo, tmp_path, service), group="config_hosts")
    assert again.status == "successful" and record(again, "config_recovery")["restored"] == []


def test_rollback_undoes_the_last_change(run, cfg, tmp_path):
    repo, _service, _pidfile = cfg
    res = run("playbooks/config_rollback.yml", cvars(repo, tmp_path, config_rollback_action="rollback"),
              group="config_hosts")
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert (repo / TOML).read_text() == GOOD_V1 and (repo / JSON).read_text() == '{"mean": 1}'


def test_a_version_that_does_not_validate_is_never_put_in_place(run, cfg, tmp_path):
    repo, _service, _pidfile = cfg
    res = run("playbooks/config_rollback.yml", cvars(repo, tmp_path, config_rollback_action="rollback",
                                                     config_rollback_revision="HEAD~2"), group="config_hosts")
    assert res.status == "failed"
    assert "missing required section(s) risk" in artifacts_text(res) and "nothing was put in place" in artifacts_text(res)
    assert (repo / TOML).read_text() == GOOD_V2 and (repo / JSON).read_text() == '{"mean": 2}'
    assert not (tmp_path / "kept").exists()


def test_check_mode_and_validate_only_change_nothing(run, cfg, tmp_path):
    repo, _service, _pidfile = cfg
    (repo / JSON).write_text("{not json")
    res = run("playbooks/config_rollback.yml", cvars(repo, tmp_path), group="config_hosts", check=True)
    assert res.status == "successful", artifacts_text(res)[-3000:]
    assert (repo / JSON).read_text() == "{not json"
    res = run("playbooks/config_rollback.yml", cvars(repo, tmp_path, config_rollback_action="validate"),
              group="config_hosts")
    assert res.status == "successful" and "not valid JSON" in artifacts_text(res)
    assert (repo / JSON).read_text() == "{not json"
