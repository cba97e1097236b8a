#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup
short_description: Dump a PostgreSQL/TimescaleDB database with pg_dump -Fc and write a manifest that proves what it holds
version_added: 0.1.0
description:
  - Dumps O(database) with C(pg_dump -Fc) to C(<backup_root>/<YYYY-MM-DD>/<database>_<stamp>.pgdump) and exports
    the tables of O(csv_tables) as CSV beside it (runbook 000's backup inventory).
  - The row counts, the CSV exports and the dump all read ONE snapshot (C(pg_export_snapshot()) and
    C(pg_dump --snapshot)), so the manifest's counts are exactly what the dump holds, even while trading writes.
  - Writes C(<database>_<stamp>.manifest.json) with the sha256 and size of every file, server and pg_dump
    versions, extensions and their versions (TimescaleDB included), hypertables, the exact row count of every
    table, the database size, C(created_at) and the status C(created). M(tradeops.dr.pg_backup_verify) makes it
    C(verified).
  - The dump is written to a C(.partial) file and renamed only when pg_dump succeeded; a failed dump leaves no
    backup behind that could be mistaken for a complete one.
options:
  database:
    description: Database to back up.
    type: str
    required: true
  backup_root:
    description: Root folder of the backup catalog.
    type: path
    required: true
  csv_tables:
    description: Tables (C(schema.table) or C(table)) also exported as CSV with a header line.
    type: list
    elements: str
    default: []
  kind:
    description:
      - V(backup) for the catalog's backups; V(safety) for a dump taken before a restore (kept in
        C(<backup_root>/safety/), never chosen for a restore automatically).
    type: str
    choices: [backup, safety]
    default: backup
  compress:
    description: pg_dump compression level (0-9); default is pg_dump's own.
    type: int
  timeout:
    description: Seconds pg_dump may run.
    type: int
    default: 21600
extends_documentation_fragment:
  - tradeops.dr.postgres
attributes:
  check_mode:
    support: full
    description: Connects and reports the paths it would write; dumps nothing.
  diff_mode:
    support: none
    description: Nothing is replaced; every run writes a new backup.
  idempotent:
    support: none
    description: Every run writes a new backup (a backup is a point in time).
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Nightly backup of the trading database with the PMS tables as CSV
  tradeops.dr.pg_backup:
    database: macro_trading
    backup_root: /var/backups/tradeops-dr/postgres
    csv_tables: [public.positions, public.orders]
    login_user: backup
    login_password: "{{ vault_pg_backup_password }}"
'''

RETURN = r'''
backup:
  description: The backup written (or, in check mode, the one that would be).
  returned: always
  type: dict
  contains:
    dump:
      description: Path of the dump.
      type: str
      sample: /var/backups/tradeops-dr/postgres/2026-11-23/trading_20261123T020000Z.pgdump
    manifest:
      description: Path of the manifest.
      type: str
      sample: /var/backups/tradeops-dr/postgres/2026-11-23/trading_20261123T020000Z.manifest.json
    status:
      description: Status written into the manifest.
      type: str
      sample: created
    row_counts:
      description: Exact row count of every table, read in the dump's snapshot.
      type: dict
      sample: {public.trades: 5000, public.positions: 5}
    extensions:
      description: Extensions of the database and their versions.
      type: dict
      sample: {plpgsql: "1.0", timescaledb: "2.28.3"}
    size:
      description: Bytes of all files of the backup.
      type: int
      sample: 1048576
    duration_s:
      description: Seconds the backup took.
      type: float
      sample: 12.5
'''

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _backup, _pgdump, _postgres


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(
        database=dict(type='str', required=True),
        backup_root=dict(type='path', required=True),
        csv_tables=dict(type='list', elements='str', default=[]),
        kind=dict(type='str', choices=list(_backup.KINDS), default='backup'),
        compress=dict(type='int'),
        timeout=dict(type='int', default=21600),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        _postgres.check_name(p['database'])
        for table in p['csv_tables']:
            _postgres.split_table(table)
        if p['compress'] is not None and not 0 <= p['compress'] <= 9:
            raise _postgres.PostgresError('compress must be 0-9, not %d' % p['compress'])
        conn = _postgres.Connection(p)
        directory, base = _backup.new_backup_paths(p['backup_root'], p['database'], p['kind'])
        if module.check_mode:
            probe = conn.connect(p['database'])
            probe.close()
            conn.binary('pg_dump')
            module.exit_json(changed=True, backup=dict(
                dump=os.path.join(directory, base + _backup.DUMP_SUFFIX),
                manifest=os.path.join(directory, base + _backup.MANIFEST_SUFFIX), status='would be created'))
        result = _pgdump.dump_database(conn, p['database'], directory, base, kind=p['kind'],
                                       csv_tables=p['csv_tables'], compress=p['compress'], timeout=p['timeout'])
    except (_postgres.PostgresError, _backup.BackupError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), backup={})
    except _postgres.DB_ERRORS as exc:
        module.fail_json(exception=traceback.format_exc(), msg='backup of %s failed: %s (nothing partial was kept)' % (p['database'], exc), backup={})
    except (IOError, OSError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='backup of %s failed writing below %s: %s (nothing partial was kept)' % (
            p['database'], p['backup_root'], exc), backup={})
    module.exit_json(changed=True, backup=result)


if __name__ == '__main__':
    main()
