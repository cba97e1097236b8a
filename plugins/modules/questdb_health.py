#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: questdb_health
short_description: Diagnose QuestDB - health port, SQL, version, WAL tables, checkpoint, table freshness
version_added: 0.1.0
description:
  - Read-only diagnosis of runbook 003 (section 2) - the health port, C(select 1) over the HTTP
    API, the version from C(select build()), C(wal_tables()) (suspended tables and tables whose
    writerTxn lags sequencerTxn, with errorTag and errorMessage), C(checkpoint_status()), and per
    configured table the row count and newest timestamp.
  - With O(tables[].min_count), O(min_counts), O(min_counts_file) or O(tables[].max_age),
    RV(questdb.shortfalls) lists tables whose count fell below the last known value or whose newest
    timestamp is older than the freshness window.
  - An unreachable server is a finding (RV(questdb.reachable=false)), not a failure.
extends_documentation_fragment:
  - tradeops.dr.questdb
options:
  tables:
    description: Tables to count, with their designated timestamp column.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Table name.
        type: str
        required: true
      timestamp:
        description: Designated timestamp column (for the newest row).
        type: str
        default: ts
      min_count:
        description: Lowest acceptable row count (the last known value).
        type: int
      max_age:
        description: Seconds the newest timestamp may lag behind now.
        type: int
  min_counts:
    description:
      - Last known row count per table; a table's own O(tables[].min_count) takes precedence.
    type: dict
    default: {}
  min_counts_file:
    description:
      - A JSON file of the last known row count per table (an object of table and count), as the questdb_repair
        role records them after a verified repair. A file that does not exist sets no expectation; one that cannot
        be read or is not such an object fails the module. O(min_counts) takes precedence over it.
      - Read by the module on the QuestDB host, so that the diagnosis needs no task of its own to read it.
    type: path
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  idempotent:
    support: full
    description: Running it again changes nothing.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Diagnose QuestDB (runbook 003, section 2)
  tradeops.dr.questdb_health:
    url: http://127.0.0.1:9000
    health_url: http://127.0.0.1:9003
    tables:
      - name: trading_pnl
        timestamp: ts
        min_count: 120000
        max_age: 300
  register: qdb
