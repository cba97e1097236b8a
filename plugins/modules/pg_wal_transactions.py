#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_wal_transactions
short_description: The transactions that touched a table around a time, read from the archived WAL
version_added: 0.2.0
description:
  - Finds the recovery target of a point-in-time recovery - "just before the bad DELETE" - from evidence instead of a
    guess. The archived WAL segments written around O(around) are fetched with C(pgbackrest archive-get) into a
    private temporary folder and read with C(pg_waldump); every transaction with a heap record (insert, update,
    delete, truncate) in O(table) - or in one of its TimescaleDB chunks - is listed with its commit time, commit LSN
    and record counts, and a recovery target just before its commit is suggested.
  - The table's storage files are looked up on the live server (C(pg_relation_filenode), C(show_chunks)); a table
    rewritten since (C(VACUUM FULL), C(TRUNCATE)) is matched by its current files only.
  - Read-only.
options:
  database:
    description: The database of O(table).
    type: str
    required: true
  table:
    description: The table (C(schema.table)); a hypertable's chunks are included.
    type: str
    required: true
  around:
    description: The time to look around, with its time zone (C(2026-11-25 14:03:00+00)).
    type: str
    required: true
  window:
    description: Seconds before and after O(around) to list.
    type: int
    default: 300
  max_segments:
    description: Most WAL segments fetched and read.
    type: int
    default: 64
extends_documentation_fragment:
  - tradeops.dr.postgres
  - tradeops.dr.pgbackrest
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
  idempotent:
    support: full
    description: Read-only.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Which transactions touched public.trades around 14:03?
  tradeops.dr.pg_wal_transactions:
    stanza: trading
    config: /etc/pgbackrest/pgbackrest.conf
    repo_path: /var/lib/pgbackrest
    database: trading
    table: public.trades
    around: "2026-11-25 14:03:00+00"
    window: 300
'''

RETURN = r'''
transactions:
  description:
    - Transactions with records in the table, by commit time - xid, commit time (UTC), commit LSN, records per kind,
      and the time target just before the commit.
  returned: always
  type: list
  elements: dict
  sample:
    - {xid: 750, committed: "2026-11-25 14:03:01.123456+00", commit_lsn: 0/6002A10, records: {DELETE: 1020},
       target_before: "2026-11-25 14:03:01.123455+00"}
segments:
  description: The WAL segments read.
  returned: always
  type: list
  elements: str
relations:
  description: The storage files matched, C(relfilenode -> relation).
  returned: always
  type: dict
