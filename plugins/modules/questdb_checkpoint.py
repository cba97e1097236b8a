#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: questdb_checkpoint
short_description: Back up a live QuestDB with CHECKPOINT CREATE, a verified copy, and CHECKPOINT RELEASE
version_added: 0.1.0
description:
  - With O(state=backed_up) - checks free space first (QuestDB keeps superseded data files while a
    checkpoint is open, so its volume needs headroom, and the destination needs room for the copy),
    runs C(CHECKPOINT CREATE), copies the QuestDB root folder into a new folder below O(backup_dir)
    with a MANIFEST.json (sha256 and size of every file, the QuestDB version, the checkpoint time),
    verifies the copy, and runs C(CHECKPOINT RELEASE) - always, even when the copy failed.
  - A checkpoint that is already open (another backup running, or one left behind) is reported
    and left alone; O(state=released) releases it on purpose.
extends_documentation_fragment:
  - tradeops.dr.questdb
options:
  state:
    description: V(backed_up) makes a backup; V(released) releases an open checkpoint.
    type: str
    default: backed_up
    choices: [backed_up, released]
  root:
    description: QuestDB root folder (the one holding C(db) and C(conf)). Required with O(state=backed_up).
    type: path
  backup_dir:
    description: Folder that receives the backups. Required with O(state=backed_up).
    type: path
  min_free_bytes:
    description: Free space the QuestDB volume must keep while the checkpoint is open.
    type: int
    default: 1073741824
  tables:
    description:
      - Tables whose row counts go into the manifest (C(row_counts)), counted just before
        C(CHECKPOINT CREATE), so they are a lower bound of what the backup holds. A restore
        verifies the restored tables against them.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads the checkpoint status and the free space; creates, copies and releases nothing.
  diff_mode:
    support: none
    description: The backup folder and its manifest are the record.
  idempotent:
    support: none
    description: Every run with O(state=backed_up) makes a new backup.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Back up QuestDB
  tradeops.dr.questdb_checkpoint:
    root: /var/lib/questdb
    backup_dir: /backups/questdb
  register: qdb_backup

- name: Release a checkpoint left open by a crashed backup job
  tradeops.dr.questdb_checkpoint:
    state: released
'''

RETURN = r'''
checkpoint:
  description: What was done.
  returned: always
  type: dict
  contains:
    backup:
      description: Folder of the backup (its MANIFEST.json lists every file).
      type: str
      returned: when a backup was made
      sample: /backups/questdb/questdb-20261123T063906
    files:
      description: Number of files copied.
      type: int
      returned: when a backup was made
      sample: 42
    bytes:
      description: Bytes copied.
      type: int
      returned: when a backup was made
      sample: 1048576
    version:
      description: QuestDB version of the backup.
      type: list
      elements: int
      sample: [8, 1, 2]
    row_counts:
      description: Row counts of O(tables) taken just before C(CHECKPOINT CREATE), also in the manifest.
      type: dict
      sample: {trades: 1000}
    released:
      description: Whether C(CHECKPOINT RELEASE) ran.
      type: bool
      sample: true
