#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fileset_restore
short_description: Restore config, state or data files from a verified backup set, after backing up the current state
version_added: 0.1.0
description:
  - Verifies the set first (every file's sha256; unsafe paths refused), then plans, per file, C(create),
    C(replace) or C(unchanged) against the roots configured NOW in O(sources) (never paths read from the
    metadata). In check mode (the dry run of runbook 002) it returns that plan and changes nothing.
  - Before writing, takes a C(pre-restore) backup set of the current files (O(pre_backup)); then writes each file
    atomically and checks it. Files present now but absent from the set are left in place and listed.
  - Reports the data-loss window (now minus the set's creation).
options:
  backup_root:
    description: Folder holding the backup sets.
    type: path
    required: true
  backup_id:
    description: The set to restore; V(latest) takes the newest set that holds every category of O(categories).
    type: str
    default: latest
  sources:
    description: Per category, the roots (files or folders) as configured now - where files are restored.
    type: dict
    required: true
  categories:
    description: What to restore (selective restore).
    type: list
    elements: str
    choices: [config, state, data]
    default: [config, state, data]
  pre_backup:
    description: Back up the current files (a C(pre-restore) set) before anything is written.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: The dry run - verification and the plan; nothing is written.
  diff_mode:
    support: none
    description: The plan lists every file with its action.
  idempotent:
    support: full
    description: Files already equal to the set are C(unchanged); a second restore writes nothing.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Dry run of a config-only restore from the newest set
  tradeops.dr.fileset_restore:
    backup_root: /var/backups/tradeops-dr/files
    sources: {config: [/srv/trading/config]}
    categories: [config]
  check_mode: true
'''

RETURN = r'''
restore:
  description: What was (or would be) restored.
  returned: always
  type: dict
  contains:
    backup_id:
      description: The set restored.
      type: str
      sample: full_20261123T020000Z
    plan:
      description: Every file of the chosen categories with C(create), C(replace) or C(unchanged).
      type: list
      elements: dict
      sample: [{path: /srv/trading/config/config.toml, action: replace}]
    written:
      description: Files written.
      type: list
      elements: str
    not_in_backup:
      description: Files present now below the roots but absent from the set (left in place).
      type: list
      elements: str
    pre_restore_backup:
      description: The set taken of the current files before writing.
      type: str
      sample: pre-restore_20261123T031500Z
    data_loss_window_s:
      description: Seconds between the set's creation and now.
      type: float
      sample: 4500.0
'''

import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _fileset


def choose(backup_root, backup_id, categories):
    sets = [s for s in _fileset.catalog(backup_root) if s['status'] != 'incomplete']
    if backup_id != 'latest':
        for s in sets:
            if s['backup_id'] == backup_id:
                return s
        raise _fileset.FilesetError('no backup set %s below %s' % (backup_id, backup_root))
    for s in sets:
        if s['type'] in ('pre-restore',):
            continue  # the state just before an earlier restore is evidence, not a recovery point
        if set(categories) <= set(_fileset.categories_of(s['type'])):
            return s
    raise _fileset.FilesetError('no backup set below %s holds %s' % (backup_root, ', '.join(categories)))


def main():
    module = AnsibleModule(argument_spec=dict(
        backup_root=dict(type='path', required=True),
        backup_id=dict(type='str', default='latest'),
        sources=dict(type='dict', required=True),
        categories=dict(type='list', elements='str', choices=list(_fileset.CATEGORIES),
                        default=list(_fileset.CATEGORIES)),
        pre_backup=dict(type='bool', default=True),
    ), supports_check_mode=True)
    p = module.params
    result = dict(written=[])
    try:
        chosen = choose(p['backup_root'], p['backup_id'], p['categories'])
        result['backup_id'] = chosen['backup_id']
        metadata, problems = _fileset.verify(chosen['dir'])
        if problems:
            raise _fileset.FilesetError('backup set %s failed verification: %s' % (
                chosen['backup_id'], '; '.join(problems)))
        plan = _fileset.plan_restore(chosen['dir'], metadata, p['sources'], p['categories'])
        result['plan'] = [dict(path=target, action=action, category=entry['category'])
                          for entry, _stored, target, action in plan]
        planned = set(target for _e, _s, target, _a in plan)
        result['not_in_backup'] = sorted(
            os.path.join(root, rel) if os.path.isdir(root) else root
            for c in p['categories'] for root in p['sources'].get(c) or [] if os.path.exists(root)
            for rel in _fileset.walk(root)
            if (os.path.join(root, rel) if os.path.isdir(root) else root) not in planned)
        created = _fileset.parse_iso(metadata['created_at'])
        result['data_loss_window_s'] = round(time.time() - created, 1)
        to_write = [x for x in plan if x[3] != 'unchanged']
        if module.check_mode or not to_write:
            module.exit_json(changed=bool(to_write), restore=result)
        if p['pre_backup']:
            _set_dir, pre = _fileset.create(p['backup_root'], p['sources'], 'pre-restore',
                                            'current state before restoring %s' % chosen['backup_id'],
                                            ['pre-recovery', 'automatic'])
            result['pre_restore_backup'] = pre['backup_id']
        result['written'] = _fileset.apply_restore(to_write)
    except (_fileset.FilesetError, IOError, OSError) as exc:
        module.fail_json(exception=traceback.format_exc(), restore=result, msg='%s; %s' % (
            exc, 'files written so far: %s' % result['written'] if result['written'] else 'nothing was changed'))
    module.exit_json(changed=True, restore=result)


if __name__ == '__main__':
    main()
