"""A restart must not trigger an uncoordinated failover: a real replica and a real
Sentinel, and the default policy that stops and asks."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import SeededRedis
from tradeops_dr.sandbox import RedisServer, free_port, pid_alive, read_pid, wait_for

pytestmark = pytest.mark.integration
PLAYBOOK = "redis_failure.yml"


@pytest.fixture
def replica(redis_seeded, tmp_path):
    master = redis_seeded
    rep = RedisServer(tmp_path / "replica", free_port(avoid={master.port}), master.srv.password)
    rep.write_config(f"replicaof 127.0.0.1 {master.port}\nmasterauth {master.srv.password}\n")
    rep.start()

    def synced():
        with rep.client() as c:
            info = c.info("replication")
            return info.get("master_link_status") == "up" and c.xlen("orders.fills") > 0, info

    wait_for(synced, 20, "replica sync")
    yield rep
    if pid_alive(read_pid(rep.pidfile)):
        rep.kill()


def _replica_vars(master: SeededRedis, rep: RedisServer, **overrides):
    v = master.role_vars(
        redis_restart_port=rep.port,
        redis_restart_service=dict(name="redis-replica", manager="process", start_command=rep.start_command(),
                                   pidfile=str(rep.pidfile)),
        redis_restart_config_file=str(rep.conf),
        redis_restart_ledger_path="",  # a replica is refilled by its master, never by a replay
    )
    v.update(overrides)
    return v


def test_dead_replica_is_not_restarted_under_the_default_policy(redis_seeded, replica, run):
    replica.kill()
    res = run(PLAYBOOK, _replica_vars(redis_seeded, replica))
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert f"redis.conf makes the server a replica of 127.0.0.1 {redis_seeded.port}" in msg
    assert "redis_restart_failover_policy is 'stop'" in msg
    assert not pid_alive(read_pid(replica.pidfile))


def test_dead_replica_is_restarted_when_the_policy_says_proceed(redis_seeded, replica, run):
    replica.kill()
    res = run(PLAYBOOK, _replica_vars(redis_seeded, replica, redis_restart_failover_policy="proceed"))
    assert res.ok, res.failures
    with replica.client() as c:
        assert c.info("replication")["role"] == "slave"
        assert c.xlen("orders.fills") == redis_seeded.expected["streams"]["orders.fills"]


def test_forced_restart_of_a_live_replica_is_stopped(redis_seeded, replica, run):
    pid = read_pid(replica.pidfile)
    res = run(PLAYBOOK, _replica_vars(redis_seeded, replica, redis_restart_force_restart=True))
    assert not res.ok
    assert "the server is a replica of 127.0.0.1:%d (link up)" % redis_seeded.port in " ".join(
        f.msg for f in res.failures)
    assert read_pid(replica.pidfile) == pid and pid_alive(pid)


@pytest.fixture
def sentinel(redis_seeded, tmp_path):
    root = tmp_path / "sentinel"
    root.mkdir()
    port = free_port(avoid={redis_seeded.port})
    conf = root / "sentinel.conf"
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\ndir {root}\ndaemonize yes\npidfile {root}/sentinel.pid\n"
        f"logfile {root}/sentinel.log\n"
        f"sentinel monitor drmaster 127.0.0.1 {redis_seeded.port} 1\n"
        f"sentinel auth-pass drmaster {redis_seeded.srv.password}\n"
        # long enough that this Sentinel never starts a failover during a test
        "sentinel down-after-milliseconds drmaster 600000\n")
    subprocess.run(["redis-server", str(conf), "--sentinel"], check=True)

    def watching():
        with redis_seeded.client() as c:
            chans = c.pubsub_channels("__sentinel__:*")
        return bool(chans), chans

    wait_for(watching, 30, "Sentinel hello on the master")
    yield port
    pid = read_pid(root / "sentinel.pid")
    if pid_alive(pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
        time.sleep(0.1)


def test_forced_restart_of_a_master_watched_by_sentinel_is_stopped(redis_seeded, sentinel, run):
    pid = read_pid(redis_seeded.srv.pidfile)
    res = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_force_restart=True))
    assert not res.ok
    msg = " ".join(f.msg for f in res.failures)
    assert "Sentinel watches the server" in msg and "__sentinel__:hello" in msg
    assert read_pid(redis_seeded.srv.pidfile) == pid and pid_alive(pid)


def test_dead_master_known_to_a_configured_sentinel_is_not_restarted(redis_seeded, sentinel, run):
    redis_seeded.kill9()
    res = run(PLAYBOOK, redis_seeded.role_vars(redis_restart_sentinels=[f"127.0.0.1:{sentinel}"]))
    assert not res.ok
    assert f"Sentinel 127.0.0.1:{sentinel} monitors it as master drmaster" in " ".join(f.msg for f in res.failures)
    assert not redis_seeded.running()
