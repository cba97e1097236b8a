"""testinfra: what the container looks like after molecule converged redis_restart."""

import json


def _vars(host):
    return host.ansible.get_variables()


def _cli(host, *args):
    v = _vars(host)
    cmd = "REDISCLI_AUTH=%s redis-cli -p %d %s" % (
        v["redis_restart_password"], v["redis_restart_port"], " ".join(args))
    return host.run(cmd)


def test_redis_runs_from_the_pidfile(host):
    v = _vars(host)
    pidfile = host.file(v["redis_restart_service"]["pidfile"])
    assert pidfile.exists
    pid = int(pidfile.content_string.strip())
    assert host.run("kill -0 %d" % pid).rc == 0
    assert "redis-server" in host.file("/proc/%d/cmdline" % pid).content_string


def test_redis_answers_ping(host):
    res = _cli(host, "PING")
    assert res.rc == 0 and res.stdout.strip() == "PONG"


def test_every_stream_is_back_at_its_length(host):
    for name, length in _vars(host)["redis_restart_streams"].items():
        res = _cli(host, "XLEN", "'%s'" % name)
        assert res.rc == 0 and int(res.stdout.strip()) == length, name


def test_critical_keys_exist(host):
    for key in _vars(host)["redis_restart_keys"]:
        assert _cli(host, "EXISTS", "'%s'" % key).stdout.strip() == "1", key
    assert _cli(host, "HGET", "policy:kill_switch", "enabled").stdout.strip() == "false"


def test_aof_is_on_and_valid(host):
    assert _cli(host, "CONFIG", "GET", "appendonly").stdout.split() == ["appendonly", "yes"]
    res = host.run("redis-check-aof /var/lib/redis-dr/appendonlydir/appendonly.aof.manifest")
    assert res.rc == 0 and "All AOF files and manifest are valid" in res.stdout


def test_no_safety_copy_was_needed(host):
    # the AOF was intact after the crash: nothing was copied aside or cut
    assert not host.file(_vars(host)["redis_restart_aof_backup_dir"]).exists


def test_the_role_started_a_new_redis_after_the_crash(host):
    # prepare killed this pid; the role (not prepare) brought Redis back under another one
    crashed = int(host.file("/var/lib/molecule-crashed.pid").content_string.strip())
    pid = int(host.file(_vars(host)["redis_restart_service"]["pidfile"]).content_string.strip())
    assert pid != crashed
    # the crashed one is gone: no process, or a zombie (PID 1 of the container, sleep, reaps nothing)
    stat = host.run("cat /proc/%d/stat" % crashed)
    assert stat.rc != 0 or stat.stdout.rsplit(")", 1)[1].split()[0] == "Z"
    assert "redis-server" in host.file("/proc/%d/cmdline" % pid).content_string


def test_the_password_is_not_in_the_log(host):
    log = host.file("/var/log/redis-dr.log").content_string
    assert json.dumps(_vars(host)["redis_restart_password"]).strip('"') not in log


def test_the_state_was_preserved_before_the_restart(host):
    # runbook 004, "preserve state": the AOF folder as the crash left it and the ledger, kept with their checksums
    root = "/var/backups/tradeops-dr/redis-snapshots"
    found = host.run("ls -1 %s" % root)
    assert found.rc == 0 and found.stdout.split(), found.stderr
    snap = "%s/%s" % (root, sorted(found.stdout.split())[-1])
    manifest = json.loads(host.file(snap + "/MANIFEST.json").content_string)
    assert any(name.startswith("appendonlydir/") for name in manifest["files"]), manifest["files"]
    assert "ledger/ledger.db" in manifest["files"]
    assert host.file(snap + "/redis/ledger/ledger.db").size == manifest["files"]["ledger/ledger.db"]["size"]
