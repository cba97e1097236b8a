#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: feed_failover
short_description: Make a data feed primary in the feed registry (YAML), keeping the old file aside
version_added: 0.1.0
description:
  - Runbook 004 (3.2) switches C(primary_feed) and C(backup_feed) in C(registry.yaml) by hand.
    This module sets C(primary_feed) to O(primary) and moves the previous primary to
    C(backup_feed), editing only those two lines (comments and everything else stay as they are).
  - Before writing, the current registry is copied aside with its checksum; the new content is
    parsed and checked before it replaces the file atomically.
requirements:
  - PyYAML on the managed host (Debian and Ubuntu - python3-yaml).
options:
  registry:
    description: The feed registry YAML file.
    type: path
    required: true
  primary:
    description: Feed that must be primary.
    type: str
    required: true
  backup_dir:
    description: Folder that receives the previous registry before a change.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Reports the change; writes nothing.
  diff_mode:
    support: full
    description: Shows the registry before and after.
  idempotent:
    support: full
    description: A registry whose primary is already O(primary) is left alone.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Yahoo is down - Moneycontrol becomes primary
  tradeops.dr.feed_failover:
    registry: /opt/trading/config/registry.yaml
    primary: moneycontrol
    backup_dir: /var/backups/tradeops-dr/feeds
'''

RETURN = r'''
previous:
  description: primary_feed and backup_feed before.
  returned: always
  type: dict
  sample: {primary_feed: yahoo, backup_feed: moneycontrol}
current:
  description: primary_feed and backup_feed now.
  returned: always
  type: dict
  sample: {primary_feed: moneycontrol, backup_feed: yahoo}
backup:
  description: Folder of the copy of the previous registry.
  returned: when changed
  type: str
  sample: /var/backups/tradeops-dr/feeds/registry-20261123T031500
'''

import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

try:
    import yaml
except ImportError:  # PyYAML comes with Ansible on the controller, not on every managed host
    yaml = None


def _set(text, key, value):
    pattern = re.compile(r'^(%s[ \t]*:[ \t]*)([^#\n]*?)([ \t]*(#.*)?)$' % re.escape(key), re.M)
    if len(pattern.findall(text)) != 1:
        raise ValueError('the registry must have exactly one top-level %s line' % key)
    return pattern.sub(lambda m: m.group(1) + value + m.group(3), text)


def main():
    module = AnsibleModule(argument_spec=dict(
        registry=dict(type='path', required=True),
        primary=dict(type='str', required=True),
        backup_dir=dict(type='path', required=True),
    ), supports_check_mode=True)
    if yaml is None:
        # found by the Molecule rehearsal: a host without PyYAML failed with "'NoneType' object has no
        # attribute 'YAMLError'" instead of saying what is missing
        module.fail_json(msg=missing_required_lib('PyYAML', reason='to read the feed registry') +
                         ' (Debian and Ubuntu: apt-get install python3-yaml). Nothing was changed.')
    p = module.params
    if not re.fullmatch(r'[A-Za-z0-9_.-]+', p['primary']):
        module.fail_json(msg='feed name %r is refused: letters, digits, _ . - only' % p['primary'])
    try:
        with open(p['registry']) as handle:
            text = handle.read()
        data = yaml.safe_load(text) or {}
    except (IOError, OSError, yaml.YAMLError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='cannot read the feed registry %s: %s' % (p['registry'], exc))
    previous = dict(primary_feed=data.get('primary_feed'), backup_feed=data.get('backup_feed'))
    if previous['primary_feed'] == p['primary']:
        module.exit_json(changed=False, previous=previous, current=previous)
    if p['primary'] not in (previous['backup_feed'],) and p['primary'] not in (data.get('feeds') or {}):
        module.fail_json(msg='feed %s is neither the backup_feed (%s) nor listed under feeds in %s' % (
            p['primary'], previous['backup_feed'], p['registry']), previous=previous)
    try:
        new = _set(_set(text, 'primary_feed', p['primary']), 'backup_feed', str(previous['primary_feed']))
        check = yaml.safe_load(new)
    except (ValueError, yaml.YAMLError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='the registry cannot be changed safely: %s' % exc, previous=previous)
    current = dict(primary_feed=check.get('primary_feed'), backup_feed=check.get('backup_feed'))
    if current != dict(primary_feed=p['primary'], backup_feed=previous['primary_feed']):
        module.fail_json(msg='the edited registry does not read back as intended: %s' % current, previous=previous)
    diff = dict(before=text, after=new, before_header=p['registry'], after_header=p['registry'])
    if module.check_mode:
        module.exit_json(changed=True, previous=previous, current=current, diff=diff)
    backup, _entries, _reused = _manifest.copy_aside(p['registry'], p['backup_dir'], 'registry-',
                                                     reason='feed failover to %s' % p['primary'])
    _manifest.write_text_atomic(p['registry'], new, os.stat(p['registry']).st_mode & 0o7777)
    module.exit_json(changed=True, previous=previous, current=current, backup=backup, diff=diff)


if __name__ == '__main__':
    main()
