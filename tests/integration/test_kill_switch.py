"""playbooks/kill_switch.yml through ansible-runner against real Redis, with small stand-ins
for the users' own trading engines and flatten tool (src/tradeops_dr/standins/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import artifacts_text, record
from tradeops_dr.sandbox import free_port, pid_alive, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "src" / "tradeops_dr" / "standins"
PLAYBOOK = "kill_switch.yml"


@pytest.fixture
def desk(redis_seeded, tmp_path, monkeypatch):
    """Redis with the seed data set, two engines that honour the switch, one strategy
    service (a plain process), and the role variables that describe them. The fast path's
    connection cache lives in the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    env = dict(os.environ, REDISCLI_AUTH=redis_seeded.srv.password)
    engines = {}

    def start_engine(name, *extra):
        engines[name] = subprocess.Popen([sys.executable, str(STANDINS / "trading_engine.py"), "--port",
                                          str(redis_seeded.port), "--name", name, *extra], env=env)

    start_engine("momentum")
    start_engine("meanrev")
    strategy_pid = tmp_path / "strategy.pid"
    strategy = dict(name="strategy", manager="process", pidfile=str(strategy_pid), foreground=True, stop_timeout=5,
                    start_command=[sys.executable, "-c", "import time; time.sleep(300)"])
    proc = subprocess.Popen(strategy["start_command"], start_new_session=True)
    strategy_pid.write_text(f"{proc.pid}\n")

    def vars_(**kw):
        v = dict(kill_switch_redis_port=redis_seeded.port, kill_switch_redis_password=redis_seeded.srv.password,
                 kill_switch_strategy_services=[strategy], kill_switch_engines=["momentum", "meanrev"],
                 kill_switch_ack_timeout=10, kill_switch_flag_file=str(tmp_path / "kill_switch.flag"))
        v.update(kw)
        return v

    try:
        with redis_seeded.client() as c:
            wait_for(lambda: (c.xlen("orders.validated") > 205, "engines sending"), 10, "engines")
        yield dict(redis=redis_seeded, vars=vars_, start_engine=start_engine, strategy=proc, tmp=tmp_path, env=env)
    finally:
        for p in engines.values():
            p.kill()
            p.wait()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _run(run, desk, **kw):
    return run(PLAYBOOK, desk["vars"](**kw), group="kill_switch")


def _engage(run, desk, **kw):
    args = dict(kill_switch_action="engage", kill_switch_reason="drawdown 5%", kill_switch_actor="oncall-a",
                kill_switch_incident="INC-1")
    args.update(kw)
    return _run(run, desk, **args)


def _switch(desk) -> dict:
    with desk["redis"].client() as c:
        return c.hgetall("policy:kill_switch")


def _msg(res) -> str:
    return " ".join(f.msg for f in res.failures)


def test_status_changes_nothing(desk, run):
    res = _run(run, desk)
    assert res.ok and res.changed == 0
    assert "active (trading allowed)" in res.stdout


def test_status_exports_what_the_switch_holds(desk, run):
    """The drills' operator reset reads the incident to confirm from this record: without it the
    reset was silently skipped and the switch stayed engaged after every drill."""
    assert _engage(run, desk).ok
    res = _run(run, desk)
    assert res.ok and res.changed == 0
    rec = record(res, "kill_switch")
    assert rec["outcome"] == "status" and rec["switch"]["enabled"] is True and rec["switch"]["incident"] == "INC-1"


