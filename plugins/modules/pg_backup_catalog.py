#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_catalog
short_description: List database backups, pick the newest verified one, check staleness and apply retention
version_added: 0.1.0
description:
  - Reads the manifests below O(backup_root) (layout of M(tradeops.dr.pg_backup)) - nothing else decides.
  - Always reports every backup newest first, the newest and the newest verified backup.
  - O(max_age_hours) fails the task, saying so, when the newest verified backup of O(database) is older (runbook
    002, scenario 4) or when there is none.
  - O(prune=true) deletes backups older than O(keep_days) - but never the newest backup nor the newest verified
    backup of a database, and never a file without a readable manifest. In check mode it lists what would go.
options:
  backup_root:
    description: Root folder of the backup catalog.
    type: path
    required: true
  database:
    description: Only this database's backups (all databases when omitted).
    type: str
  prune:
    description: Apply retention (delete what O(keep_days) lets go); without it the catalog is only read.
    type: bool
    default: false
  keep_days:
    description: Days a backup is kept by retention.
    type: int
    default: 30
  max_age_hours:
    description: Fail when the newest verified backup of O(database) is older than this (needs O(database)).
    type: float
attributes:
  check_mode:
    support: full
    description: Retention reports what it would delete and deletes nothing.
  diff_mode:
    support: none
    description: The returned plan lists every backup kept or deleted with the reason.
  idempotent:
    support: full
    description: A second prune finds nothing more to delete.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Fail when the newest verified backup of macro_trading is older than 26 hours
  tradeops.dr.pg_backup_catalog:
    backup_root: /var/backups/tradeops-dr/postgres
    database: macro_trading
    max_age_hours: 26

- name: Keep 14 days of backups (runbook 000, disk full)
  tradeops.dr.pg_backup_catalog:
    backup_root: /var/backups/tradeops-dr/postgres
    prune: true
    keep_days: 14
'''

RETURN = r'''
backups:
  description: Every backup found, newest first.
  returned: always
  type: list
  elements: dict
  sample: [{dump: /var/backups/tradeops-dr/postgres/2026-11-23/trading_20261123T020000Z.pgdump, database: trading,
            status: verified, kind: backup, created_at: "2026-11-23T02:00:00Z", age_hours: 1.5, size: 1048576}]
newest:
  description: The newest backup (of O(database) when given).
  returned: always
  type: dict
newest_verified:
  description: The newest verified backup (of O(database) when given); empty when there is none.
  returned: always
  type: dict
stale:
  description: Whether the newest verified backup is older than O(max_age_hours) (or missing).
  returned: when O(max_age_hours) is given
  type: bool
message:
  description: The staleness finding in words.
  returned: when O(max_age_hours) is given
  type: str
  sample: the newest verified backup of trading is 3.2 hours old (limit 26)
retention:
  description: Each backup with keep (bool) and the reason, and the paths deleted.
  returned: when O(prune=true)
  type: dict
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _backup


def view(entry, now):
    if not entry:
        return {}
    return dict(dump=entry['dump'], manifest=entry['manifest'], database=entry['database'], status=entry['status'],
                kind=entry['kind'], created_at=_backup.iso(entry['created_at']), size=entry['size'],
                age_hours=round((now - entry['created_at']) / 3600.0, 2))


def main():
    module = AnsibleModule(argument_spec=dict(
        backup_root=dict(type='path', required=True),
        database=dict(type='str'),
        prune=dict(type='bool', default=False),
        keep_days=dict(type='int', default=30),
        max_age_hours=dict(type='float'),
    ), supports_check_mode=True)
    p = module.params
    if p['max_age_hours'] is not None and not p['database']:
        module.fail_json(msg='max_age_hours needs database (the staleness of which database?)')
    if p['keep_days'] < 1:
        module.fail_json(msg='keep_days must be at least 1, not %d' % p['keep_days'])
    now = time.time()
    entries = [e for e in _backup.catalog(p['backup_root'])
               if not p['database'] or e['database'] in (p['database'], None)]
    result = dict(backups=[view(e, now) for e in entries],
                  newest=view(_backup.newest(entries, p['database']), now),
                  newest_verified=view(_backup.newest(entries, p['database'], status='verified'), now))
    changed = False
    if p['prune']:
        plan = _backup.retention_plan(entries, p['keep_days'], now)
        deleted = []
        if not module.check_mode:
            for entry, keep, _reason in plan:
                if not keep:
                    try:
                        deleted += _backup.delete_backup(entry)
                    except (_backup.BackupError, IOError, OSError) as exc:
                        module.fail_json(exception=traceback.format_exc(), msg='retention stopped at %s: %s' % (entry['manifest'], exc),
                                         retention=dict(deleted=deleted), **result)
        goes = [view(e, now) for e, keep, _r in plan if not keep]
        changed = bool(goes)
        result['retention'] = dict(
            keep_days=p['keep_days'], deleted=deleted, would_delete=goes if module.check_mode else [],
            plan=[dict(view(e, now) if e['manifest'] else dict(dump=e['dump'], status=e['status']), keep=keep,
                       reason=reason) for e, keep, reason in plan])
        if not module.check_mode:
            result['backups'] = [view(e, now) for e in _backup.catalog(p['backup_root'])
                                 if not p['database'] or e['database'] in (p['database'], None)]
    if p['max_age_hours'] is not None:
        fresh, message, _entry = _backup.staleness(entries, p['database'], p['max_age_hours'], now)
        result.update(stale=not fresh, message=message)
        if not fresh:
            module.fail_json(msg='STALE BACKUP: %s' % message, changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
