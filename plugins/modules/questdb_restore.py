#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: questdb_restore
short_description: Put a QuestDB checkpoint backup in place of a stopped QuestDB, keeping the current data aside
version_added: 0.1.0
description:
  - Restores a backup made by M(tradeops.dr.questdb_checkpoint) - checks that its QuestDB major
    version matches O(server_version), verifies every file against its MANIFEST.json, moves the
    current root folder aside (renamed, never deleted), copies the backup in its place and
    creates the C(_restore) trigger file that QuestDB documents, so that QuestDB completes the
    restore when it starts.
  - Refuses while QuestDB still answers on its health port - stop it first (the role does).
    In check mode every check runs but a running QuestDB is expected (nothing was stopped), so
    the role checks a backup with this module in check mode before it stops anything.
  - After the start, a C(_restore) file still present means QuestDB could not restore; the role
    reports it.
options:
  root:
    description: QuestDB root folder to restore into.
    type: path
    required: true
  backup:
    description: Folder of the backup (holds MANIFEST.json and the copied root folder).
    type: path
    required: true
  server_version:
    description: Version of the QuestDB that will start on the restored data (V(8.1.2)); the major versions must match.
    type: str
    required: true
extends_documentation_fragment:
  - tradeops.dr.questdb
attributes:
  check_mode:
    support: full
    description: Checks version and checksums and lists what a restore would do; moves and copies nothing, and
      does not require QuestDB to be stopped.
  diff_mode:
    support: none
    description: The moved-aside folder is the record of what was replaced.
  idempotent:
    support: none
    description: Every run restores again (the previous data is kept aside each time).
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Restore QuestDB from a checkpoint backup
  tradeops.dr.questdb_restore:
    root: /var/lib/questdb
    backup: /backups/questdb/questdb-20261123T063906
    server_version: 8.1.2
'''

RETURN = r'''
restore:
  description: What was done.
  returned: always
  type: dict
  contains:
    moved_aside:
      description: Where the previous root folder was moved.
      type: str
      returned: when a restore was done
      sample: /var/lib/questdb.before-restore-20261123T070000
    files:
      description: Files restored (all verified against the manifest).
      type: int
      sample: 42
    row_counts:
      description: Row counts per table that the backup recorded just before its checkpoint (a lower bound of
        what the backup holds); empty for backups made before they were recorded.
      type: dict
      sample: {trades: 1000}
    would:
      description: In check mode, the steps a restore would take.
      type: list
      elements: str
      returned: in check mode
    questdb_running:
      description: Whether QuestDB answered on its health port (in check mode the role has not stopped it yet).
      type: bool
    trigger:
      description: The C(_restore) trigger file created.
      type: str
      sample: /var/lib/questdb/_restore
    backup_version:
      description: QuestDB version recorded in the backup.
      type: list
      elements: int
      sample: [8, 1, 2]
'''

import json
import os
import shutil
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _questdb


def main():
    argument_spec = _questdb.questdb_common_argument_spec()
    argument_spec.update(
        root=dict(type='path', required=True),
        backup=dict(type='path', required=True),
        server_version=dict(type='str', required=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    root = p['root'].rstrip('/')
    result = dict()
    try:
        with open(os.path.join(p['backup'], 'MANIFEST.json')) as handle:
            manifest = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='backup %s has no readable MANIFEST.json: %s; nothing was changed' % (p['backup'], exc))
    backup_version = manifest.get('questdb_version') or []
    result['backup_version'] = backup_version
    try:
        server_major = int(str(p['server_version']).split('.', maxsplit=1)[0])
    except ValueError:
        module.fail_json(exception=traceback.format_exc(), msg='server_version %r is not a version like 8.1.2' % p['server_version'])
    if not backup_version or int(backup_version[0]) != server_major:
        module.fail_json(restore=result, msg=(
            'backup %s was made by QuestDB %s; the server is QuestDB %s: major versions differ, refused before any '
            'change' % (p['backup'], '.'.join(str(v) for v in backup_version) or 'of unknown version',
                        p['server_version'])))
    data = os.path.join(p['backup'], os.path.basename(manifest.get('source', '').rstrip('/')))
    try:
        entries = manifest['files']
        for rel in entries:
            _manifest.safe_relpath(rel)
        actual = _manifest.file_entries(data) if os.path.isdir(data) else {}
    except (KeyError, ValueError) as exc:
        module.fail_json(exception=traceback.format_exc(), restore=result, msg='backup %s has a bad manifest: %s; nothing was changed' % (p['backup'], exc))
    if actual != entries:
        bad = sorted(set(entries) ^ set(actual)) + sorted(k for k in entries if k in actual and entries[k] != actual[k])
        module.fail_json(restore=result, msg=(
            'backup %s does not match its manifest (%d file(s) missing, extra or changed: %s); nothing was changed' % (
                p['backup'], len(bad), ', '.join(bad[:10]))))
    result['files'] = len(entries)
    result['row_counts'] = manifest.get('row_counts') or {}
    healthy, detail = _questdb.QuestDBClient(p).health()
    result['questdb_running'] = bool(healthy or 'HTTP' in detail)
    aside = '%s.before-restore-%s' % (root, time.strftime('%Y%m%dT%H%M%S', time.gmtime()))
    if module.check_mode:
        result['would'] = (['stop QuestDB (%s)' % detail] if result['questdb_running'] else []) + [
            'move %s to %s' % (root, aside), 'copy %s to %s' % (data, root), 'create %s/_restore' % root]
        module.exit_json(changed=True, restore=result)
    if result['questdb_running']:
        module.fail_json(restore=result, msg='QuestDB still answers (%s): stop it before a restore' % detail)
    if os.path.exists(root):
        os.rename(root, aside)
        result['moved_aside'] = aside
    shutil.copytree(data, root)
    if _manifest.file_entries(root) != entries:
        module.fail_json(changed=True, restore=result, msg='the restored copy in %s does not match the manifest; the '
                         'previous data is in %s' % (root, aside))
    trigger = os.path.join(root, '_restore')
    os.close(_manifest.create_private(trigger, 0o644))
    result['trigger'] = trigger
    module.exit_json(changed=True, restore=result)


if __name__ == '__main__':
    main()
