"""module_utils/_service.py: backoff, probes against real sockets and servers, the
process manager with real processes, and clear errors."""

from __future__ import annotations

import gc
import http.server
import os
import socket
import sys
import threading
import time

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _probe
from ansible_collections.tradeops.dr.plugins.module_utils import _service as svc
from conftest import loaded_after


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


def test_wait_until_backs_off_exponentially_and_caps_the_delay():
    clock = FakeClock()
    calls = []

    def check():
        calls.append(clock.t)
        return len(calls) == 8, f"attempt {len(calls)}"

    res = _probe.wait_until(check, timeout=60, first_delay=0.1, max_delay=1.0, clock=clock, sleep=clock.sleep)
    assert res["ok"] and res["attempts"] == 8 and res["last_detail"] == "attempt 8"
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_wait_until_finds_a_ready_server_within_a_quarter_second_by_default():
    """The default cap was 2 s: a server ready after 1.6 s was found at 3.55 s, every start (issue 27)."""
    clock = FakeClock()
    res = _probe.wait_until(lambda: (clock.t >= 1.6, "refused"), timeout=60, clock=clock, sleep=clock.sleep)
    assert res["ok"] and 1.6 <= res["elapsed"] <= 1.85 and max(clock.sleeps) == pytest.approx(0.25)


def test_wait_until_stops_at_the_deadline_with_the_last_error():
    clock = FakeClock()
    res = _probe.wait_until(lambda: (False, "refused"), timeout=3, first_delay=1, max_delay=1, clock=clock,
                            sleep=clock.sleep)
    assert not res["ok"] and res["last_detail"] == "refused"
    assert res["elapsed"] == pytest.approx(3.0) and res["attempts"] == 4


@pytest.mark.parametrize("spec,needle", [
    (dict(type="redis"), "probe type redis needs port"),
    (dict(type="http"), "probe type http needs url"),
    (dict(type="tcp"), "probe type tcp needs port"),
    (dict(type="command"), "probe type command needs command"),
    (dict(type="ldap"), "unknown probe type 'ldap'"),
])
def test_incomplete_probes_are_refused(spec, needle):
    with pytest.raises(svc.ServiceError, match=needle):
        _probe.make_probe(spec)


def test_tcp_probe_against_a_real_listener_and_a_closed_port():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    probe, desc = _probe.make_probe(dict(type="tcp", port=port))
    assert probe()[0] is True and desc == f"TCP connect 127.0.0.1:{port}"
    srv.close()
    ok, detail = probe()
    assert ok is False and "refused" in detail.lower()


def test_http_probe_wants_the_configured_status():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *a):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_port}"
        assert _probe.probe_http(base + "/health") == (True, f"GET {base}/health: HTTP 200 (want 200)")
        ok, detail = _probe.probe_http(base + "/down")
        assert not ok and "HTTP 503" in detail
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_redis_probe_against_a_real_server(redis_seeded):
    ok, detail = _probe.probe_redis(redis_seeded.port, host="127.0.0.1", password=redis_seeded.srv.password)
    assert ok and detail == "PONG"
    ok, detail = _probe.probe_redis(redis_seeded.port, host="127.0.0.1", password="wrong")
    assert not ok and detail == "authentication failed (password not shown)"
    redis_seeded.kill9()
    ok, detail = _probe.probe_redis(redis_seeded.port, host="127.0.0.1", password=redis_seeded.srv.password)
    assert not ok and "ConnectionError" in detail


def _run(argv, data=None):
    import subprocess

    p = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def _params(tmp_path, **kw):
    p = dict(name="sleeper", manager="process", pidfile=str(tmp_path / "s.pid"), stop_timeout=5,
             ready_timeout=5, probe={}, foreground=True)
    p.update(kw)
    return p


def test_process_manager_starts_a_foreground_command_and_records_its_pid(tmp_path):
    params = _params(tmp_path, start_command=[sys.executable, "-c", "import time; time.sleep(60)"])
    res = svc.ensure_state(params, "started", _run)
    try:
        assert res["actions"] == ["start"] and res["running"] is True
        pid = int((tmp_path / "s.pid").read_text())
        assert pid == res["pid"] and svc.ProcessManager._alive(pid)
        # started again: nothing to do
        again = svc.ensure_state(params, "started", _run)
        assert again["actions"] == [] and again["changed"] is False
    finally:
        stopped = svc.ensure_state(params, "stopped", _run)
    assert stopped["actions"] == ["stop"] and stopped["running"] is False


def test_process_manager_reports_a_stale_pidfile_and_check_mode_does_not_start(tmp_path):
    (tmp_path / "s.pid").write_text("999999\n")
    params = _params(tmp_path, start_command=[sys.executable, "-c", "import time; time.sleep(60)"])
    res = svc.ensure_state(params, "started", _run, check_mode=True)
    assert res["actions"] == ["start"] and res["running"] is False
    assert "stale pidfile" in res["status_before"]
    assert (tmp_path / "s.pid").read_text() == "999999\n"