def test_engage_sets_the_flag_stops_services_and_engines_acknowledge(desk, run):
    positions_before = {k: v for k, v in desk["redis"].snapshot().items() if k.startswith("positions:")}
    res = _engage(run, desk)
    assert res.ok, res.failures
    sw = _switch(desk)
    assert sw["enabled"] == "true" and sw["state"] == "halted" and sw["reason"] == "drawdown 5%"
    assert sw["actor"] == "oncall-a" and sw["incident"] == "INC-1" and sw["engaged_at"].endswith("Z")
    with desk["redis"].client() as c:
        events = c.xrange("policy:kill_switch:events")
        assert events[-1][1]["event"] == "engage"
        for name in ("momentum", "meanrev"):
            assert int(c.hget(f"engine:{name}:ack", "at_ms")) >= int(sw["engaged_at_ms"])
        # no new orders once the engines acknowledged: every order an engine sent carries an entry
        # ID (its time in ms) before that engine's acknowledgement. Let a few order intervals pass
        # after the last ack first, so that an engine that kept trading would have written some.
        acks = {name: int(c.hget(f"engine:{name}:ack", "at_ms")) for name in ("momentum", "meanrev")}
        wait_for(lambda: (int(time.time() * 1000) > max(acks.values()) + 300, "waiting"), 5, "order intervals")
        sent = {}
        for eid, fields in c.xrange("orders.validated"):
            if fields.get("engine") in acks:
                sent.setdefault(fields["engine"], []).append(int(eid.split("-")[0]))
        assert set(sent) == set(acks), "the engines never traded: the check below would prove nothing"
        late = {name: [ms for ms in times if ms > acks[name]] for name, times in sent.items()}
        assert late == {"momentum": [], "meanrev": []}, f"orders after the acknowledgement: {late}"
    desk["strategy"].wait(timeout=10)
    assert not pid_alive(desk["strategy"].pid)
    # engage does not close positions (runbook 003): the book is as it was
    assert {k: v for k, v in desk["redis"].snapshot().items() if k.startswith("positions:")} == positions_before
    assert record(res, "kill_switch")["outcome"] == "engaged"


def test_engaging_twice_keeps_the_first_reason_actor_and_time(desk, run):
    assert _engage(run, desk, kill_switch_state="reducing").ok
    first = _switch(desk)
    again = _engage(run, desk, kill_switch_reason="second thoughts", kill_switch_actor="oncall-b",
                    kill_switch_state="reducing")
    assert again.ok and again.changed == 0
    assert _switch(desk) == first
    stricter = _engage(run, desk, kill_switch_reason="worse", kill_switch_actor="oncall-b")
    assert stricter.ok
    sw = _switch(desk)
    assert sw["state"] == "halted" and sw["reason"] == "drawdown 5%" and sw["engaged_at"] == first["engaged_at"]


def test_a_silent_engine_is_named(desk, run):
    desk["start_engine"]("hung", "--silent")
    res = _engage(run, desk, kill_switch_engines=["momentum", "meanrev", "hung"], kill_switch_ack_timeout=2)
    assert not res.ok
    assert "engine(s) hung did not acknowledge the kill switch within 2" in _msg(res)
    assert _switch(desk)["enabled"] == "true"  # the flag stays set


def test_redis_down_during_engage_fails_closed_and_still_stops_services(desk, run):
    desk["redis"].kill9()
    res = _engage(run, desk)
    assert not res.ok and res.rc != 0
    assert "KILL SWITCH NOT SET IN REDIS" in _msg(res) and "Failed closed" in _msg(res)
    flag = json.loads((desk["tmp"] / "kill_switch.flag").read_text())
    assert flag["enabled"] is True and flag["reason"] == "drawdown 5%" and flag["actor"] == "oncall-a"
    desk["strategy"].wait(timeout=10)
    assert not pid_alive(desk["strategy"].pid)
    assert desk["redis"].srv.password not in artifacts_text(res)


def test_a_switch_that_can_be_set_nowhere_fails_loudly_and_still_stops_services(desk, run):
    """Issue 31's list: Redis down and the local flag file not writable either (its folder lies below a file). The
    run fails saying the switch is set nowhere, and the strategies are stopped all the same."""
    desk["redis"].kill9()
    (desk["tmp"] / "a-file").write_text("not a folder\n")
    res = _engage(run, desk, kill_switch_flag_file=str(desk["tmp"] / "a-file" / "kill_switch.flag"))
    assert not res.ok and res.rc != 0
    msg = _msg(res)
    assert "KILL SWITCH NOT SET" in msg and "a-file" in msg, msg
    assert "Failed closed" not in msg, msg  # nothing holds it: it must not claim the flag file does
    desk["strategy"].wait(timeout=10)
    assert not pid_alive(desk["strategy"].pid)


