"""testinfra: the container after molecule converged release_rollback (v1.1.0 -> v1.0.0)."""

import json


def _git(host, *args):
    res = host.run("git -C /srv/release " + " ".join(args))
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def _bad(host):
    commit, pid = host.file("/srv/bad-release.txt").content_string.split()
    return commit, int(pid)


def test_the_tree_is_at_v1_0_0_and_clean(host):
    assert _git(host, "rev-parse", "HEAD") == _git(host, "rev-parse", "v1.0.0^{commit}")
    assert host.file("/srv/release/VERSION").content_string.strip() == "1.0.0"
    assert _git(host, "status", "--porcelain") == ""


def test_the_replaced_release_is_kept_under_a_tag(host):
    tags = _git(host, "tag", "--list", "'tradeops-dr/pre-rollback/*'").split()
    assert len(tags) == 1, tags  # the idempotence run kept nothing more
    assert _git(host, "rev-parse", tags[0] + "^{commit}") == _bad(host)[0]


def test_the_application_was_restarted_on_the_old_release(host, get_json):
    assert get_json("http://127.0.0.1:3001/health")["version"] == "1.0.0"
    assert int(host.file("/run/strategy.pid").content_string) != _bad(host)[1]


def test_the_kill_switch_was_engaged_first_and_left_engaged(host):
    res = host.run("REDISCLI_AUTH=molecule-only-secret redis-cli -p 6379 --no-auth-warning --json HGETALL policy:kill_switch")
    switch = json.loads(res.stdout)
    assert switch["enabled"] == "true" and switch["incident"] == "INC-RELEASE-1"
    assert "v1.1.0 sends duplicate orders" in switch["reason"]
    # engaged before the application restarted on the old release (its start time from /proc)
    res = host.run("python3 -c \"import os; pid = open('/run/strategy.pid').read().strip(); "
                   "ticks = int(open('/proc/%s/stat' % pid).read().rsplit(')', 1)[1].split()[19]); "
                   "btime = int([x for x in open('/proc/stat') if x.startswith('btime')][0].split()[1]); "
                   "print(int((btime + ticks / os.sysconf('SC_CLK_TCK')) * 1000))\"")
    assert res.rc == 0, res.stderr
    assert int(switch["engaged_at_ms"]) <= int(res.stdout) + 20  # /proc's start time has 10 ms steps