def test_process_manager_failing_start_command_names_the_command(tmp_path):
    params = _params(tmp_path, start_command=[sys.executable, "-c", "raise SystemExit(3)"],
                     log_file=str(tmp_path / "start.log"), foreground=False)
    with pytest.raises(svc.ServiceError, match=r"exited with rc=3; see .*start\.log"):
        svc.ensure_state(params, "started", _run)
    params["foreground"] = True
    with pytest.raises(svc.ServiceError, match=r"exited at once with rc=3"):
        svc.ensure_state(params, "started", _run)


def test_a_daemon_start_command_that_never_exits_is_stopped_and_explained(tmp_path):
    params = _params(tmp_path, start_command=[sys.executable, "-c", "import time; time.sleep(60)"],
                     foreground=False, ready_timeout=0.5)
    with pytest.raises(svc.ServiceError, match="did not exit within 0.5s; .* needs foreground: true"):
        svc.ensure_state(params, "started", _run)
    assert not (tmp_path / "s.pid").exists()


def test_probe_timeout_says_what_was_tried_and_the_last_error(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    params = _params(tmp_path, start_command=[sys.executable, "-c", "import time; time.sleep(60)"],
                     probe=dict(type="tcp", host="127.0.0.1", port=port), ready_timeout=0.5)
    try:
        with pytest.raises(svc.ServiceError) as exc:
            svc.ensure_state(params, "started", _run)
        msg = str(exc.value)
        assert f"readiness probe TCP connect 127.0.0.1:{port} did not pass within 0.5s" in msg
        assert "attempts, last error: connect" in msg and "refused" in msg.lower()
    finally:
        svc.ensure_state(params, "stopped", _run)


def test_process_manager_escalates_to_sigkill_and_says_so(tmp_path):
    ready = tmp_path / "handler-installed"
    code = ("import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)")
    params = _params(tmp_path, start_command=[sys.executable, "-c", code, str(ready)], stop_timeout=0.5)
    svc.ensure_state(params, "started", _run)
    pid = int((tmp_path / "s.pid").read_text())
    # the child says when its SIGTERM handler is in place (no guessed sleep: a loaded machine may take longer)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the child never installed its SIGTERM handler"
        time.sleep(0.01)
    with pytest.raises(svc.ServiceError, match="ignored SIGTERM for 0.5s and was killed"):
        svc.ensure_state(params, "stopped", _run)
    assert not svc.ProcessManager._alive(pid)


def test_unknown_manager_and_missing_pidfile_are_clear():
    with pytest.raises(svc.ServiceError, match="unknown service manager 'runit' for service x"):
        svc.get_manager(dict(name="x", manager="runit"), _run)
    with pytest.raises(svc.ServiceError, match="manager process needs pidfile"):
        svc.get_manager(dict(name="x", manager="process"), _run)


def test_systemd_manager_reads_systemctl_show():
    """systemd does not run on these machines: this stand-in answers as `systemctl show`
    does, to test how the manager reads it and what it runs."""
    calls = []
    state = {"active": "ActiveState=failed\nSubState=failed\nMainPID=0\n"}

    def systemctl(argv, data=None):
        calls.append(argv)
        if argv[1] == "show":
            return 0, state["active"], ""
        state["active"] = "ActiveState=active\nSubState=running\nMainPID=4242\n"
        return 0, "", ""

    res = svc.ensure_state(dict(name="redis-server", manager="systemd"), "started", systemctl)
    assert res["running_before"] is False and res["status_before"] == "redis-server: failed/failed"
    assert ["systemctl", "start", "redis-server"] in calls
    assert res["running"] is True and res["pid"] == 4242


def test_systemd_unit_that_fails_right_after_start_is_reported():
    def systemctl(argv, data=None):
        if argv[1] == "show":
            return 0, "ActiveState=failed\nSubState=failed\nMainPID=0\n", ""
        return 0, "", ""

    with pytest.raises(svc.ServiceError, match="service redis is not running after start: redis: failed/failed"):
        svc.ensure_state(dict(name="redis", manager="systemd"), "started", systemctl)


def test_systemd_failure_is_reported_with_the_command():
    def systemctl(argv, data=None):
        if argv[1] == "show":
            return 0, "ActiveState=inactive\nSubState=dead\nMainPID=0\n", ""
        return 5, "", "Failed to start redis.service: Unit redis.service not found."

    with pytest.raises(svc.ServiceError, match="systemctl start failed \\(rc=5\\).*Unit redis.service not found"):
        svc.ensure_state(dict(name="redis", manager="systemd"), "started", systemctl)


# the Docker SDK leaves its socket to the garbage collector when the engine is absent
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_docker_manager_without_an_engine_says_so():
    with pytest.raises(svc.ServiceError, match="cannot reach the Docker engine at unix:///nonexistent.sock"):
        svc.get_manager(dict(name="redis", manager="docker", docker_host="unix:///nonexistent.sock"), _run)
    gc.collect()  # collect the SDK's socket here, under this test's warning filter


def test_no_probe_means_only_running_is_checked(tmp_path):
    assert _probe.make_probe({}) == (None, "none")
    assert _probe.make_probe(dict(type="none")) == (None, "none")


def test_daemon_that_writes_its_pidfile_late_is_waited_for(tmp_path):
    """redis-server with daemonize yes: the command exits 0 before the daemon rewrites the
    pidfile, which still names the pid of the process that crashed."""
    pidfile = tmp_path / "s.pid"
    pidfile.write_text("999999\n")  # stale: that process is gone
    daemon = (
        "import os, sys, time\n"
        "if os.fork():\n    sys.exit(0)\n"
        "os.setsid()\ntime.sleep(0.6)\n"
        f"open({str(pidfile)!r}, 'w').write('%d\\n' % os.getpid())\n"
        "time.sleep(60)\n")
    params = _params(tmp_path, start_command=[sys.executable, "-c", daemon], foreground=False, ready_timeout=10)
    res = svc.ensure_state(params, "started", _run)
    try:
        assert res["running"] is True and res["pid"] != 999999
        assert int(pidfile.read_text()) == res["pid"]
    finally:
        svc.ensure_state(params, "stopped", _run)


def test_daemon_that_never_writes_its_pidfile_is_reported(tmp_path):
    params = _params(tmp_path, start_command=[sys.executable, "-c", "pass"], foreground=False, ready_timeout=0.5)
    with pytest.raises(svc.ServiceError, match="exited 0 but no live pid appeared in .*s.pid within 0.5s"):
        svc.ensure_state(params, "started", _run)


def test_kubernetes_manager_restarts_with_rollout():
    """kubectl and a cluster are not available here: this stand-in answers as kubectl does,
    to test what the manager runs and how it reads the answers."""
    calls = []

    def kubectl(argv, data=None):
        calls.append(argv)
        if argv[3] == "get":
            return 0, "2/2", ""
        return 0, "", ""

    res = svc.ensure_state(dict(name="ws-gateway", manager="kubernetes", namespace="md", ready_timeout=90),
                           "restarted", kubectl)
    assert res["running"] is True and res["status"] == "deployment/ws-gateway: 2 of 2 replicas ready"
    assert ["kubectl", "-n", "md", "rollout", "restart", "deployment/ws-gateway"] in calls
    assert ["kubectl", "-n", "md", "rollout", "status", "deployment/ws-gateway", "--timeout=90s"] in calls


def test_kubernetes_rollout_failure_is_reported():
    def kubectl(argv, data=None):
        if argv[1] == "get":
            return 0, "0/2", ""
        if argv[1:3] == ["rollout", "status"]:
            return 1, "", "error: deployment \"ws-gateway\" exceeded its progress deadline"
        return 0, "", ""

    with pytest.raises(svc.ServiceError, match="kubectl rollout status failed .*exceeded its progress deadline"):
        svc.ensure_state(dict(name="ws-gateway", manager="kubernetes"), "restarted", kubectl)


def test_process_manager_reads_the_pid_from_the_first_line_of_a_postgres_style_pidfile(tmp_path):
    # postmaster.pid: pid, data directory, start time, port, ... one per line
    (tmp_path / "s.pid").write_text(f"{os.getpid()}\n/var/lib/postgresql/15/main\n1795000000\n5432\n")
    st = svc.ensure_state(_params(tmp_path, start_command=["true"]), "status", _run)
    assert st["running"] is True and st["pid"] == os.getpid()


def test_modules_that_never_probe_http_do_not_load_the_http_client():
    """Every run of a module that imports _probe or _service (service_control, kill_switch, the PostgreSQL and Redis
    modules...) paid for ansible.module_utils.urls (http.client, cryptography): ~50 ms of CPU per module run, more
    inside AnsiballZ, which compiles it from the zip each time. probe_http imports it when it runs (issue 24); its
    test above still probes a real HTTP server."""
    loaded = loaded_after(["ansible_collections.tradeops.dr.plugins.modules.service_control",
                           "ansible_collections.tradeops.dr.plugins.modules.kill_switch",
                           "ansible_collections.tradeops.dr.plugins.module_utils._timescaledb"],
                          ["ansible.module_utils.urls", "http.client"])
    assert loaded == {"ansible.module_utils.urls": False, "http.client": False}, loaded
