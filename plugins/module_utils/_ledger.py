# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""The trading ledger (SQLite, runbook 004's ledger.db) as the source of truth for Redis.

Ledger table (name configurable), one row per write the platform made to Redis:

    seq      INTEGER PRIMARY KEY  -- order of application
    op       TEXT NOT NULL        -- xadd | hset | set
    key      TEXT NOT NULL        -- stream, hash or string key
    entry_id TEXT                 -- stream entry ID (<ms>-<seq>), required for xadd
    payload  TEXT NOT NULL        -- JSON: object of fields (xadd, hset) or a string (set)

Replay only ADDS what Redis lacks: stream entries keep their ledger IDs (present ones are
skipped); hashes and strings are folded to their final ledger state and only fields (or
strings) that Redis does not have are written. A live value that differs from the ledger is
newer than the ledger or was set on purpose: it is reported as diverged, never overwritten.
Control state (the kill switch and its events, risk limits, the active broker: PROTECTED) is
never written by a replay at all - its ledger value may be older than the live one, and a
replay must never lower the protection of an engaged kill switch. Every row is validated and
the whole plan made before the first write, so a bad ledger writes nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import json
import os
import re
import sqlite3

OPS = ('xadd', 'hset', 'set')
# glob patterns (fnmatch) of the control keys a replay never writes
PROTECTED = ('policy:kill_switch', 'policy:kill_switch:*', 'risk:*', 'broker:active', 'broker:events')
_STREAM_ID = re.compile(r'(\d+)-(\d+)')
_TABLE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


class LedgerError(Exception):
    """The ledger cannot be replayed; the message names the rows and the reason."""


def parse_stream_id(value):
    match = _STREAM_ID.fullmatch(value or '')
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def read_ledger(path, table='ledger'):
    """Rows as dicts, ordered by seq. Raises LedgerError for a missing or unreadable file."""
    if not _TABLE.fullmatch(table or ''):
        raise LedgerError('ledger table name %r is not a plain identifier' % table)
    if not os.path.isfile(path):
        raise LedgerError('ledger %s does not exist' % path)
    try:
        conn = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    except sqlite3.Error as exc:
        raise LedgerError('cannot open ledger %s: %s' % (path, exc))
    try:
        cur = conn.execute('SELECT seq, op, key, entry_id, payload FROM "%s" ORDER BY seq' % table)
        return [dict(seq=r[0], op=r[1], key=r[2], entry_id=r[3], payload=r[4]) for r in cur]
    except sqlite3.Error as exc:
        raise LedgerError('cannot read table %s of ledger %s: %s (expected columns seq, op, key, entry_id, '
                          'payload)' % (table, path, exc))
    finally:
        conn.close()


def validate(rows):
    """Check every row; return the decoded entries or raise LedgerError listing the bad rows."""
    problems, entries = [], []
    last_id = {}
    for row in rows:
        where = 'row seq=%s' % row['seq']
        op = (row['op'] or '').lower()
        if op not in OPS:
            problems.append('%s: op %r is not one of %s' % (where, row['op'], ', '.join(OPS)))
            continue
        if not row['key']:
            problems.append('%s: empty key' % where)
            continue
        try:
            payload = json.loads(row['payload']) if row['payload'] is not None else None
        except (TypeError, ValueError) as exc:
            problems.append('%s: payload is not JSON (%s)' % (where, exc))
            continue
        if op in ('xadd', 'hset'):
            if not isinstance(payload, dict) or not payload:
                problems.append('%s: %s payload must be a non-empty JSON object' % (where, op))
                continue
            bad = [k for k, v in payload.items() if isinstance(v, (dict, list)) or v is None]
            if bad:
                problems.append('%s: field(s) %s must be strings or numbers' % (where, ', '.join(sorted(bad))))
                continue
            payload = dict((str(k), _text(v)) for k, v in payload.items())
        elif not isinstance(payload, (str, int, float)) or isinstance(payload, bool):
            problems.append('%s: set payload must be a JSON string or number' % where)
            continue
        entry = dict(seq=row['seq'], op=op, key=row['key'], payload=payload)
        if op == 'xadd':
            sid = parse_stream_id(row['entry_id'])
            if sid is None or sid == (0, 0):
                problems.append('%s: xadd needs entry_id of the form <ms>-<seq>, got %r' % (where, row['entry_id']))
                continue
            if row['key'] in last_id and sid <= last_id[row['key']]:
                problems.append('%s: entry_id %s is not after the previous entry of stream %s' % (
                    where, row['entry_id'], row['key']))
                continue
            last_id[row['key']] = sid
            entry['entry_id'] = row['entry_id']
        entries.append(entry)
    if problems:
        shown = problems[:20]
        more = len(problems) - len(shown)
        raise LedgerError('%d malformed ledger row(s), nothing was written: %s%s' % (
            len(problems), '; '.join(shown), ' (and %d more)' % more if more else ''))
    return entries


