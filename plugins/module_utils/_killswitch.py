# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""The kill switch in Redis (runbooks 003 section 5, 004 sections 3.1 and 3.5).

    policy:kill_switch          hash: enabled (true|false), state (active|halted|reducing), reason,
                                actor, incident, engaged_at (ISO 8601), engaged_at_ms, and after a
                                reset reset_by, approved_by, reset_reason, reset_at
    policy:kill_switch:events   stream: one entry per engage, re-engage and reset

Engaging is one Lua script, so it is atomic: a switch that is already engaged keeps its
first reason, actor and time (only a stricter state - reducing to halted - is applied).
This file imports nothing from Ansible so that the command-line fast path can use it
directly, without waiting for ansible-playbook to start."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

STATES = ('halted', 'reducing')
STRICTNESS = {'active': 0, 'reducing': 1, 'halted': 2}

ENGAGE_LUA = """
local key, events = KEYS[1], KEYS[2]
local state, reason, actor, incident, iso, ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local rank = {active = 0, reducing = 1, halted = 2}
if redis.call('HGET', key, 'enabled') == 'true' then
  local current = redis.call('HGET', key, 'state') or 'halted'
  if (rank[state] or 2) > (rank[current] or 0) then
    redis.call('HSET', key, 'state', state)
    redis.call('XADD', events, '*', 'event', 'escalate', 'state', state, 'actor', actor, 'reason', reason,
               'incident', incident, 'at', iso)
    return {'escalated', current}
  end
  return {'already', current}
end
redis.call('HSET', key, 'enabled', 'true', 'state', state, 'reason', reason, 'actor', actor,
           'incident', incident, 'engaged_at', iso, 'engaged_at_ms', ms)
redis.call('HDEL', key, 'reset_by', 'approved_by', 'reset_reason', 'reset_at')
redis.call('XADD', events, '*', 'event', 'engage', 'state', state, 'actor', actor, 'reason', reason,
           'incident', incident, 'at', iso)
return {'engaged', state}
"""


RESET_LUA = """
local key, events = KEYS[1], KEYS[2]
local confirm, actor, approver, reason, iso, forced = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('HGET', key, 'enabled') ~= 'true' then
  return {'not engaged', ''}
end
local incident = redis.call('HGET', key, 'incident')
local expected = 'RESET'
if incident and incident ~= '' then
  expected = incident
end
if confirm ~= expected then
  return {'changed', expected}
end
redis.call('HSET', key, 'enabled', 'false', 'state', 'active', 'reset_by', actor, 'approved_by', approver,
           'reset_reason', reason, 'reset_at', iso, 'reset_forced', forced)
redis.call('XADD', events, '*', 'event', 'reset', 'actor', actor, 'approved_by', approver, 'reason', reason,
           'incident', expected, 'forced', forced, 'at', iso)
return {'reset', expected}
"""


def same_person(a, b):
    """Two names of one person: compared without case and surrounding blanks (Alice, alice, ' ALICE')."""
    return (a or '').strip().lower() == (b or '').strip().lower()


class KillSwitchError(Exception):
    """A kill-switch action was refused or failed; the message says why."""


def now():
    ms = int(time.time() * 1000)
    return ms, time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ms / 1000.0)) + '.%03dZ' % (ms % 1000)


def engage(client, key, events, state, reason, actor, incident):
    """Set the flag atomically. Returns (outcome, previous_state): engaged, already, escalated."""
    if state not in STATES:
        raise KillSwitchError('state must be one of %s, got %r' % (', '.join(STATES), state))
    if not reason or not actor:
        raise KillSwitchError('engaging the kill switch needs a reason and an actor')
    ms, iso = now()
    outcome, previous = client.eval(ENGAGE_LUA, 2, key, events, state, reason, actor, incident or '', iso, str(ms))
    return _s(outcome), _s(previous)


def status(client, key):
    data = dict((_s(k), _s(v)) for k, v in client.hgetall(key).items())
    data['enabled'] = data.get('enabled') == 'true'
    data.setdefault('state', 'halted' if data['enabled'] else 'active')
    return data