def test_check_mode_engage_changes_nothing(desk, run):
    res = run(PLAYBOOK, desk["vars"](kill_switch_action="engage", kill_switch_reason="x", kill_switch_actor="y"),
              group="kill_switch", check=True)
    assert res.ok, res.failures
    assert _switch(desk)["enabled"] == "false"
    assert desk["strategy"].poll() is None


def test_reset_needs_the_incident_id(desk, run):
    assert _engage(run, desk).ok
    for confirm in ("", "INC-2"):
        res = _run(run, desk, kill_switch_action="reset", kill_switch_confirm=confirm, kill_switch_actor="alice",
                   kill_switch_reason="recovered")
        assert not res.ok
        assert "confirm does not repeat the incident id of the engagement" in _msg(res)
        assert _switch(desk)["incident"] == "INC-1" and "INC-1" not in _msg(res)  # the refusal hands nothing out
        assert _switch(desk)["enabled"] == "true"


def test_reset_refused_beyond_the_drawdown_unless_forced(desk, run):
    assert _engage(run, desk).ok
    with desk["redis"].client() as c:
        c.set("risk:drawdown", "0.2")
    args = dict(kill_switch_action="reset", kill_switch_confirm="INC-1", kill_switch_actor="alice",
                kill_switch_reason="reviewed")
    res = _run(run, desk, **args)
    assert not res.ok and "drawdown 0.2 is still at or beyond the threshold 0.15" in _msg(res)
    assert _switch(desk)["enabled"] == "true"
    forced = _run(run, desk, kill_switch_force=True, **args)
    assert forced.ok, forced.failures
    sw = _switch(desk)
    assert sw["enabled"] == "false" and sw["state"] == "active" and sw["reset_forced"] == "true"


def test_two_person_reset(desk, run):
    assert _engage(run, desk).ok
    args = dict(kill_switch_action="reset", kill_switch_confirm="INC-1", kill_switch_actor="alice",
                kill_switch_reason="broker back", kill_switch_require_second_approver=True)
    alone = _run(run, desk, **args)
    assert not alone.ok and "a second approver is required" in _msg(alone)
    same = _run(run, desk, kill_switch_approver="alice", **args)
    assert not same.ok and "must be another person than alice" in _msg(same)
    # issue 26: the approver was free text compared case-sensitively - "Alice " approved alice's own reset
    same_other_case = _run(run, desk, kill_switch_approver=" Alice", **args)
    assert not same_other_case.ok and "must be another person than alice" in _msg(same_other_case)
    assert _switch(desk)["enabled"] == "true"
    both = _run(run, desk, kill_switch_approver="bob", **args)
    assert both.ok, both.failures
    sw = _switch(desk)
    assert sw["enabled"] == "false" and sw["reset_by"] == "alice" and sw["approved_by"] == "bob"
    with desk["redis"].client() as c:
        ev = c.xrange("policy:kill_switch:events")[-1][1]
    assert ev["event"] == "reset" and ev["approved_by"] == "bob" and ev["incident"] == "INC-1"
    # resetting an active switch changes nothing
    again = _run(run, desk, kill_switch_approver="bob", **args)
    assert again.ok and again.changed == 0


def test_flatten_brings_exposure_to_zero(desk, run, monkeypatch):
    with desk["redis"].client() as c:
        before = {k: float(c.hget(k, "qty")) for k in c.scan_iter(match="positions:*")}
    assert before and any(before.values()), "the seed must hold open positions for this test to prove anything"
    cmd = [sys.executable, str(STANDINS / "flatten_all.py"), "--port", str(desk["redis"].port)]
    monkeypatch.setenv("REDISCLI_AUTH", desk["redis"].srv.password)
    res = _run(run, desk, kill_switch_action="flatten", kill_switch_flatten_command=cmd)
    assert res.ok, res.failures
    with desk["redis"].client() as c:
        after = {k: float(c.hget(k, "qty")) for k in c.scan_iter(match="positions:*")}
    assert after == dict.fromkeys(before, 0.0)