'''

import datetime
import os
import re
import shutil
import subprocess
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _pgbackrest, _postgres

RECORD_RE = re.compile(r'^rmgr: (\w+)\s.*?tx:\s+(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F/]+, desc: (\S+)(.*)$')
REL_RE = re.compile(r'rel (\d+)/(\d+)/(\d+)')
COMMIT_RE = re.compile(r'^(COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC')


def relations(conn, schema, table):
    """{relfilenode: name} of the table and, for a hypertable, of its chunks; and the database oid."""
    rows = _postgres.query(conn, "SELECT pg_relation_filenode(c.oid), c.oid::regclass::text FROM pg_class c "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                           (schema, table))
    if not rows:
        raise _postgres.PostgresError('table %s.%s does not exist in the live database' % (schema, table))
    out = dict((str(r[0]), r[1]) for r in rows if r[0])
    has_tsdb = _postgres.query(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")[0][0]
    if has_tsdb:
        qualified = '%s.%s' % (schema, table)
        hyper = _postgres.query(conn, "SELECT count(*) FROM timescaledb_information.hypertables WHERE "
                                "hypertable_schema = %s AND hypertable_name = %s", (schema, table))[0][0]
        if hyper:
            for node, name in _postgres.query(conn, "SELECT pg_relation_filenode(c), c::text FROM show_chunks(%s) c",
                                              (qualified,)):
                if node:
                    out[str(node)] = name
    dboid = _postgres.query(conn, "SELECT oid FROM pg_database WHERE datname = current_database()")[0][0]
    return out, str(dboid)


def segments_around(repo_path, stanza, start, end, limit):
    """Archived segment names whose archive time (file mtime) is in [start, end], plus the first
    archived after end (it holds the end of the window), oldest first."""
    base = os.path.join(repo_path, 'archive', stanza)
    found = []
    for root, _dirs, files in os.walk(base):
        for name in files:
            parsed = _pgbackrest.parse_segment(name)
            if parsed and '.partial' not in name:
                found.append((os.path.getmtime(os.path.join(root, name)), name[:24]))
    found.sort()
    picked = [n for t, n in found if start <= t <= end]
    after = [n for t, n in found if t > end]
    return (picked + after[:1])[:limit]


def contiguous_runs(names):
    runs = []
    for name in sorted(set(names)):
        tli, log, seg = _pgbackrest.parse_segment(name)
        if runs:
            ptli, plog, pseg = _pgbackrest.parse_segment(runs[-1][-1])
            if tli == ptli and (log, seg) in ((plog, pseg + 1), (plog + 1, 0)):
                runs[-1].append(name)
                continue
        runs.append([name])
    return runs


# pg_waldump ends with rc 1 at the end of the valid WAL of a segment still being written (or cut by a
# switch): "error in WAL record at 0/3000148: invalid record length at 0/3000180: expected at least 24, got 0"
_END_OF_WAL = re.compile(r'invalid record length at [0-9A-F]+/[0-9A-F]+: (wanted|expected at least) \d+, got 0')


def waldump_failure(rc, stderr):
    """None when pg_waldump read everything there is (rc 0, or rc 1 only for the end of the valid WAL);
    else its error lines."""
    if rc == 0:
        return None
    lines = [ln.strip() for ln in (stderr or '').splitlines() if ln.strip()]
    if rc == 1 and lines and all(_END_OF_WAL.search(ln) for ln in lines if 'error' in ln.lower() or 'fatal' in ln.lower()) \
            and any(_END_OF_WAL.search(ln) for ln in lines):
        return None
    return ' | '.join(lines[-4:]) or 'no error output'


def read_wal(p, names, nodes, dboid, major=None):
    tmp = tempfile.mkdtemp(prefix='tradeops-wal-')
    os.chmod(tmp, 0o700)
    try:
        if os.geteuid() == 0 and p['os_user'] != 'root':
            uid, gid = _pgbackrest.owner_ids(p['os_user'])
            os.chown(tmp, uid, gid)
        for name in names:
            rc, out, err = _pgbackrest.run(p['binary'], p['config'], p['stanza'],
                                           ['archive-get', name, os.path.join(tmp, name)], p['os_user'])
            if rc != 0:
                raise _pgbackrest.PgBackRestError('archive-get %s failed: %s' % (name, _pgbackrest.error_text(out, err)))
        waldump = _postgres.server_binary('pg_waldump', p['pg_bin_dir'], major)
        txs = {}
        for run in contiguous_runs(names):
            proc = subprocess.run([waldump, '-p', tmp, run[0], run[-1]], capture_output=True, text=True, check=False)
            failure = waldump_failure(proc.returncode, proc.stderr)
            if failure:  # a failed read is not "no transactions"
                raise _postgres.PostgresError('pg_waldump could not read %s..%s (rc %d): %s' % (
                    run[0], run[-1], proc.returncode, failure))
            for line in proc.stdout.splitlines():
                m = RECORD_RE.match(line)
                if not m:
                    continue
                rmgr, xid, lsn, kind, rest = m.groups()
                if xid == '0':
                    continue
                if rmgr == 'Transaction':
                    c = COMMIT_RE.match(kind + rest)
                    if c and xid in txs:
                        txs[xid]['status'], txs[xid]['committed'], txs[xid]['commit_lsn'] = c.group(1), c.group(2), lsn
                    continue
                if rmgr not in ('Heap', 'Heap2'):
                    continue
                rel = REL_RE.search(rest)
                if not rel or rel.group(2) != dboid or rel.group(3) not in nodes:
                    continue
                entry = txs.setdefault(xid, dict(xid=int(xid), records={}, relations=set(), status=None,
                                                 committed=None, commit_lsn=None))
                entry['records'][kind] = entry['records'].get(kind, 0) + 1
                entry['relations'].add(nodes[rel.group(3)])
        return txs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(_pgbackrest.argument_spec())
    spec.update(database=dict(type='str', required=True),
                table=dict(type='str', required=True), around=dict(type='str', required=True),
                window=dict(type='int', default=300), max_segments=dict(type='int', default=64))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if not p['repo_path']:
        module.fail_json(msg='repo_path is required: the archived segments are found there by time')
    try:
        _postgres.check_name(p['database'])
        schema, table = _postgres.split_table(p['table'])
        try:
            t = _pgbackrest.parse_time(p['around'], 'around').timestamp()
        except ValueError as exc:
            module.fail_json(exception=traceback.format_exc(), msg=str(exc))
        conn = _postgres.Connection(p).connect(p['database'])
        try:
            nodes, dboid = relations(conn, schema, table)
            major = int(_postgres.query(conn, "SHOW server_version_num")[0][0]) // 10000
        finally:
            conn.close()
        names = segments_around(p['repo_path'], p['stanza'], t - p['window'], t + p['window'], p['max_segments'])
        txs = read_wal(p, names, nodes, dboid, major)
    except (_postgres.PostgresError, _pgbackrest.PgBackRestError, OSError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    lo = datetime.datetime.fromtimestamp(t - p['window'], datetime.timezone.utc)
    hi = datetime.datetime.fromtimestamp(t + p['window'], datetime.timezone.utc)
    out = []
    for entry in txs.values():
        if entry['status'] != 'COMMIT':
            continue
        committed = datetime.datetime.fromisoformat(entry['committed']).replace(tzinfo=datetime.timezone.utc)
        if not lo <= committed <= hi:
            continue
        out.append(dict(xid=entry['xid'], committed=committed.isoformat(sep=' '), commit_lsn=entry['commit_lsn'],
                        records=entry['records'], rows=sum(entry['records'].values()),
                        relations=sorted(entry['relations']),
                        target_before=(committed - datetime.timedelta(microseconds=1)).isoformat(sep=' ')))
    out.sort(key=lambda e: e['committed'])
    module.exit_json(changed=False, transactions=out, segments=names, relations=nodes)


if __name__ == '__main__':
    main()