'''

RETURN = r'''
questdb:
  description: The diagnosis.
  returned: always
  type: dict
  contains:
    reachable:
      description: Whether the HTTP API answered C(select 1).
      type: bool
      sample: true
    healthy:
      description: Whether the health port answered C(Status - Healthy).
      type: bool
      sample: true
    health_detail:
      description: What the health port answered.
      type: str
      sample: "http://127.0.0.1:9003: HTTP 200 Status: Healthy"
    error:
      description: Why the API could not be reached.
      type: str
      returned: when not reachable
      sample: "cannot reach QuestDB at http://127.0.0.1:9000/exec: [Errno 111] Connection refused"
    version:
      description: Server version (major, minor, patch).
      type: list
      elements: int
      returned: when reachable
      sample: [8, 1, 2]
    wal_tables:
      description: Rows of C(wal_tables()).
      type: list
      elements: dict
      returned: when reachable
      sample: [{name: trades, suspended: true, writerTxn: 1, sequencerTxn: 2, errorTag: "", errorMessage: ""}]
    wal_problems:
      description: Suspended or lagging tables, with lag, errorTag and errorMessage.
      type: list
      elements: dict
      returned: when reachable
      sample: [{name: trades, suspended: true, lag: 1, errorTag: "", errorMessage: ""}]
    checkpoint:
      description: C(checkpoint_status()) - in_progress and started_at.
      type: dict
      returned: when reachable
      sample: {in_progress: false, started_at: null}
    tables:
      description: Per configured table - whether it could be read, count, newest timestamp, age in seconds (and
        QuestDB's error for a table that cannot be read, such as a dropped one).
      type: dict
      returned: when reachable
      sample: {trades: {exists: true, count: 1000, newest: "2026-11-23T06:39:03.467048Z", age_seconds: 42.0}}
    min_counts:
      description: The last known row count per table the counts were compared with (from O(min_counts_file),
        then O(min_counts)) - what a verification after the repair compares with again.
      type: dict
      sample: {trades: 1000}
    shortfalls:
      description: Tables that cannot be read, counts below the last known value, and stale tables.
      type: list
      elements: str
      sample: ["table trades has 990 rows, last known 1000"]
'''

import datetime
import json
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _questdb


def _age(ts):
    if not ts:
        return None
    when = datetime.datetime.strptime(ts[:26].rstrip('Z'), '%Y-%m-%dT%H:%M:%S.%f').replace(tzinfo=datetime.timezone.utc)
    return round((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds(), 3)


def known_counts(path, given):
    """The last known row count per table: the file's (none when it does not exist), then the given ones."""
    counts = {}
    if path:
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise ValueError('cannot read the last known row counts in %s: %s' % (path, exc))
        # a table that could not be read when they were recorded has none (null)
        if not isinstance(data, dict) or not all(v is None or (isinstance(v, int) and not isinstance(v, bool))
                                                 for v in data.values()):
            raise ValueError('%s does not hold the last known row count per table (a JSON object of table: count)' % path)
        counts.update(data)
    counts.update(given or {})
    return counts


def diagnose(client, tables, min_counts=None):
    diag = dict(reachable=False, shortfalls=[], min_counts=dict(min_counts or {}))
    diag['healthy'], diag['health_detail'] = client.health()
    try:
        client.rows('select 1')
    except _questdb.QuestDBUnreachable as exc:
        diag['error'] = str(exc)
        return diag
    diag['reachable'] = True
    diag['version'] = list(client.version())
    diag['wal_tables'] = client.wal_tables()
    diag['wal_problems'] = _questdb.wal_problems(diag['wal_tables'])
    diag['checkpoint'] = client.checkpoint_status()
    diag['tables'] = {}
    for t in tables:
        name = t['name']
        try:
            info = dict(exists=True, count=client.count(name))
            info['newest'] = client.newest(name, t.get('timestamp') or 'ts')
        except _questdb.QuestDBError as exc:
            # a table that is gone is a finding (the case a restore is for), not a failed diagnosis
            diag['tables'][name] = dict(exists=False, count=None, newest=None, age_seconds=None, error=str(exc))
            diag['shortfalls'].append('table %s cannot be read: %s' % (name, exc))
            continue
        info['age_seconds'] = _age(info['newest'])
        diag['tables'][name] = info
        floor = t.get('min_count') if t.get('min_count') is not None else (min_counts or {}).get(name)
        if floor is not None and info['count'] < int(floor):
            diag['shortfalls'].append('table %s has %d rows, last known %d' % (name, info['count'], int(floor)))
        if t.get('max_age') is not None and (info['age_seconds'] is None or info['age_seconds'] > t['max_age']):
            diag['shortfalls'].append('table %s is stale: newest row %s is %ss old (window %ss)' % (
                name, info['newest'], info['age_seconds'], t['max_age']))
    return diag


def main():
    argument_spec = _questdb.questdb_common_argument_spec()
    argument_spec.update(tables=dict(type='list', elements='dict', default=[], options=dict(
        name=dict(type='str', required=True),
        timestamp=dict(type='str', default='ts'),
        min_count=dict(type='int'),
        max_age=dict(type='int'),
    )), min_counts=dict(type='dict', default={}), min_counts_file=dict(type='path'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        for t in module.params['tables']:
            _questdb.check_table(t['name'])
            _questdb.check_table(t['timestamp'])
        known = known_counts(module.params['min_counts_file'], module.params['min_counts'])
        diag = diagnose(_questdb.QuestDBClient(module.params), module.params['tables'], known)
    except ValueError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except (_questdb.QuestDBError, _questdb.QuestDBUnreachable) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except Exception as exc:
        module.fail_json(msg='diagnosis of QuestDB at %s failed: %s' % (module.params['url'], exc),
                         exception=traceback.format_exc())
    module.exit_json(changed=False, questdb=diag)


if __name__ == '__main__':
    main()
