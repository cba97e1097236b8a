#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: questdb_wal
short_description: Resume suspended QuestDB WAL tables and wait until every writer caught up
version_added: 0.1.0
description:
  - Reads C(wal_tables()). For each table that is suspended, reports errorTag and errorMessage,
    triages it, resumes it with C(ALTER TABLE ... RESUME WAL) (C(FROM TXN n) when O(from_txn)
    names the table), and waits until writerTxn reaches sequencerTxn. Tables that only lag are
    waited for, not resumed.
  - Triage before any RESUME - a table suspended for V(DISK FULL) is resumed only when O(disk_path)
    has at least O(min_free_bytes) free; otherwise the module stops and says so, resuming nothing.
  - A table that is suspended again after its RESUME is reported and not retried.
  - The module never runs C(REBASE WAL), which drops transactions that were not applied.
extends_documentation_fragment:
  - tradeops.dr.questdb
options:
  tables:
    description: Only these tables (default - every suspended or lagging table).
    type: list
    elements: str
    default: []
  from_txn:
    description: Per table, the transaction to resume from (C(RESUME WAL FROM TXN n)), to skip a bad one.
    type: dict
    default: {}
  disk_path:
    description: Folder on QuestDB's data volume (its root), to check the free space before resuming a DISK FULL table.
    type: path
  min_free_bytes:
    description: Free space O(disk_path) must have before a DISK FULL table is resumed.
    type: int
    default: 1073741824
  wait_timeout:
    description: Seconds to wait for writerTxn to reach sequencerTxn.
    type: float
    default: 120
attributes:
  check_mode:
    support: full
    description: Reads and triages; reports the tables it would resume.
  diff_mode:
    support: none
    description: The module reports per table what it did instead.
  idempotent:
    support: full
    description: With every table applied, nothing is done.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Resume every suspended WAL table and wait until applied
  tradeops.dr.questdb_wal:
    url: http://127.0.0.1:9000
    disk_path: /var/lib/questdb
  register: wal

- name: Skip a poisoned transaction of one table
  tradeops.dr.questdb_wal:
    tables: [trades]
    from_txn:
      trades: 3
'''

RETURN = r'''
wal:
  description: Per table what was found and done.
  returned: always
  type: dict
  contains:
    problems:
      description: Suspended or lagging tables before the module acted.
      type: list
      elements: dict
      sample: [{name: trades, suspended: true, writerTxn: 1, sequencerTxn: 2, lag: 1, errorTag: "", errorMessage: ""}]
    resumed:
      description: The RESUME statements run (or, in check mode, that would run).
      type: list
      elements: str
      sample: [alter table trades resume wal]
    after:
      description: C(wal_tables()) rows of the problem tables after the wait.
      type: list
      elements: dict
      sample: [{name: trades, suspended: false, writerTxn: 2, sequencerTxn: 2}]
    waited_seconds:
      description: Seconds spent waiting for the writers.
      type: float
      sample: 0.4
'''

import shutil
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _questdb
from ansible_collections.tradeops.dr.plugins.module_utils._probe import wait_until


def triage(module, problems):
    """Fail before any RESUME when a table cannot be resumed safely."""
    p = module.params
    for t in problems:
        if t['suspended'] and 'DISK FULL' in t['errorTag'].upper():
            if not p['disk_path']:
                module.fail_json(msg='table %s is suspended for DISK FULL (%s); set disk_path so that free space can '
                                 'be checked before RESUME WAL. Nothing was resumed.' % (t['name'], t['errorMessage']),
                                 wal=dict(problems=problems, resumed=[]))
            free = shutil.disk_usage(p['disk_path']).free
            if free < p['min_free_bytes']:
                module.fail_json(msg='table %s is suspended for DISK FULL (%s) and %s has %d bytes free, less than '
                                 'min_free_bytes=%d: free space first. Nothing was resumed.' % (
                                     t['name'], t['errorMessage'], p['disk_path'], free, p['min_free_bytes']),
                                 wal=dict(problems=problems, resumed=[]))


def main():
    argument_spec = _questdb.questdb_common_argument_spec()
    argument_spec.update(
        tables=dict(type='list', elements='str', default=[]),
        from_txn=dict(type='dict', default={}),
        disk_path=dict(type='path'),
        min_free_bytes=dict(type='int', default=1024 ** 3),
        wait_timeout=dict(type='float', default=120.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        for name in list(p['tables']) + list(p['from_txn']):
            _questdb.check_table(name)
        from_txn = dict((k, int(v)) for k, v in p['from_txn'].items())
    except (ValueError, TypeError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='bad input: %s' % exc)
    client = _questdb.QuestDBClient(p)
    try:
        problems = _questdb.wal_problems(client.wal_tables())
    except (_questdb.QuestDBError, _questdb.QuestDBUnreachable) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    if p['tables']:
        problems = [t for t in problems if t['name'] in p['tables']]
    result = dict(problems=problems, resumed=[], after=[], waited_seconds=0.0)
    if not problems:
        module.exit_json(changed=False, wal=result)
    triage(module, problems)

    statements = []
    for t in problems:
        if t['suspended']:
            sql = 'alter table %s resume wal' % t['name']
            if t['name'] in from_txn:
                sql += ' from txn %d' % from_txn[t['name']]
            statements.append((t['name'], sql))
    result['resumed'] = [sql for _name, sql in statements]
    if module.check_mode:
        module.exit_json(changed=bool(statements), wal=result)

    for name, sql in statements:
        try:
            client.exec_sql(sql)
        except (_questdb.QuestDBError, _questdb.QuestDBUnreachable) as exc:
            module.fail_json(exception=traceback.format_exc(), msg='table %s: %s failed: %s' % (name, sql, exc), changed=bool(result['resumed']), wal=result)

    resumed = set(name for name, _sql in statements)
    watched = set(t['name'] for t in problems)
    state = {}

    def caught_up():
        rows = dict((r['name'], r) for r in client.wal_tables() if r['name'] in watched)
        state['rows'] = rows
        again = [n for n in resumed if rows.get(n, {}).get('suspended')]
        if again:
            state['again'] = again
            return True, 'suspended again'
        behind = ['%s writerTxn %s < sequencerTxn %s' % (n, r.get('writerTxn'), r.get('sequencerTxn'))
                  for n, r in rows.items() if int(r.get('writerTxn') or 0) < int(r.get('sequencerTxn') or 0)]
        return not behind, '; '.join(behind)

    started = time.monotonic()
    res = wait_until(caught_up, p['wait_timeout'], first_delay=0.1, max_delay=0.5)
    result['waited_seconds'] = round(time.monotonic() - started, 3)
    result['after'] = list(state.get('rows', {}).values())
    if state.get('again'):
        rows = state['rows']
        module.fail_json(changed=True, wal=result, msg='; '.join(
            'table %s was suspended again after RESUME WAL (errorTag %r, errorMessage %r): not retried, it needs '
            'a human (skip the bad transaction with from_txn, or fix its cause)' % (
                n, rows[n].get('errorTag'), rows[n].get('errorMessage')) for n in sorted(state['again'])))
    if not res['ok']:
        module.fail_json(changed=bool(statements), wal=result, msg='WAL not applied within %ss: %s' % (
            p['wait_timeout'], res['last_detail']))
    module.exit_json(changed=bool(statements), wal=result)


if __name__ == '__main__':
    main()
