#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: timescale_compress
short_description: Compress TimescaleDB chunks older than a threshold to free disk space (runbook 000, disk full)
version_added: 0.1.0
description:
  - For each hypertable of O(hypertables), runs C(compress_chunk()) on the chunks older than O(older_than) that are
    not compressed yet (C(show_chunks(..., older_than => ...))). Compression keeps every row; it changes only how
    they are stored.
  - Skipped, with a message and without failing, when the database lacks the timescaledb extension.
options:
  database:
    description: Database holding the hypertables.
    type: str
    required: true
  hypertables:
    description: Hypertables (C(schema.table) or C(table)) to compress; each must have compression enabled.
    type: list
    elements: str
    required: true
  older_than:
    description: PostgreSQL interval; chunks entirely older than now minus this are compressed.
    type: str
    default: 7 days
extends_documentation_fragment:
  - tradeops.dr.postgres
attributes:
  check_mode:
    support: full
    description: Lists the chunks that would be compressed.
  diff_mode:
    support: none
    description: The chunks compressed are returned.
  idempotent:
    support: full
    description: Chunks already compressed are left alone.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Compress position PnL history older than two weeks
  tradeops.dr.timescale_compress:
    database: macro_trading
    hypertables: [public.position_pnl_history]
    older_than: 14 days
'''

RETURN = r'''
compressed:
  description: Chunks compressed (or, in check mode, that would be), per hypertable.
  returned: always
  type: dict
  sample: {public.position_pnl_history: [_timescaledb_internal._hyper_1_1_chunk]}
skipped:
  description: Why nothing was done, when the extension is absent.
  returned: when skipped
  type: str
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _postgres, _timescaledb


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(database=dict(type='str', required=True), hypertables=dict(type='list', elements='str', required=True),
                older_than=dict(type='str', default='7 days'))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    compressed = {}
    try:
        _postgres.check_name(p['database'])
        tables = [_postgres.split_table(t) for t in p['hypertables']]
        db = _postgres.Connection(p).connect(p['database'])
        try:
            if 'timescaledb' not in _postgres.extensions(db):
                module.exit_json(changed=False, compressed={}, skipped=(
                    'database %s has no timescaledb extension: there are no chunks to compress' % p['database']))
            known = set(h['name'] for h in _timescaledb.hypertables(db))
            unknown = ['%s.%s' % t for t in tables if '%s.%s' % t not in known]
            if unknown:  # all checked before the first chunk is compressed
                module.fail_json(compressed={}, msg='%s %s not a hypertable of %s (hypertables: %s); nothing was '
                                 'compressed' % (', '.join(unknown), 'is' if len(unknown) == 1 else 'are',
                                                 p['database'], ', '.join(sorted(known)) or 'none'))
            for schema, table in tables:
                regclass = '%s.%s' % (schema, table)
                rows = _postgres.query(db, (
                    'SELECT c::text FROM show_chunks(%s::regclass, older_than => now() - %s::interval) c '
                    'JOIN timescaledb_information.chunks i ON format(%s, i.chunk_schema, i.chunk_name)::regclass = c '
                    'WHERE NOT i.is_compressed'), (_postgres.sql.Identifier(schema, table).as_string(db),
                                                   p['older_than'], '%I.%I'))
                chunks = [r[0] for r in rows]
                if chunks and not module.check_mode:
                    for chunk in chunks:
                        _postgres.query(db, 'SELECT compress_chunk(%s::regclass, if_not_compressed => true)', (chunk,))
                compressed[regclass] = chunks
        finally:
            db.close()
    except _postgres.PostgresError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), compressed=compressed)
    except _postgres.DB_ERRORS as exc:
        module.fail_json(exception=traceback.format_exc(), msg='compression failed: %s' % str(exc).strip(), compressed=compressed)
    module.exit_json(changed=any(compressed.values()), compressed=compressed)


if __name__ == '__main__':
    main()