def test_flatten_that_leaves_a_position_open_fails_naming_it(desk, run, monkeypatch):
    with desk["redis"].client() as c:
        c.hset("positions:ES", "qty", 7)
    cmd = [sys.executable, str(STANDINS / "flatten_all.py"), "--port", str(desk["redis"].port), "--leave", "ES"]
    monkeypatch.setenv("REDISCLI_AUTH", desk["redis"].srv.password)
    res = _run(run, desk, kill_switch_action="flatten", kill_switch_flatten_command=cmd,
               kill_switch_flatten_timeout=1)
    assert not res.ok and "exposure is not zero" in _msg(res) and "positions:ES 7.0" in _msg(res)


# --------------------------------------------------------------------------- the fast path

def _inventory(desk, path: Path, password_value: str) -> Path:
    import yaml

    v = desk["vars"]()
    host = dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                kill_switch_redis_port=v["kill_switch_redis_port"], kill_switch_redis_password=password_value,
                kill_switch_strategy_services=v["kill_switch_strategy_services"],
                kill_switch_engines=v["kill_switch_engines"], kill_switch_flag_file=v["kill_switch_flag_file"])
    path.write_text(yaml.safe_dump({"all": {"children": {"kill_switch": {"hosts": {"desk-1": host}}}}}))
    return path