'''

import json
import os
import shutil
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _questdb


def _tree_size(path):
    # lstat: a link (even a dangling one) is counted as itself, never followed and never a crash
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _s, files in os.walk(path) for f in files)


def main():
    argument_spec = _questdb.questdb_common_argument_spec()
    argument_spec.update(
        state=dict(type='str', default='backed_up', choices=['backed_up', 'released']),
        root=dict(type='path'),
        backup_dir=dict(type='path'),
        min_free_bytes=dict(type='int', default=1024 ** 3),
        tables=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'backed_up', ('root', 'backup_dir'))])
    try:
        for name in module.params['tables']:
            _questdb.check_table(name)
    except ValueError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    p = module.params
    client = _questdb.QuestDBClient(p)
    result = dict(released=False)
    try:
        status = client.checkpoint_status()
        version = list(client.version())
    except (_questdb.QuestDBError, _questdb.QuestDBUnreachable) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), checkpoint=result)
    result['version'] = version

    if p['state'] == 'released':
        if not status['in_progress']:
            module.exit_json(changed=False, checkpoint=result)
        if not module.check_mode:
            client.exec_sql('checkpoint release')
            result['released'] = True
        module.exit_json(changed=True, checkpoint=result)

    if status['in_progress']:
        module.fail_json(checkpoint=result, msg=(
            'a QuestDB checkpoint is already open (since %s): another backup may be running. It was left alone; '
            'release it with state=released once you are sure it is abandoned.' % status['started_at']))
    if not os.path.isdir(p['root']):
        module.fail_json(checkpoint=result, msg='QuestDB root %s is not a folder' % p['root'])
    size = _tree_size(p['root'])
    free_data = shutil.disk_usage(p['root']).free
    if not module.check_mode:
        _manifest.private_dirs(p['backup_dir'])
    dest_volume = p['backup_dir'] if os.path.isdir(p['backup_dir']) else os.path.dirname(p['backup_dir'].rstrip('/'))
    free_dest = shutil.disk_usage(dest_volume or '/').free
    if free_data < p['min_free_bytes']:
        module.fail_json(checkpoint=result, msg=(
            'the QuestDB volume of %s has %d bytes free, less than min_free_bytes=%d to keep while a checkpoint is '
            'open; no checkpoint was created' % (p['root'], free_data, p['min_free_bytes'])))
    if free_dest < size * 1.1:
        module.fail_json(checkpoint=result, msg=(
            'the backup destination %s has %d bytes free for a copy of %d bytes (plus 10%%); no checkpoint was '
            'created' % (p['backup_dir'], free_dest, size)))
    if module.check_mode:
        result.update(would=['checkpoint create', 'copy %d bytes of %s to %s' % (size, p['root'], p['backup_dir']),
                             'checkpoint release'])
        module.exit_json(changed=True, checkpoint=result)

    try:
        counts = dict((name, client.count(name)) for name in p['tables'])
    except (_questdb.QuestDBError, _questdb.QuestDBUnreachable) as exc:
        module.fail_json(exception=traceback.format_exc(), checkpoint=result, msg='cannot count the tables to back up (%s); no checkpoint was '
                         'created' % exc)
    try:
        client.exec_sql('checkpoint create')
    except _questdb.QuestDBError as exc:
        module.fail_json(exception=traceback.format_exc(), checkpoint=result, msg='CHECKPOINT CREATE failed, nothing was copied: %s' % exc)
    copy_error = None
    try:
        started = client.checkpoint_status().get('started_at')
        dest, entries, _reused = _manifest.copy_aside(p['root'], p['backup_dir'], 'questdb-',
                                                      reason='QuestDB checkpoint backup')
        with open(os.path.join(dest, 'MANIFEST.json')) as handle:
            manifest = json.load(handle)
        manifest.update(questdb_version=version, checkpoint_started_at=started, kind='questdb-checkpoint',
                        row_counts=counts)
        with open(os.path.join(dest, 'MANIFEST.json'), 'w') as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
        result.update(backup=dest, files=len(entries), bytes=sum(e['size'] for e in entries.values()),
                      row_counts=counts)
    except Exception as exc:
        copy_error = exc
    finally:
        try:
            client.exec_sql('checkpoint release')
            result['released'] = True
        except Exception as exc:
            module.fail_json(exception=traceback.format_exc(), changed=True, checkpoint=result, msg=(
                'CHECKPOINT RELEASE failed (%s): QuestDB keeps the checkpoint open until it is released; run this '
                'module with state=released%s' % (exc, '; the copy also failed: %s' % copy_error if copy_error else '')))
    if copy_error:
        module.fail_json(changed=True, checkpoint=result, msg='the copy failed (the checkpoint was released): %s' % (
            copy_error,), exception=''.join(traceback.format_exception(type(copy_error), copy_error, None)))
    module.exit_json(changed=True, checkpoint=result)


if __name__ == '__main__':
    main()
