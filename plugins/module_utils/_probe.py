# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Readiness and waiting for the tradeops.dr modules: probes (Redis PING, pg_isready, HTTP
status, TCP connect, a command), wait_until (retried with exponential backoff until a deadline,
never a fixed sleep) and the pid of a pidfile. The service managers (_service) use them; a module
that only waits imports this, not the service layer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shlex
import socket
import subprocess
import time

try:
    from urllib.error import HTTPError, URLError
except ImportError:  # pragma: no cover - Python 2 is not supported
    pass

PROBE_TYPES = ('redis', 'postgres', 'http', 'tcp', 'command', 'none')


class ProbeError(Exception):
    """A probe that cannot be made (an unknown type, a setting it needs is missing)."""


def split_command(command):
    if command is None:
        return None
    if isinstance(command, (list, tuple)):
        return [str(c) for c in command]
    return shlex.split(str(command))


def probe_redis(port, host='127.0.0.1', username=None, password=None, probe_timeout=2.0, **_ignored):
    """PING over a real connection. Returns (ok, detail)."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        return False, 'the Python library redis is not installed on the target'
    # No retries inside redis-py: wait_until() owns the backoff and the deadline.
    client = redis.Redis(host=host, port=port, username=username or None, password=password or None,
                         socket_timeout=probe_timeout, socket_connect_timeout=probe_timeout,
                         retry=Retry(NoBackoff(), 0))
    try:
        if client.ping():
            return True, 'PONG'
        return False, 'PING did not return PONG'
    except redis.exceptions.AuthenticationError:
        return False, 'authentication failed (password not shown)'
    except redis.exceptions.BusyLoadingError as exc:
        return False, 'loading dataset: %s' % exc
    except (redis.exceptions.RedisError, OSError) as exc:
        return False, '%s: %s' % (type(exc).__name__, exc)
    finally:
        client.close()


def probe_postgres(port=None, host='127.0.0.1', username=None, database=None, probe_timeout=2.0, **_ignored):
    """pg_isready: rc 0 accepting, 1 rejecting (starting up), 2 no response, 3 bad call."""
    cmd = ['pg_isready', '-h', host, '-t', str(max(1, int(probe_timeout)))]
    if port:
        cmd += ['-p', str(port)]
    if username:
        cmd += ['-U', username]
    if database:
        cmd += ['-d', database]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=probe_timeout + 5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, 'pg_isready could not run: %s' % exc
    out = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0, out or 'pg_isready rc=%d' % proc.returncode


def probe_http(url, status_code=200, probe_timeout=2.0, **_ignored):
    # imported here, not above: ansible.module_utils.urls (http.client, ssl) is about half of
    # ansible.module_utils.basic's import time, and most modules that import this never probe HTTP
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    try:
        resp = open_url(url, method='GET', timeout=probe_timeout, follow_redirects='safe')
        code = resp.getcode()
        resp.close()
    except HTTPError as exc:
        code = exc.code
    except (URLError, OSError) as exc:
        return False, 'GET %s: %s' % (url, getattr(exc, 'reason', exc))
    return code == status_code, 'GET %s: HTTP %s (want %s)' % (url, code, status_code)


def probe_tcp(port, host='127.0.0.1', probe_timeout=2.0, **_ignored):
    try:
        sock = socket.create_connection((host, port), timeout=probe_timeout)
        sock.close()
        return True, 'connected to %s:%s' % (host, port)
    except OSError as exc:
        return False, 'connect %s:%s: %s' % (host, port, exc)


def probe_command(command, probe_timeout=2.0, **_ignored):
    argv = split_command(command)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=probe_timeout + 5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, '%s: %s' % (' '.join(argv), exc)
    return proc.returncode == 0, 'rc=%d %s' % (proc.returncode, (proc.stdout + proc.stderr).strip()[-300:])


def make_probe(spec):
    """Return (callable() -> (ok, detail), description) for a probe dict, or (None, 'none')."""
    spec = dict(spec or {})
    kind = spec.pop('type', 'none') or 'none'
    spec = dict((k, v) for k, v in spec.items() if v is not None)
    spec.setdefault('host', '127.0.0.1')
    if kind == 'none':
        return None, 'none'
    if kind == 'redis':
        _require(spec, kind, 'port')
        return (lambda: probe_redis(**spec)), 'redis PING %s:%s' % (spec.get('host'), spec['port'])
    if kind == 'postgres':
        return (lambda: probe_postgres(**spec)), 'pg_isready -h %s -p %s' % (spec.get('host'), spec.get('port'))
    if kind == 'http':
        _require(spec, kind, 'url')
        return (lambda: probe_http(**spec)), 'HTTP GET %s' % spec['url']
    if kind == 'tcp':
        _require(spec, kind, 'port')
        return (lambda: probe_tcp(**spec)), 'TCP connect %s:%s' % (spec.get('host'), spec['port'])
    if kind == 'command':
        _require(spec, kind, 'command')
        return (lambda: probe_command(**spec)), 'command %s' % ' '.join(split_command(spec['command']))
    raise ProbeError('unknown probe type %r; use one of %s' % (kind, ', '.join(PROBE_TYPES)))


def _require(spec, kind, key):
    if spec.get(key) in (None, ''):
        raise ProbeError('probe type %s needs %s' % (kind, key))


def wait_until(check, timeout, first_delay=0.05, max_delay=0.25, factor=2.0, clock=time.monotonic,
               sleep=time.sleep):
    """Call check() -> (ok, detail) until ok or the deadline; exponential backoff between
    attempts, capped at max_delay (a readiness check is one connection: a cap of 2 s found a
    server that was ready after 1.6 s at 3.55 s). Returns dict(ok, attempts, elapsed, last_detail)."""
    start = clock()
    deadline = start + timeout
    delay = first_delay
    attempts = 0
    while True:
        attempts += 1
        ok, detail = check()
        now = clock()
        if ok:
            return dict(ok=True, attempts=attempts, elapsed=round(now - start, 3), last_detail=detail)
        if now >= deadline:
            return dict(ok=False, attempts=attempts, elapsed=round(now - start, 3), last_detail=detail)
        sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * factor, max_delay)


def pidfile_pid(path):
    """The pid on a pidfile's first line (PostgreSQL's postmaster.pid carries more lines), or None."""
    try:
        with open(path) as handle:
            return int(handle.readline().strip() or 0) or None
    except (IOError, OSError, ValueError):
        return None


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (IOError, OSError, IndexError):
        return True
