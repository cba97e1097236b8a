#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fileset_catalog
short_description: List and verify file-state backup sets and alert on stale backups
version_added: 0.1.0
description:
  - Lists the sets below O(backup_root), newest first.
  - With O(verify=true), checks every file of every set (or of O(backup_id)) against its sha256 and size; a set
    with missing metadata, missing files, unsafe paths or changed files is reported and the task fails.
  - With O(max_age_hours), fails when the newest set of O(type) (any type by default) is older, or when there is
    none (runbook 002, scenario 4).
options:
  backup_root:
    description: Folder holding the backup sets.
    type: path
    required: true
  verify:
    description: Check every file's checksum.
    type: bool
    default: false
  backup_id:
    description: Verify only this set.
    type: str
  type:
    description: Staleness looks at sets of this type only (a full set counts for every type).
    type: str
    choices: [full, config, state, data]
  max_age_hours:
    description: Fail when the newest matching set is older than this.
    type: float
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Read-only.
  idempotent:
    support: full
    description: Read-only.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Verify every backup set and fail when the newest is older than 26 hours
  tradeops.dr.fileset_catalog:
    backup_root: /var/backups/tradeops-dr/files
    verify: true
    max_age_hours: 26
'''

RETURN = r'''
sets:
  description: Every set, newest first, with its problems when verified.
  returned: always
  type: list
  elements: dict
  sample: [{backup_id: full_20261123T020000Z, type: full, status: created, files_count: 12, problems: []}]
newest:
  description: The newest set (of O(type) when given).
  returned: always
  type: dict
problems:
  description: Every problem found by verification, prefixed with its set.
  returned: always
  type: list
  elements: str
message:
  description: The staleness finding.
  returned: when O(max_age_hours) is given
  type: str
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _fileset


def main():
    module = AnsibleModule(argument_spec=dict(
        backup_root=dict(type='path', required=True),
        verify=dict(type='bool', default=False),
        backup_id=dict(type='str'),
        type=dict(type='str', choices=['full', 'config', 'state', 'data']),
        max_age_hours=dict(type='float'),
    ), supports_check_mode=True)
    p = module.params
    sets = _fileset.catalog(p['backup_root'])
    problems = []
    for s in sets:
        if s['status'] == 'incomplete':
            s['problems'] = [s.pop('problem')]
        elif p['verify'] and (not p['backup_id'] or s['backup_id'] == p['backup_id']):
            _metadata, s['problems'] = _fileset.verify(s['dir'])
        problems += ['%s: %s' % (s['backup_id'], x) for x in s.get('problems', [])
                     if p['verify'] and (not p['backup_id'] or s['backup_id'] == p['backup_id'])]
    wanted = [s for s in sets if s['status'] != 'incomplete' and (
        not p['type'] or s['type'] in (p['type'], 'full', 'post-restore'))]
    result = dict(sets=sets, newest=wanted[0] if wanted else {}, problems=problems)
    if p['backup_id'] and not any(s['backup_id'] == p['backup_id'] for s in sets):
        module.fail_json(msg='no backup set %s below %s' % (p['backup_id'], p['backup_root']), **result)
    if problems:
        module.fail_json(msg='backup verification failed: %s' % '; '.join(problems), **result)
    if p['max_age_hours'] is not None:
        if not wanted:
            module.fail_json(msg='STALE BACKUP: no %sbackup set below %s' % (
                (p['type'] + ' ') if p['type'] else '', p['backup_root']), **result)
        age = (time.time() - _fileset.parse_iso(wanted[0]['created_at'])) / 3600.0
        result['message'] = 'the newest backup set %s is %.1f hours old (limit %s)' % (
            wanted[0]['backup_id'], age, p['max_age_hours'])
        if age > p['max_age_hours']:
            module.fail_json(msg='STALE BACKUP: %s' % result['message'], **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
