#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_health
short_description: Diagnose a PostgreSQL/TimescaleDB database - reachable, queries answer, row counts, disk space
version_added: 0.1.0
description:
  - The diagnostic steps of runbook 000 (scenario 1) as evidence - the server accepts connections, O(database)
    exists, every user table answers C(count(*)) (a corrupted table makes its query fail and is named), the rows
    of O(min_row_counts) are there, and the disk space of the data directory and of O(paths).
  - Never changes anything; it reports. C(healthy) is false, with the reasons in C(problems), when the database is
    missing, a query fails or a table has fewer rows than expected.
options:
  database:
    description: Database to diagnose.
    type: str
    required: true
  min_row_counts:
    description: Tables (C(schema.table)) and the fewest rows each must hold.
    type: dict
    default: {}
  paths:
    description: More folders whose disk usage is reported (the backup root, for example).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - tradeops.dr.postgres
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
- name: Diagnose macro_trading
  tradeops.dr.pg_health:
    database: macro_trading
    min_row_counts: {public.positions: 1}
    paths: [/var/backups/tradeops-dr/postgres]
  register: db
'''

RETURN = r'''
postgres:
  description: The diagnosis.
  returned: always
  type: dict
  contains:
    reachable:
      description: The server accepted a connection.
      type: bool
    answers:
      description: The server answered, even if it refused the login (a wrong password is not a server that is
        down, and starting it would be the wrong remedy).
      type: bool
    refuses_connections:
      description: O(database) has C(ALLOW_CONNECTIONS false) (an interrupted restore swap leaves that).
      type: bool
    leftover_restores:
      description: Databases C(<database>__restore_*) an interrupted or failed restore left behind.
      type: list
      elements: str
    restore_in_progress:
      description: The session holding the restore lock of O(database), when a restore is running.
      type: dict
    database_exists:
      description: O(database) exists.
      type: bool
    healthy:
      description: Reachable, the database exists, every table answers and holds its minimum.
      type: bool
    problems:
      description: Why it is not healthy, in words.
      type: list
      elements: str
      sample: ["public.trades has 3400 rows, at least 5000 expected"]
    row_counts:
      description: Exact row count of every user table that answered.
      type: dict
    server_version:
      description: Server version.
      type: str
    extensions:
      description: Extensions of the database and their versions.
      type: dict
    disk:
      description: Total, used and free bytes and percent used per folder (data directory when visible, O(paths)).
      type: dict
'''

import os
import shutil
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _postgres


def disk_usage(paths):
    report = {}
    for path in paths:
        if path and os.path.isdir(path):
            usage = shutil.disk_usage(path)
            report[path] = dict(total=usage.total, used=usage.used, free=usage.free,
                                used_pct=round(100.0 * usage.used / usage.total, 1) if usage.total else None)
    return report


# What a connection error says when nothing listens (the server is down); any other error
# comes from a server that answers (a wrong password, a missing role, too many connections).
DOWN_SIGNS = ('Connection refused', 'No such file or directory', 'could not translate host name', 'timeout expired',
              'Network is unreachable', 'No route to host', 'the database system is starting up',
              'the database system is shutting down')


def diagnose(conn, database, min_rows, paths):
    out = dict(reachable=False, answers=False, database_exists=False, healthy=False, problems=[], row_counts={},
               refuses_connections=False, leftover_restores=[], restore_in_progress=None)
    try:
        admin = conn.connect()
    except _postgres.PostgresError as exc:
        out['problems'].append(str(exc))
        # a server that refuses the login is up: starting it again would be the wrong remedy
        out['answers'] = not any(sign in str(exc) for sign in DOWN_SIGNS)
        out['disk'] = disk_usage(paths)
        return out
    try:
        out['reachable'] = out['answers'] = True
        facts = _postgres.server_facts(admin)
        out['server_version'] = facts['server_version']
        out['disk'] = disk_usage([facts.get('data_directory')] + list(paths))
        out['database_exists'] = _postgres.database_exists(admin, database)
        out['leftover_restores'] = _postgres.databases_like(admin, '%s__restore_' % database)
        out['restore_in_progress'] = _postgres.lock_holder(admin, _postgres.RESTORE_LOCK, database)
        out['refuses_connections'] = _postgres.allows_connections(admin, database) is False
    finally:
        admin.close()
    if not out['database_exists']:
        out['problems'].append('database %s does not exist' % database)
        return out
    if out['refuses_connections']:
        out['problems'].append('database %s refuses connections (ALLOW_CONNECTIONS false)%s' % (
            database, ': a restore is swapping it now' if out['restore_in_progress'] else
            ', left by an interrupted restore swap or set by hand; pg_swap_repair allows them again'))
        return out
    db = conn.connect(database)
    try:
        out['extensions'] = _postgres.extensions(db)
        for table in _postgres.user_tables(db):
            try:
                out['row_counts'].update(_postgres.row_counts(db, [table]))
            except _postgres.DB_ERRORS as exc:
                out['problems'].append('%s does not answer: %s' % (table, _postgres.first_line(exc)))
    finally:
        db.close()
    for table, least in sorted(min_rows.items()):
        have = out['row_counts'].get(table)
        if have is None and not any(p.startswith(table + ' ') for p in out['problems']):
            out['problems'].append('%s is missing' % table)
        elif have is not None and have < int(least):
            out['problems'].append('%s has %d rows, at least %s expected' % (table, have, least))
    out['healthy'] = not out['problems']
    return out


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(database=dict(type='str', required=True), min_row_counts=dict(type='dict', default={}),
                paths=dict(type='list', elements='path', default=[]))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        _postgres.check_name(p['database'])
        for table in p['min_row_counts']:
            _postgres.split_table(table)
        result = diagnose(_postgres.Connection(p), p['database'], p['min_row_counts'], p['paths'])
    except _postgres.PostgresError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    module.exit_json(changed=False, postgres=result)


if __name__ == '__main__':
    main()
