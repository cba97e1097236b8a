# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""One recovery at a time: a lock with a lease, kept on the managed host itself.

Every control node (a person's laptop, a cron job, AWX) reaches the managed hosts, so the lock
lives there: one JSON file per host in a lock folder, written while an flock on a guard file is
held (two runs on the same host cannot both take it). The record names the holder - user,
control node, playbook, incident, since when - and the lease's end. A live run renews the lease
between its stages; a run that died stops renewing and its lease expires. When the holder ran
on this very machine (a local connection), the ansible-playbook process it recorded is checked
too: one killed with `kill -9` is known to be gone at once, without waiting for the lease.

Every event (taken, taken over from a dead or expired holder, released, broken) is appended to
history.jsonl beside the locks. Imports nothing from Ansible: the CLI reads it directly."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import hmac
import json
import os
import socket
import time
from contextlib import contextmanager

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest
from ansible_collections.tradeops.dr.plugins.module_utils._guard import proc_stat

DEFAULT_LEASE = 900


class LockError(Exception):
    pass


def node_id():
    """This machine: host name and boot id (a pid means nothing across a reboot)."""
    try:
        with open('/proc/sys/kernel/random/boot_id') as handle:
            boot = handle.read().strip()
    except (IOError, OSError):
        boot = ''
    return '%s/%s' % (socket.gethostname(), boot)


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except (IOError, OSError):
        return ''


def controller_process(chain):
    """The outermost ansible-playbook among a module's ancestors (pid, start time), or None.

    `chain` is `_guard.ControllerWatch().chain`. Found only when the module runs on the control
    node itself (a local connection); over SSH the lease alone tells a dead run."""
    found = None
    for pid, started in chain:
        if 'ansible-playbook' in _cmdline(pid):
            found = (pid, started)
    return found


def lock_file(lock_dir, name):
    if not name or '/' in name or '\0' in name or name.startswith('.'):
        raise LockError('lock name %r must be a plain file name' % name)
    return os.path.join(lock_dir, name + '.lock.json')


def read(lock_dir, name):
    path = lock_file(lock_dir, name)
    if not os.path.exists(path):
        return None
    data, why = _manifest.read_json(path)
    if data is None or not isinstance(data, dict):
        # an unreadable lock is not a free lock: someone must look at it
        raise LockError('the lock file %s %s: look at it, then `tradeops-dr lock break`' % (path, why or 'is not a lock'))
    return data


def alive(record, now=None):
    """(alive, why): a holder is dead when its lease ran out, or when it ran on this machine and
    its ansible-playbook process is gone."""
    now = time.time() if now is None else now
    if record.get('expires', 0) <= now:
        return False, 'its lease ran out at %s' % _manifest.utc_iso(record.get('expires', 0))
    pid = record.get('controller_pid')
    if pid and record.get('node') == node_id():
        st = proc_stat(int(pid))
        if st is None or st[1] != record.get('controller_started'):
            return False, 'its ansible-playbook (pid %s) on this machine is gone' % pid
    return True, 'lease until %s' % _manifest.utc_iso(record['expires'])


def token_hash(token):
    """What the lock keeps of a run's token: its sha256. The token itself releases the lock, so it is never
    written to the lock file, its history or a result (whoever reads them could free a live lock)."""
    return hashlib.sha256(token.encode('utf-8')).hexdigest()


def holds(record, token):
    """Whether `token` is the one that took the lock recorded in `record` (compared in constant time)."""
    if not record or not token:
        return False
    kept = record.get('token_sha256')
    if kept:
        return hmac.compare_digest(str(kept), token_hash(token))
    return bool(record.get('token')) and hmac.compare_digest(str(record['token']), token)  # a lock of 0.1


def public(record):
    """The record without anything that could release it (what status, history and results show)."""
    return dict((k, v) for k, v in (record or {}).items() if k not in ('token', 'token_sha256'))


def describe(record):
    return '%s@%s running %s (incident %s) since %s, %s' % (
        record.get('user', '?'), record.get('control_node', '?'), record.get('playbook', '?'),
        record.get('incident') or '-', record.get('since', '?'),
        'lease until %s' % _manifest.utc_iso(record.get('expires', 0)))


def _history(lock_dir, event):
    event = dict(event, at=_manifest.utc_iso())
    path = os.path.join(lock_dir, 'history.jsonl')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, 'a') as handle:
        handle.write(json.dumps(event, sort_keys=True) + '\n')


def history(lock_dir, name=None, last=20):
    path = os.path.join(lock_dir, 'history.jsonl')
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    # events written before tokens were hashed carried the token: never handed out
    return [public(e) for e in events if name is None or e.get('name') == name][-last:]


