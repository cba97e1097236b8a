#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: strategy_config_switch
short_description: The kill switch as a key in the strategies' own config files - read, engage, reset
version_added: 0.1.0
description:
  - Runbook 003 section 5 - a strategy that reads its kill switch from its config ("edit strategy config to reset,
    then restart"). The second backend of the kill_switch role beside the Redis hash - with the key engaged in the
    config, a strategy restarted by anyone (a service manager, a person) comes back halted.
  - Each file's format follows its extension (TOML, YAML, JSON). For TOML and YAML only the key's line is changed
    (comments and layout kept; a missing TOML key or a missing top-level YAML key is added); JSON is written again.
    The new text is parsed and must equal the old document with only that key changed, else nothing is written.
  - Before a file is changed its current version is copied aside below O(backup_dir) (with a manifest of checksums);
    the write is atomic (a temp file beside it, created with O_EXCL|O_NOFOLLOW, mode and owner of the old file set on
    the open descriptor, then renamed).
  - V(engage) sets every file it can and then fails naming those it could not (the others stay engaged). V(reset) is
    only the config side - the kill_switch role runs it after the Redis switch was reset with its confirmation.
options:
  action:
    description: V(status) reads each key; V(engage) sets it to true; V(reset) sets it to false.
    type: str
    required: true
    choices: [status, engage, reset]
  files:
    description: The strategies' config files.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The config file (absolute path).
        type: path
        required: true
      key:
        description: The dotted key of the switch (V(risk.kill_switch) is C(kill_switch) in the C([risk]) table).
        type: str
        required: true
  backup_dir:
    description: Where the previous version of each changed file is kept.
    type: path
    default: /var/backups/tradeops-dr/kill-switch-config
attributes:
  check_mode:
    support: full
    description: Says which files would change; nothing is written.
  diff_mode:
    support: none
    description: The result lists each file's value before and after.
  idempotent:
    support: full
    description: A key already at the wanted value is left as it is.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Engage the switch in the strategy's own config too
  tradeops.dr.strategy_config_switch:
    action: engage
    files:
      - {path: /opt/trading/config/config.toml, key: risk.kill_switch}
'''

RETURN = r'''
config_switch:
  description: Each file's switch, and whether every file holds it engaged.
  returned: always
  type: dict
  contains:
    files:
      description: path, key, before and after (true, false, or none when absent), changed, kept_aside, problem.
      type: list
      elements: dict
      sample: [{path: /opt/trading/config/config.toml, key: risk.kill_switch, before: false, after: true,
                changed: true, kept_aside: /var/backups/tradeops-dr/kill-switch-config/config.toml-20261206T031500}]
    engaged:
      description: Every file's key is true.
      type: bool
    engaged_in:
      description: The files whose key is true (after the action).
      type: list
      elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _config, _manifest


def read(path, key):
    """(text, format, value) of one file; ValueError naming what is wrong."""
    fmt = _config.detect_format(path)
    if not fmt:
        raise ValueError('cannot tell the format from the extension (.toml, .yaml, .yml, .json)')
    if not os.path.isfile(path) or os.path.islink(path):
        raise ValueError('not a regular file' if os.path.exists(path) else 'missing')
    with open(path, 'rb') as handle:
        text = handle.read().decode('utf-8')
    value = _config.get_key(_config.parse(text, fmt), key)
    if value is not None and not isinstance(value, bool):
        raise ValueError('%s is %r, not true or false: the switch is not a boolean here' % (key, value))
    return text, fmt, value


def main():
    module = AnsibleModule(argument_spec=dict(
        action=dict(type='str', required=True, choices=['status', 'engage', 'reset']),
        files=dict(type='list', elements='dict', required=True, options=dict(
            path=dict(type='path', required=True),
            key=dict(type='str', required=True, no_log=False),
        )),
        backup_dir=dict(type='path', default='/var/backups/tradeops-dr/kill-switch-config'),
    ), supports_check_mode=True)
    p = module.params
    if not p['files']:
        module.fail_json(msg='files names no config file: there is no switch to %s' % p['action'])
    relative = [f['path'] for f in p['files'] if not os.path.isabs(f['path'])]
    if relative:
        module.fail_json(msg='files: %s must be absolute paths; nothing was changed' % ', '.join(relative))
    want = {'engage': True, 'reset': False}.get(p['action'])
    out = []
    for f in p['files']:
        row = dict(path=f['path'], key=f['key'], before=None, after=None, changed=False, kept_aside=None, problem=None)
        out.append(row)
        try:
            text, fmt, value = read(f['path'], f['key'])
            row['before'] = row['after'] = value
            if want is None or value is want:
                continue
            new = _config.set_key(text, fmt, f['key'], want)
            row.update(changed=True, after=want)
            if module.check_mode:
                continue
            st = os.stat(f['path'])
            dest, _entries, _reused = _manifest.copy_aside(
                f['path'], p['backup_dir'], '%s-' % os.path.basename(f['path']),
                'before the kill switch %s set %s to %s' % (p['action'], f['key'], str(want).lower()))
            row['kept_aside'] = dest
            _manifest.write_text_atomic(f['path'], new, st.st_mode & 0o7777, (st.st_uid, st.st_gid))
        except (ValueError, UnicodeDecodeError, IOError, OSError) as exc:
            row.update(problem='%s: %s' % (f['path'], exc), changed=False, after=row['before'])
    result = dict(files=out, engaged=all(r['after'] is True for r in out),
                  engaged_in=[r['path'] for r in out if r['after'] is True])
    changed = any(r['changed'] for r in out)
    problems = [r['problem'] for r in out if r['problem']]
    if problems:
        done = [r['path'] for r in out if r['changed']]
        module.fail_json(msg='KILL SWITCH CONFIG %s: %s%s' % (
            'NOT READ' if want is None else 'NOT %s EVERYWHERE' % ('ENGAGED' if want else 'RESET'), '; '.join(problems),
            ('; set in %s' % ', '.join(done)) if done else ''), changed=changed, config_switch=result)
    module.exit_json(changed=changed, config_switch=result)


if __name__ == '__main__':
    main()
