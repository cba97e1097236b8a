"""The sandbox stack as a user meets it: `tradeops-dr sandbox up|status|down`, and the
plain ansible-playbook command against inventories/local."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from conftest import need_server
from tradeops_dr import builds
from tradeops_dr.sandbox import Sandbox, pid_alive, read_pid

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


STATE_KEY = {"inference": "model"}  # where sandbox.json describes a part


def parts() -> list[str]:
    """The parts a sandbox has here: QuestDB only where its jar is installed; the inference
    stand-in wherever git and dvc are (the test extras install dvc); the PMS stand-in always (its book
    is a database of the sandbox's PostgreSQL)."""
    return (["redis", "postgres"] + (["questdb"] if builds.questdb_jar() else [])
            + (["inference"] if shutil.which("dvc") and shutil.which("git") and importlib.util.find_spec("dvc")
               else []) + ["pms"])


@pytest.fixture(scope="module")
def sandbox():
    # PostgreSQL runs as the postgres user when the tests run as root: it must be able to
    # reach its folder, which pytest's own tmp folders (mode 0700) do not allow.
    state = Path(tempfile.mkdtemp(prefix="tradeops-sandbox-"))
    state.chmod(0o755)
    env = dict(os.environ, TRADEOPS_DR_SANDBOX=str(state), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    yield state, env
    subprocess.run([str(BIN / "tradeops-dr"), "sandbox", "down"], env=env, capture_output=True, check=False)
    shutil.rmtree(state, ignore_errors=True)


def _up(sandbox) -> tuple[Path, dict]:
    """Every test starts from a running sandbox (the module's one; `up` is idempotent), so that
    each passes alone and in any order."""
    state, env = sandbox
    up = _cli(env, "sandbox", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    return state, env


def _cli(env, *args):
    return subprocess.run([str(BIN / "tradeops-dr"), *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)


def test_up_status_and_the_local_inventory(sandbox):
    state, env = sandbox
    up = _cli(env, "sandbox", "up")
    assert up.returncode == 0, up.stderr
    info = json.loads((state / "sandbox.json").read_text())
    assert f"127.0.0.1:{info['redis']['port']}" in up.stdout and f"127.0.0.1:{info['postgres']['port']}" in up.stdout
    assert info["redis"]["port"] != info["postgres"]["port"]
    # secrets are files only their owner reads, and they are not in sandbox.json
    pw_file = Path(info["redis"]["password_file"])
    assert oct(pw_file.stat().st_mode & 0o777) == "0o600"
    assert pw_file.read_text().strip() not in (state / "sandbox.json").read_text()
    assert info["seeded"]["postgres"] == {"trades": 5000, "positions": 5}
    # the whole platform of the runbooks where its servers are installed; each part says why not otherwise
    if builds.timescaledb_installed():
        assert info["postgres"]["timescaledb"] == "2.28.3"
        assert info["seeded"]["timescaledb"]["ticks"] == 10000 and info["seeded"]["timescaledb"]["compressed_chunks"] == 2
        assert "TimescaleDB 2.28.3, hypertable ticks with 2 compressed chunks" in up.stdout
    else:
        assert "timescaledb not part of this sandbox" in up.stdout
    if builds.questdb_jar():
        assert info["seeded"]["questdb"] == {"trades": 1000}
        assert f"questdb   127.0.0.1:{info['questdb']['http_port']}" in up.stdout
        # a small server's JVM, on the class-data archive scripts/setup.sh made (CI runs setup.sh first): mapped
        # into the JVM when it was used (an archive the JVM cannot use is skipped, at times without a word)
        qpid = read_pid(Path(info["questdb"]["root"]).parent / "questdb.pid")
        argv = Path(f"/proc/{qpid}/cmdline").read_bytes().decode().split("\0")
        assert "-XX:TieredStopAtLevel=1" in argv, argv
        if os.environ.get("CI") == "true" or builds.questdb_archive().is_file():
            assert str(builds.questdb_archive()) in Path(f"/proc/{qpid}/maps").read_text(), argv
    else:
        assert "questdb   not part of this sandbox" in up.stdout

    assert f"pms       127.0.0.1:{info['pms']['port']}" in up.stdout
    assert oct(Path(info["pms"]["token_file"]).stat().st_mode & 0o777) == "0o600"
    status = _cli(env, "sandbox", "status")
    assert status.returncode == 0 and status.stdout.count("running  ready") == len(parts()), status.stdout
    for part in parts():
        assert f"  {part:<9} running  ready  127.0.0.1:" in status.stdout

    # the user's command, as README.md writes it
    play = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/redis_failure.yml", "-i", "inventories/local"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
    assert "changed=0" in play.stdout and "failed=0" in play.stdout
    assert pw_file.read_text().strip() not in play.stdout


def test_local_inventory_recovers_a_killed_sandbox_redis(sandbox):
    state, env = _up(sandbox)
    info = json.loads((state / "sandbox.json").read_text())
    pid = read_pid(Path(info["redis"]["pidfile"]))
    os.kill(pid, signal.SIGKILL)
    run = _cli(env, "run", "redis_failure.yml", "-i", "inventories/local")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # two changes: the state kept aside first (runbook 004: preserve state), then the restart
    assert "successful (rc=0)" in run.stdout and "changed=2" in run.stdout
    assert len(list((state / "backups" / "redis-snapshots").glob("redis-*/MANIFEST.json"))) == 1
    new_pid = read_pid(Path(info["redis"]["pidfile"]))
    assert new_pid != pid and pid_alive(new_pid)


def test_questdb_timescaledb_and_model_playbooks_on_the_sandbox(sandbox):
    need_server("questdb")
    need_server("timescaledb")
    state, env = _up(sandbox)
    info = json.loads((state / "sandbox.json").read_text())
    for playbook in ("questdb_repair.yml", "backup.yml", "model_rollback.yml"):
        play = subprocess.run([str(BIN / "ansible-playbook"), f"playbooks/{playbook}", "-i", "inventories/local"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
    known = json.loads(Path(info["questdb"]["state_file"]).read_text())
    assert known == {"trades": 1000}
    manifest = max((json.loads(p.read_text()) for p in (state / "backups" / "postgres").rglob("trading_*.manifest.json")),
                   key=lambda m: m["created_at"])
    assert manifest["status"] == "verified" and manifest["extensions"]["timescaledb"] == "2.28.3"
    assert manifest["row_counts"]["public.ticks"] == 10000
    # the model served is the one DVC tracks at HEAD (v2)
    health = json.loads(urllib.request.urlopen(info["model"]["url"] + "/v1/health", timeout=5).read())
    assert health["model_md5"] == info["model"]["md5"]["v2"]


def test_database_drill_on_the_sandbox_prints_each_step_as_it_ends(sandbox):
    state, env = _up(sandbox)
    info = json.loads((state / "sandbox.json").read_text())
    # with TimescaleDB the drill has a disk-full step too: one playbook run per step
    scenarios = ["db backup", "db damage"] + (["db disk full"] if "timescaledb" in info["seeded"] else []) + ["db down"]
    runs = Path(tempfile.mkdtemp(prefix="tradeops-runs-"))
    proc = subprocess.Popen([str(BIN / "tradeops-dr"), "drill", "database"], env=dict(env, TRADEOPS_DR_RUNS_DIR=str(runs)),
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, runs_when_first_step_printed = [], None
    with proc.stdout:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("db backup "):
                runs_when_first_step_printed = len(list(runs.glob("run-*")))
    proc.wait(timeout=600)
    # progress: the first step is printed when its playbook run ends, before the drill's last run starts (not
    # with the whole table at the end, when all the runs are done)
    assert runs_when_first_step_printed is not None and runs_when_first_step_printed < len(scenarios)
    assert len(list(runs.glob("run-*"))) == len(scenarios)
    shutil.rmtree(runs, ignore_errors=True)
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    assert f"{len(scenarios)} passed, 0 failed" in out and "The sandbox is still running" in out and "sandbox down" in out
    for scenario in scenarios:
        assert re.search(rf"^{scenario} +PASS ", out, re.M), scenario
    assert list((state / "backups" / "postgres").rglob("trading_*.manifest.json"))
    assert Path(info["postgres"]["password_file"]).read_text().strip() not in out
    # issue 30: the application that uses the database was stopped before the restore and is healthy after it
    assert re.search(r"application db-app: pid \d+ stopped before the restore, pid \d+ answers 200 after it", out), out


def test_down_stops_both_by_pid(sandbox):
    state, env = _up(sandbox)
    info = json.loads((state / "sandbox.json").read_text())
    pids = [read_pid(Path(info[STATE_KEY.get(part, part)]["pidfile"])) for part in parts()]
    assert all(pid_alive(p) for p in pids)
    down = _cli(env, "sandbox", "down")
    assert down.returncode == 0
    assert not any(pid_alive(p) for p in pids)
    status = _cli(env, "sandbox", "status")
    assert status.returncode == 1 and status.stdout.count("stopped") == len(parts())
    # up again reuses the same state: same ports, data kept
    again = Sandbox(state).up()
    assert again["redis"]["port"] == info["redis"]["port"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback exists for root, who runs PostgreSQL as postgres")
def test_checkout_the_postgres_user_cannot_reach_gets_its_cluster_elsewhere(tmp_path):
    private = Path(tempfile.mkdtemp(prefix="tradeops-private-"))  # mode 0700, like /root
    try:
        sb = Sandbox(private / ".sandbox")
        state = sb.up()
        link = private / ".sandbox" / "postgres"
        assert link.is_symlink() and str(link.resolve()).startswith("/var/lib/tradeops-dr/")
        assert state["seeded"]["postgres"]["trades"] == 5000
        assert sb.status()["postgres"]["ready"] is True
        cluster = link.resolve().parent
        sb.destroy()
        assert not cluster.exists() and not (private / ".sandbox").exists()
    finally:
        shutil.rmtree(private, ignore_errors=True)