@contextmanager
def _guard(lock_dir, name):
    # two hosts of one run may make it at once (local connections): another's folder is as good as ours
    os.makedirs(lock_dir, 0o750, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, '.%s.guard' % name), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(lock_dir, name, record):
    _manifest.write_json_atomic(lock_file(lock_dir, name), record, mode=0o640)


def acquire(lock_dir, name, token, holder, lease=DEFAULT_LEASE, check=False, now=None):
    """Take the lock for `token`, renew it when `token` holds it already, or take it over from a
    dead holder. Returns {'acquired', 'record', 'previous', 'why'}; never waits."""
    now = time.time() if now is None else now
    if not token:
        raise LockError('a lock needs a token (the run id)')
    with _guard(lock_dir, name):
        current = read(lock_dir, name)
        if holds(current, token):
            record = dict(current, expires=now + lease, renewed=_manifest.utc_iso(now))
            if not check:
                _write(lock_dir, name, record)
            return dict(acquired=True, record=record, previous=None, why='held by this run')
        previous, why = None, 'free'
        if current:
            is_alive, why = alive(current, now)
            if is_alive:
                return dict(acquired=False, record=current, previous=None, why=why)
            previous = current
        record = dict(holder, name=name, token_sha256=token_hash(token), node=node_id(), since=_manifest.utc_iso(now),
                      expires=now + lease, lease=lease)
        if not check:
            _write(lock_dir, name, record)
            _history(lock_dir, dict(event='taken over' if previous else 'taken', name=name, holder=describe(record),
                                    run=token_hash(token)[:16], previous=describe(previous) if previous else None,
                                    why=why if previous else None))
        return dict(acquired=True, record=record, previous=previous, why=why)


def acquire_all(lock_dir, names, token, holder, lease=DEFAULT_LEASE, check=False, now=None):
    """Take the locks of `names` (hosts of one machine, one folder) for `token`, all or none.

    A live holder of any of them refuses the whole set before anything is written; when a lock is
    taken by another run between that look and the taking (a race), the ones this call took are
    given back. Returns (results by name, refusals as [(name, result)]); never waits."""
    now = time.time() if now is None else now
    refusals, held_before = [], set()
    for name in names:
        current = read(lock_dir, name)
        if holds(current, token):
            held_before.add(name)
        elif current:
            is_alive, why = alive(current, now)
            if is_alive:
                refusals.append((name, dict(acquired=False, record=current, previous=None, why=why)))
    if refusals:
        return {}, refusals
    results, taken = {}, []
    for name in names:
        res = acquire(lock_dir, name, token, holder, lease, check=check, now=now)
        results[name] = res
        if not res['acquired']:
            refusals.append((name, res))
        elif name not in held_before:
            taken.append(name)
    if refusals and not check:
        for name in reversed(taken):
            release(lock_dir, name, token)
    return results, refusals


def renew(lock_dir, name, token, lease=DEFAULT_LEASE, now=None):
    now = time.time() if now is None else now
    with _guard(lock_dir, name):
        current = read(lock_dir, name)
        if not holds(current, token):
            raise LockError('this run no longer holds the lock %s: %s' % (
                lock_file(lock_dir, name), ('now held by ' + describe(current)) if current else 'it was broken'))
        record = dict(current, expires=now + lease, renewed=_manifest.utc_iso(now))
        _write(lock_dir, name, record)
        return record


def release(lock_dir, name, token):
    """Give the lock up when `token` holds it; says so when someone else does (never removes theirs)."""
    with _guard(lock_dir, name):
        current = read(lock_dir, name)
        if not holds(current, token):
            return False
        os.unlink(lock_file(lock_dir, name))
        _history(lock_dir, dict(event='released', name=name, run=token_hash(token)[:16], holder=describe(current)))
        return True


def break_lock(lock_dir, name, actor, reason, force=False, now=None):
    """Remove whatever holds the lock, recording who broke it, why, and whose lock it was. A holder that is
    still alive (its process runs here, or its lease has not run out) is broken only with force."""
    if not actor or not reason:
        raise LockError('breaking a lock needs who breaks it and why (both are recorded)')
    with _guard(lock_dir, name):
        current = read(lock_dir, name)
        if not current:
            return None
        is_alive, why = alive(current, time.time() if now is None else now)
        if is_alive and not force:
            raise LockError('REFUSED: %s is held by a live run: %s (%s). Breaking it lets a second recovery change '
                            'the same system at once; wait for it, or break it with force (recorded with who and '
                            'why). Nothing was done.' % (name, describe(current), why))
        try:
            os.unlink(lock_file(lock_dir, name))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        _history(lock_dir, dict(event='broken', name=name, by=actor, reason=reason, holder=describe(current),
                                forced=bool(is_alive), holder_alive=why))
        return public(current)
