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
  - With O(tables[].min_count), O(min_counts) or O(tables[].max_age), RV(questdb.shortfalls) lists
    tables whose count fell below the last known value or whose newest timestamp is older than
    the freshness window.
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
      - Last known row count per table (for example read from a state file); a table's own
        O(tables[].min_count) takes precedence.
    type: dict
    default: {}
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
    shortfalls:
      description: Tables that cannot be read, counts below the last known value, and stale tables.
      type: list
      elements: str
      sample: ["table trades has 990 rows, last known 1000"]
'''

import datetime
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _questdb


def _age(ts):
    if not ts:
        return None
    when = datetime.datetime.strptime(ts[:26].rstrip('Z'), '%Y-%m-%dT%H:%M:%S.%f').replace(tzinfo=datetime.timezone.utc)
    return round((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds(), 3)


def diagnose(client, tables, min_counts=None):
    diag = dict(reachable=False, shortfalls=[])
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
    )), min_counts=dict(type='dict', default={}))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        for t in module.params['tables']:
            _questdb.check_table(t['name'])
            _questdb.check_table(t['timestamp'])
        diag = diagnose(_questdb.QuestDBClient(module.params), module.params['tables'], module.params['min_counts'])
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
