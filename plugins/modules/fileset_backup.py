#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fileset_backup
short_description: Create a verified backup set of config, state and data files (runbook 002's recovery manager)
version_added: 0.1.0
description:
  - Copies the files below the roots of O(sources) for the categories of O(type) into
    C(<backup_root>/<type>_<stamp>/files/), checks every copy by sha256, and writes C(metadata.json) last - type,
    description, tags, created_at, status C(created), the roots, and every file's category, path, sha256 and size.
  - Symbolic links are not followed. A root that does not exist is recorded in C(missing_roots).
options:
  backup_root:
    description: Folder holding the backup sets.
    type: path
    required: true
  sources:
    description: Per category (C(config), C(state), C(data)), the files or folders to back up.
    type: dict
    required: true
  type:
    description: V(full) takes every category; V(config), V(state), V(data) one; V(pre-restore) and
      V(post-restore) are full sets taken around a restore.
    type: str
    choices: [full, config, state, data, pre-restore, post-restore]
    default: full
  description:
    description: Free text kept in the metadata.
    type: str
    default: ''
  tags:
    description: Tags kept in the metadata.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Counts the files it would copy; copies nothing.
  diff_mode:
    support: none
    description: Nothing is replaced; every run writes a new set.
  idempotent:
    support: none
    description: Every run writes a new set (a backup is a point in time).
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Full backup of the trading host's config, state and data
  tradeops.dr.fileset_backup:
    backup_root: /var/backups/tradeops-dr/files
    sources:
      config: [/srv/trading/config]
      state: [/srv/trading/state]
      data: [/srv/trading/data]
    description: nightly
    tags: [scheduled]
'''

RETURN = r'''
backup:
  description: The set written.
  returned: always
  type: dict
  contains:
    backup_id:
      description: Name of the set.
      type: str
      sample: full_20261123T020000Z
    dir:
      description: Folder of the set.
      type: str
      sample: /var/backups/tradeops-dr/files/full_20261123T020000Z
    files_count:
      description: Files in the set.
      type: int
      sample: 12
    size_bytes:
      description: Bytes in the set.
      type: int
      sample: 40960
    missing_roots:
      description: Configured roots that did not exist.
      type: list
      elements: str
      sample: []
'''

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _fileset


def main():
    module = AnsibleModule(argument_spec=dict(
        backup_root=dict(type='path', required=True),
        sources=dict(type='dict', required=True),
        type=dict(type='str', choices=list(_fileset.TYPES), default='full'),
        description=dict(type='str', default=''),
        tags=dict(type='list', elements='str', default=[]),
    ), supports_check_mode=True)
    p = module.params
    try:
        _fileset.check_sources(p['sources'])
        if module.check_mode:
            count = sum(len(_fileset.walk(r)) for c in _fileset.categories_of(p['type'])
                        for r in p['sources'].get(c) or [] if os.path.exists(r))
            module.exit_json(changed=True, backup=dict(files_count=count, backup_id=None, dir=None))
        set_dir, metadata = _fileset.create(p['backup_root'], p['sources'], p['type'], p['description'], p['tags'])
    except (_fileset.FilesetError, IOError, OSError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='backup set not written: %s' % exc)
    module.exit_json(changed=True, backup=dict(backup_id=metadata['backup_id'], dir=set_dir,
                                               files_count=metadata['files_count'], size_bytes=metadata['size_bytes'],
                                               missing_roots=metadata['missing_roots'],
                                               created_at=metadata['created_at']))


if __name__ == '__main__':
    main()