def _text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value) if not isinstance(value, str) else value


def is_protected(key, patterns=PROTECTED):
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def plan(client, entries, protected=PROTECTED):
    """Compare the ledger with Redis. Returns dict(streams, hashes, strings, writes, conflicts,
    diverged, protected); writes is the ordered list of operations still missing from Redis,
    diverged the live values that differ from the ledger (left as they are), protected the
    control keys of the ledger with whether Redis has them (never written)."""
    streams, hashes, strings = {}, {}, {}
    skipped = {}
    for entry in entries:
        if is_protected(entry['key'], protected):
            last = skipped.setdefault(entry['key'], {})  # the ledger's final value, for a person to confirm
            if entry['op'] == 'hset':
                last.update(dict((k, _text(v)) for k, v in (entry['payload'] or {}).items()))
            elif entry['op'] == 'set':
                skipped[entry['key']] = _text(entry['payload'])
            continue
        if entry['op'] == 'xadd':
            streams.setdefault(entry['key'], []).append(entry)
        elif entry['op'] == 'hset':
            hashes.setdefault(entry['key'], {}).update(entry['payload'])
        else:
            strings[entry['key']] = _text(entry['payload'])

    writes, conflicts, diverged = [], [], []
    report = dict(streams={}, hashes={}, strings={})
    report['protected'] = dict((key, 'present' if client.exists(key) else 'missing') for key in sorted(skipped))
    report['protected_ledger'] = dict((key, skipped[key]) for key in sorted(skipped)
                                      if report['protected'][key] == 'missing' and not key.endswith(':events'))
    for key, items in streams.items():
        kind = client.type(key)
        if kind not in ('stream', 'none'):
            conflicts.append('key %s is a %s in Redis, the ledger has a stream' % (key, kind))
            continue
        present = set()
        top = None
        if kind == 'stream':
            info = client.xinfo_stream(key)
            top = parse_stream_id(info.get('last-generated-id'))
            first, last = items[0]['entry_id'], items[-1]['entry_id']
            present = set(eid for eid, _fields in client.xrange(key, min=first, max=last))
        missing = [e for e in items if e['entry_id'] not in present]
        late = [e for e in missing if top is not None and parse_stream_id(e['entry_id']) <= top]
        if late:
            conflicts.append('stream %s: %d ledger entries (first %s) are older than its newest entry %s-%s and '
                             'cannot be inserted in order' % (key, len(late), late[0]['entry_id'], top[0], top[1]))
            continue
        report['streams'][key] = dict(ledger=len(items), present=len(items) - len(missing), missing=len(missing))
        writes.extend(('xadd', key, e['entry_id'], e['payload']) for e in missing)
    for key, fields in hashes.items():
        kind = client.type(key)
        if kind not in ('hash', 'none'):
            conflicts.append('key %s is a %s in Redis, the ledger has a hash' % (key, kind))
            continue
        current = client.hgetall(key) if kind == 'hash' else {}
        missing = dict((f, v) for f, v in fields.items() if f not in current)
        differ = sorted(f for f, v in fields.items() if f in current and current[f] != v)
        diverged.extend('hash %s field %s: live %r, ledger %r' % (key, f, current[f], fields[f]) for f in differ)
        report['hashes'][key] = dict(fields=len(fields), missing=len(missing), diverged=len(differ))
        if missing:
            writes.append(('hset', key, None, missing))
    for key, value in strings.items():
        kind = client.type(key)
        if kind not in ('string', 'none'):
            conflicts.append('key %s is a %s in Redis, the ledger has a string' % (key, kind))
            continue
        live = client.get(key) if kind == 'string' else None
        report['strings'][key] = dict(missing=live is None, diverged=live is not None and live != value)
        if live is None:
            writes.append(('set', key, None, value))
        elif live != value:
            diverged.append('string %s: live %r, ledger %r' % (key, live, value))
    report['writes'] = writes
    report['conflicts'] = conflicts
    report['diverged'] = diverged
    return report


def apply(client, writes, batch=500):
    """Write the planned operations in MULTI/EXEC batches. Returns the number written."""
    done = 0
    for start in range(0, len(writes), batch):
        pipe = client.pipeline(transaction=True)
        for op, key, entry_id, payload in writes[start:start + batch]:
            if op == 'xadd':
                pipe.xadd(key, payload, id=entry_id)
            elif op == 'hset':
                for field, value in payload.items():  # only fields that are still missing: HSETNX
                    pipe.hsetnx(key, field, value)
            else:
                pipe.set(key, payload, nx=True)  # a value that appeared since the plan wins
        pipe.execute()
        done += len(writes[start:start + batch])
    return done