def reset(client, key, events, actor, reason, confirm, approver=None, require_second_approver=False,
          drawdown=None, threshold=None, force=False):
    """Lift the switch back to active, or raise KillSwitchError saying why not."""
    current = status(client, key)
    if not current['enabled']:
        return False, current
    expected = current.get('incident') or 'RESET'
    if not confirm or confirm != expected:
        # the expected id is not printed: a refusal must not hand out what it asks for
        raise KillSwitchError('reset refused: confirm does not repeat the incident id of the engagement%s' % (
            '' if current.get('incident') else ' (none was recorded: confirm with RESET)'))
    if not actor or not reason:
        raise KillSwitchError('reset refused: who resets it (actor) and why (reason) are recorded, both are required')
    if require_second_approver:
        if not approver:
            raise KillSwitchError('reset refused: a second approver is required (two-person rule)')
        if same_person(approver, actor):
            raise KillSwitchError('reset refused: the second approver must be another person than %s' % actor)
    if drawdown is not None and threshold is not None and drawdown >= threshold and not force:
        raise KillSwitchError('reset refused: drawdown %.4g is still at or beyond the threshold %.4g; reset with force '
                              'only after the risk review' % (drawdown, threshold))
    _ms, iso = now()
    # the check above and the write are one Lua script: an engagement that lands in between (another
    # incident) is never lifted by a reset confirmed for the previous one
    outcome, held = client.eval(RESET_LUA, 2, key, events, confirm, actor, approver or '', reason, iso,
                                'true' if force else 'false')
    if _s(outcome) == 'changed':
        raise KillSwitchError('reset refused: the switch was engaged again (incident %s) while this reset was being '
                              'checked; nothing was changed - review the new engagement' % _s(held))
    if _s(outcome) == 'not engaged':
        return False, status(client, key)
    return True, status(client, key)


def read_flag_file(path):
    """The local flag as written (a dict), or None when there is none or it is not one (never through a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        try:
            data = json.load(handle)
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def write_flag_file(path, reason, actor, incident, state, error):
    """Fail closed: when Redis cannot be reached, leave a local flag the engines can read. A flag already
    engaged keeps its first engagement (reason, actor, incident, time - as Redis's engage does): only a
    stricter state, the latest Redis error and the last engagement asked are added."""
    _ms, iso = now()
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    first = read_flag_file(path)
    if first and first.get('enabled') is True:
        kept = first.get('state') if STRICTNESS.get(first.get('state'), -1) >= STRICTNESS.get(state, 0) else state
        data = dict(first, state=kept, redis_error=error,
                    last_engage=dict(at=iso, reason=reason, actor=actor, incident=incident))
    else:
        data = dict(enabled=True, state=state, reason=reason, actor=actor, incident=incident, engaged_at=iso,
                    redis_error=error)
    _manifest.write_json_atomic(path, data, 0o644)
    return path


def ack_status(client, engines, pattern, since_ms):
    """Engines acknowledge by writing a hash (pattern with {name}) with at_ms >= since_ms."""
    acked, silent = {}, []
    for name in engines:
        raw = client.hgetall(pattern.replace('{name}', name))
        data = dict((_s(k), _s(v)) for k, v in raw.items())
        try:
            at = int(data.get('at_ms', 0))
        except ValueError:
            at = 0
        if at >= since_ms:
            acked[name] = data
        else:
            silent.append(name)
    return acked, silent


def exposure(client, pattern, field):
    """Sum of absolute position quantities over keys matching pattern (hashes, field)."""
    total, nonzero = 0.0, {}
    for key in client.scan_iter(match=pattern):
        value = client.hget(key, field)
        try:
            qty = float(_s(value) or 0)
        except ValueError:
            raise KillSwitchError('position %s has a non-numeric %s: %r' % (_s(key), field, _s(value)))
        if qty:
            nonzero[_s(key)] = qty
        total += abs(qty)
    return total, nonzero


class RespError(Exception):
    """Redis answered with an error (-ERR ..., -WRONGPASS ...)."""


class RespClient(object):
    """Just enough of the Redis protocol (RESP2) for the fast path: AUTH and EVAL on one
    socket. Written here on purpose: the fast path must set the flag within 50 ms of the
    command's start, and importing redis-py alone takes about 50 ms (it imports its asyncio
    client). The module and the roles use redis-py."""

    def __init__(self, host, port, username=None, password=None, timeout=3.0):
        import socket

        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b''
        if password:
            self.call(*(['AUTH', username, password] if username else ['AUTH', password]))

    def close(self):
        self.sock.close()

    def call(self, *args):
        out = [b'*%d\r\n' % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b'$%d\r\n%s\r\n' % (len(data), data))
        self.sock.sendall(b''.join(out))
        return self._read()

    def eval(self, script, numkeys, *args):
        return self.call('EVAL', script, numkeys, *args)

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError('Redis closed the connection')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'-':
            raise RespError(rest.decode('utf-8', 'replace'))
        if kind in (b'+', b':'):
            return int(rest) if kind == b':' else rest.decode()
        if kind == b'$':
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError('Redis closed the connection')
                self.buf += chunk
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return data
        if kind == b'*':
            return [self._read() for _index in range(int(rest))] if int(rest) >= 0 else None
        raise RespError('unexpected answer from Redis: %r' % line[:80])


def _s(value):
    return value.decode() if isinstance(value, bytes) else value