def _cli(*args, env=None):
    return subprocess.run([str(Path(sys.executable).parent / "tradeops-dr"), "kill-switch", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env, check=False)


def test_fast_path_sets_the_flag_then_the_playbook_does_the_rest(desk):
    inv = _inventory(desk, desk["tmp"] / "inv.yml", desk["redis"].srv.password)
    res = _cli("engage", "-i", str(inv), "--reason", "feed frozen", "--actor", "oncall-a", "--incident", "INC-9")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    first_line = res.stdout.splitlines()[0]
    assert first_line.startswith("kill switch engaged in Redis 127.0.0.1:") and "connection from yaml" in first_line
    sw = _switch(desk)
    assert sw["enabled"] == "true" and sw["reason"] == "feed frozen" and sw["incident"] == "INC-9"
    desk["strategy"].wait(timeout=10)  # the playbook stopped the strategy service
    with desk["redis"].client() as c:
        assert all(int(c.hget(f"engine:{n}:ack", "at_ms")) >= int(sw["engaged_at_ms"]) for n in ("momentum", "meanrev"))
    assert desk["redis"].srv.password not in res.stdout + res.stderr


def test_fast_path_reads_a_templated_inventory_through_ansible(desk):
    inv = _inventory(desk, desk["tmp"] / "inv.yml", "{{ lookup('ansible.builtin.env', 'DESK_REDIS_PW') }}")
    env = dict(os.environ, DESK_REDIS_PW=desk["redis"].srv.password)
    res = _cli("engage", "-i", str(inv), "--reason", "r", "--actor", "a", "--flag-only", env=env)
    assert res.returncode == 0, res.stderr
    assert "connection from ansible: kill_switch_redis_password of desk-1 is templated" in res.stdout
    assert _switch(desk)["enabled"] == "true"
    # the resolved connection is kept private, and the next engage uses it
    (cache,) = (desk["tmp"] / "xdg-cache" / "tradeops-dr" / "kill-switch").iterdir()
    assert oct(cache.stat().st_mode & 0o777) == "0o600" and oct(cache.parent.stat().st_mode & 0o777) == "0o700"
    again = _cli("engage", "-i", str(inv), "--reason", "r", "--actor", "a", "--flag-only", env=env)
    assert again.returncode == 0 and "connection from cache" in again.stdout
    assert desk["redis"].srv.password not in again.stdout + again.stderr
    # a cache that is not private is never trusted
    cache.chmod(0o644)
    third = _cli("engage", "-i", str(inv), "--reason", "r", "--actor", "a", "--flag-only", env=env)
    assert third.returncode == 0 and "connection from ansible" in third.stdout


def test_fast_path_with_redis_down_still_fails_closed(desk):
    inv = _inventory(desk, desk["tmp"] / "inv.yml", desk["redis"].srv.password)
    desk["redis"].kill9()
    res = _cli("engage", "-i", str(inv), "--reason", "r", "--actor", "a")
    assert res.returncode != 0
    assert "KILL SWITCH NOT SET IN REDIS" in res.stderr and "local flag file" in res.stderr
    assert (desk["tmp"] / "kill_switch.flag").exists()
    desk["strategy"].wait(timeout=10)


def test_flag_only_with_redis_down_writes_the_flag_file_at_once(desk):
    """The fast path itself fails closed: before, --flag-only printed 'running the playbook,
    which fails closed', ran nothing and left no flag anywhere."""
    inv = _inventory(desk, desk["tmp"] / "inv.yml", desk["redis"].srv.password)
    desk["redis"].kill9()
    flag = desk["tmp"] / "kill_switch.flag"
    t0 = time.monotonic()
    res = _cli("engage", "-i", str(inv), "--reason", "feed frozen", "--actor", "oncall-a", "--flag-only")
    elapsed = time.monotonic() - t0
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(flag.read_text())
    assert data["enabled"] is True and data["reason"] == "feed frozen" and "Connection refused" in data["redis_error"]
    assert f"the local flag file {flag} was written" in res.stderr
    assert elapsed < 5, f"the flag file took {elapsed:.1f}s"
    assert desk["strategy"].poll() is None  # --flag-only: nothing else was run


def test_engage_with_an_unreadable_inventory_still_writes_the_local_flag(desk, tmp_path):
    flag = tmp_path / "default.flag"
    env = dict(os.environ, TRADEOPS_DR_KILL_SWITCH_FLAG=str(flag))
    res = _cli("engage", "-i", str(tmp_path / "no-such-inventory"), "--reason", "r", "--actor", "a", env=env)
    assert res.returncode != 0
    assert "cannot read inventory" in res.stderr and json.loads(flag.read_text())["enabled"] is True
    # the playbook that follows reaches no host: that is a failure, said as such
    assert "has no host matching 'kill_switch': this run would reach no host" in res.stdout + res.stderr


def test_a_stale_cached_connection_is_resolved_again(desk):
    inv = _inventory(desk, desk["tmp"] / "inv.yml", desk["redis"].srv.password)
    first = _cli("engage", "-i", str(inv), "--reason", "r", "--actor", "a", "--flag-only")
    assert first.returncode == 0
    (cache,) = (desk["tmp"] / "xdg-cache" / "tradeops-dr" / "kill-switch").iterdir()
    data = json.loads(cache.read_text())
    data["payload"]["login_port"] = free_port()  # as if Redis had moved since
    cache.write_text(json.dumps(data))
    with desk["redis"].client() as c:
        c.delete("policy:kill_switch")
    again = _cli("engage", "-i", str(inv), "--reason", "r2", "--actor", "a", "--flag-only")
    assert again.returncode == 0, again.stderr
    assert "connection from yaml" in again.stdout and _switch(desk)["reason"] == "r2"


# --------------------------------------------------------------------------- the monthly drill

@pytest.fixture
def risk_desk(desk):
    """Engines whose own risk check engages the switch at a 5% drawdown."""
    for name in ("momentum", "meanrev"):
        desk["start_engine"](name + "-risk", "--max-drawdown", "0.05")
    return desk


def test_drill_detects_acknowledges_stops_orders_and_cleans_up(risk_desk, run):
    desk = risk_desk
    res = _run(run, desk, kill_switch_action="drill",
               kill_switch_engines=["momentum", "meanrev", "momentum-risk", "meanrev-risk"])
    assert res.ok, res.failures
    rec = record(res, "kill_switch_drill")
    assert rec["switch"]["actor"].startswith("engine:") and "drawdown 5.00%" in rec["switch"]["reason"]
    assert sorted(rec["acked"]) == ["meanrev", "meanrev-risk", "momentum", "momentum-risk"]
    sw = _switch(desk)
    assert sw["enabled"] == "false" and sw["reset_reason"] == "kill-switch drill finished"
    with desk["redis"].client() as c:
        assert c.get("risk:drawdown") in ("0.0", None)


def test_drill_fails_when_an_engine_keeps_trading_after_it_acknowledged(risk_desk, run):
    desk = risk_desk
    desk["start_engine"]("rogue", "--ignore-switch")
    res = _run(run, desk, kill_switch_action="drill",
               kill_switch_engines=["momentum", "meanrev", "momentum-risk", "meanrev-risk", "rogue"])
    assert not res.ok
    assert "new order(s) reached orders.validated" in _msg(res) and "after the kill switch engaged" in _msg(res)
    with desk["redis"].client() as c:
        assert float(c.get("risk:drawdown")) == 0.0  # the drill put the drawdown back all the same


def test_drill_fails_when_no_engine_detects_the_drawdown(desk, run):
    res = _run(run, desk, kill_switch_action="drill", kill_switch_drill_detect_timeout=2)
    assert not res.ok
    assert "the kill switch was not engaged within 2" in " ".join(f.msg for f in res.failures)
    with desk["redis"].client() as c:
        assert float(c.get("risk:drawdown")) == 0.0  # put back
    assert _switch(desk)["enabled"] == "false"


def test_a_drill_on_an_engaged_switch_is_refused_saying_why(desk, run):
    """The refusal names the switch's incident, actor and reason and the way out (it said only
    'Action failed: Unknown error.' before)."""
    assert _engage(run, desk, kill_switch_reason="broker outage", kill_switch_incident="INC-77").ok
    before = _switch(desk)
    res = _run(run, desk, kill_switch_action="drill", kill_switch_drill_detect_timeout=2)
    assert not res.ok
    msg = _msg(res)
    assert "Not drilled: the kill switch is engaged" in msg and "INC-77" in msg and "broker outage" in msg
    assert "kill_switch_action=reset" in msg and "Nothing was changed" in msg
    assert _switch(desk) == before  # still engaged, untouched
    with desk["redis"].client() as c:
        assert c.get("risk:drawdown") in ("0.0", None)  # no drawdown simulated


def test_engage_without_reason_is_refused_before_anything_happens(desk, run):
    res = _run(run, desk, kill_switch_action="engage", kill_switch_actor="oncall-a")
    assert not res.ok and "engage needs kill_switch_reason and kill_switch_actor" in _msg(res)
    assert _switch(desk)["enabled"] == "false"
    assert desk["strategy"].poll() is None  # still running


def test_the_cli_status_reset_and_flatten(desk):
    """tradeops-dr kill-switch status|reset|flatten as a person types them."""
    import yaml

    inv = _inventory(desk, desk["tmp"] / "inv.yml", desk["redis"].srv.password)
    doc = yaml.safe_load(inv.read_text())
    doc["all"]["children"]["kill_switch"]["hosts"]["desk-1"]["kill_switch_flatten_command"] = [
        sys.executable, str(STANDINS / "flatten_all.py"), "--port", str(desk["redis"].port)]
    inv.write_text(yaml.safe_dump(doc))
    status = _cli("status", "-i", str(inv))
    assert status.returncode == 0 and "active (trading allowed)" in status.stdout
    engaged = _cli("engage", "-i", str(inv), "--reason", "cli", "--actor", "oncall-a", "--incident", "INC-7",
                   "--flag-only")
    assert engaged.returncode == 0
    status = _cli("status", "-i", str(inv))
    assert status.returncode == 0 and "INC-7" in status.stdout and "halted" in status.stdout
    refused = _cli("reset", "-i", str(inv), "--confirm", "INC-8", "--reason", "ok", "--actor", "oncall-b")
    assert refused.returncode != 0 and "confirm does not repeat the incident id" in refused.stderr
    assert _switch(desk)["enabled"] == "true"
    env = dict(os.environ, REDISCLI_AUTH=desk["redis"].srv.password)
    flat = _cli("flatten", "-i", str(inv), env=env)
    assert flat.returncode == 0, flat.stdout[-2000:] + flat.stderr[-2000:]
    with desk["redis"].client() as c:
        assert all(float(c.hget(k, "qty")) == 0 for k in c.scan_iter(match="positions:*"))
        assert c.keys("positions:*")
    reset = _cli("reset", "-i", str(inv), "--confirm", "INC-7", "--reason", "recovered", "--actor", "oncall-b")
    assert reset.returncode == 0, reset.stdout[-2000:] + reset.stderr[-2000:]
    sw = _switch(desk)
    assert sw["enabled"] == "false" and sw["reset_by"] == "oncall-b"


def test_the_switch_in_the_strategy_config_is_engaged_beside_redis_and_reset_only_with_it(desk, run, tmp_path):
    """Issue 30 (runbook 003 section 5: "edit strategy config to reset, then restart"): the switch a strategy reads
    from its own config is engaged with Redis's (only its line changed, the old version kept aside), reported by
    status, left engaged by a refused reset, and reset with the confirmed one."""
    cfg = tmp_path / "strategy" / "config.toml"
    cfg.parent.mkdir()
    text = "# the strategy's config\n[trading]\nsymbols = [\"BTCUSDT\"]\n[risk]\nmax_drawdown = 0.15\n" \
           "kill_switch = false  # runbook 003 section 5\n"
    cfg.write_text(text)
    cfg.chmod(0o640)
    extra = dict(kill_switch_config_files=[dict(path=str(cfg), key="risk.kill_switch")],
                 kill_switch_config_backup_dir=str(tmp_path / "aside"))
    res = _engage(run, desk, **extra)
    assert res.ok, _msg(res)
    assert cfg.read_text() == text.replace("kill_switch = false", "kill_switch = true")
    assert oct(cfg.stat().st_mode & 0o777) == "0o640"
    assert record(res, "kill_switch")["config_engaged_in"] == [str(cfg)]
    (aside,) = (tmp_path / "aside").iterdir()
    assert (aside / "config.toml").read_text() == text
    status = _run(run, desk, **extra)
    assert status.ok and status.changed == 0
    assert "strategy configs: engaged in 1 of 1" in status.stdout
    refused = _run(run, desk, kill_switch_action="reset", kill_switch_confirm="INC-2", kill_switch_actor="alice",
                   kill_switch_reason="recovered", **extra)
    assert not refused.ok and "kill_switch = true" in cfg.read_text()  # the config follows the confirmed reset only
    reset = _run(run, desk, kill_switch_action="reset", kill_switch_confirm="INC-1", kill_switch_actor="alice",
                 kill_switch_reason="recovered", **extra)
    assert reset.ok, _msg(reset)
    assert _switch(desk)["enabled"] != "true" and cfg.read_text() == text


def test_a_strategy_config_that_cannot_be_set_is_a_gap_and_the_rest_is_engaged(desk, run, tmp_path):
    good = tmp_path / "a.yaml"
    good.write_text("strategy: a\nrisk:\n  kill_switch: false\n")
    extra = dict(kill_switch_config_files=[dict(path=str(tmp_path / "missing.toml"), key="risk.kill_switch"),
                                           dict(path=str(good), key="risk.kill_switch")],
                 kill_switch_config_backup_dir=str(tmp_path / "aside"))
    res = _engage(run, desk, **extra)
    assert not res.ok
    assert "KILL SWITCH CONFIG NOT ENGAGED EVERYWHERE" in _msg(res) and "missing.toml: missing" in _msg(res)
    assert good.read_text() == "strategy: a\nrisk:\n  kill_switch: true\n"
    assert _switch(desk)["enabled"] == "true"  # Redis engaged whatever the config said
    desk["strategy"].wait(timeout=10)  # and the strategy stopped
