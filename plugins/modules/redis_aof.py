#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: redis_aof
short_description: Check a Redis append-only file and repair it only when truncation is allowed
version_added: 0.1.0
description:
  - Finds the append-only file of a stopped Redis server (the multi-part AOF of Redis 7 with
    its manifest, or the single file of older servers) and checks it with C(redis-check-aof)
    without C(--fix), reporting per file where it stops being valid.
  - With O(state=repaired), a damaged AOF is first copied aside with a MANIFEST.json
    (sha256 and size of every file) and the copy verified; then, only when O(allow_truncate=true)
    and the cut stays within O(max_loss_bytes), C(redis-check-aof --fix) truncates it and the
    module reports the bytes lost. Otherwise it refuses, naming the broken file, the offset and
    the bytes a fix would cut.
  - Never run this against the files of a running server.
options:
  config_file:
    description: redis.conf of the server; gives C(dir), C(appenddirname) and C(appendfilename).
    type: path
  data_dir:
    description: The server's C(dir), when O(config_file) is not given.
    type: path
  appenddirname:
    description: Overrides C(appenddirname) (Redis 7 multi-part AOF folder).
    type: str
  appendfilename:
    description: Overrides C(appendfilename).
    type: str
  state:
    description:
      - V(checked) only checks and reports; it never writes.
      - V(repaired) copies a damaged AOF aside, then fixes it when allowed, else fails.
    type: str
    default: checked
    choices: [checked, repaired]
  allow_truncate:
    description: Allow C(redis-check-aof --fix), which cuts the AOF at the last valid command.
    type: bool
    default: false
  max_loss_bytes:
    description: Refuse a fix that would cut more than this many bytes; V(-1) sets no limit.
    type: int
    default: -1
  backup_dir:
    description: Folder that receives the safety copy of a damaged AOF. Required with O(state=repaired).
    type: path
  check_command:
    description: The C(redis-check-aof) executable.
    type: path
    default: redis-check-aof
attributes:
  check_mode:
    support: full
    description: Runs the read-only check and reports what a repair would do, failing as the real run would where it
      would refuse; copies and fixes nothing.
  diff_mode:
    support: none
    description: The module reports what it did in its return values, not as a diff.
  idempotent:
    support: full
    description: A valid AOF is left alone; an identical earlier safety copy is reused.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Check the AOF of a Redis server that will not start
  tradeops.dr.redis_aof:
    config_file: /etc/redis/redis.conf
  register: aof

- name: Keep the broken AOF aside and repair it, losing at most 4 KiB
  tradeops.dr.redis_aof:
    config_file: /etc/redis/redis.conf
    state: repaired
    allow_truncate: true
    max_loss_bytes: 4096
    backup_dir: /var/backups/redis-aof
'''

RETURN = r'''
aof:
  description: What the check found and what was done.
  returned: always
  type: dict
  contains:
    kind:
      description: V(multi-part), V(single) or V(absent).
      type: str
      sample: multi-part
    path:
      description: The manifest or file handed to C(redis-check-aof).
      type: str
      sample: /srv/redis/appendonlydir/appendonly.aof.manifest
    valid:
      description: Whether the AOF was valid before the module acted.
      type: bool
      sample: false
    damaged:
      description: Damaged files with size, ok_up_to (byte offset of the last valid command) and bytes_after_ok.
      type: list
      elements: dict
      sample: [{file: appendonly.aof.1.incr.aof, size: 2970, ok_up_to: 2914, ok_up_to_line: 564, bytes_after_ok: 56}]
    bytes_to_cut:
      description: Bytes a C(--fix) cuts.
      type: int
      sample: 56
    detail:
      description: The lines of C(redis-check-aof) that describe the damage.
      type: list
      elements: str
      sample: ["AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it."]
    backup:
      description: Folder of the safety copy (with MANIFEST.json).
      type: str
      returned: when a damaged AOF was copied aside
      sample: /var/backups/redis-aof/aof-20261123T031502
    backup_reused:
      description: True when an identical earlier safety copy was found and kept.
      type: bool
      returned: when a damaged AOF was copied aside
      sample: false
    repaired:
      description: Whether C(--fix) ran and the AOF now checks valid.
      type: bool
      sample: true
    bytes_lost:
      description: Bytes removed by the fix (total size before minus after).
      type: int
      returned: when repaired
      sample: 56
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _aof, _manifest, _pgbackrest, _redis


def _owner_of(path):
    """The account owning the AOF's folder when it is not root: redis-check-aof --fix (which truncates
    files) runs as that account, so that a link it planted among its AOF files never truncates root's."""
    import os
    import pwd
    try:
        uid = os.stat(os.path.dirname(os.path.abspath(path))).st_uid
        return pwd.getpwuid(uid).pw_name if uid != 0 else None
    except (OSError, KeyError):
        return None


def run_check(module, path, fix=False):
    cmd = [module.params['check_command']] + (['--fix'] if fix else []) + [path]
    owner = _owner_of(path)
    if owner:
        cmd = _pgbackrest.as_owner(cmd, owner)
    # --fix asks "Continue? [y/N]" on stdin before it truncates.
    rc, out, err = module.run_command(cmd, data='y' if fix else None, binary_data=False)
    return rc, out + err, cmd


def refusal_of(p, parsed, target, where, kept):
    """Why a damaged AOF is not repaired (the same words in check mode and for real), or None."""
    if parsed['rdb_damaged']:
        return ('the RDB part of the AOF is damaged (%s); --fix cannot repair it. The broken copy is kept in %s; '
                'restore the base file from a backup.' % (where, kept))
    if not p['allow_truncate']:
        return ('the AOF %s is damaged: %s. A repair with redis-check-aof --fix would cut %d bytes. The broken AOF is '
                'kept aside in %s. Nothing was repaired: set allow_truncate (redis_restart_aof_allow_truncate) to '
                'accept the loss, or restore the data from a backup or the ledger.' % (
                    target.check_path, where, parsed['bytes_to_cut'], kept))
    if 0 <= p['max_loss_bytes'] < parsed['bytes_to_cut']:
        return ('the AOF %s is damaged: %s. A fix would cut %d bytes, more than max_loss_bytes=%d. The broken AOF is '
                'kept aside in %s; nothing was repaired.' % (
                    target.check_path, where, parsed['bytes_to_cut'], p['max_loss_bytes'], kept))
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type='path'),
            data_dir=dict(type='path'),
            appenddirname=dict(type='str'),
            appendfilename=dict(type='str'),
            state=dict(type='str', default='checked', choices=['checked', 'repaired']),
            allow_truncate=dict(type='bool', default=False),
            max_loss_bytes=dict(type='int', default=-1),
            backup_dir=dict(type='path'),
            check_command=dict(type='path', default='redis-check-aof'),
        ),
        required_one_of=[('config_file', 'data_dir')],
        required_if=[('state', 'repaired', ('backup_dir',))],
        supports_check_mode=True,
    )
    p = module.params
    if p['config_file']:
        try:
            conf = _redis.parse_redis_conf(p['config_file'])
        except (IOError, OSError) as exc:
            module.fail_json(exception=traceback.format_exc(), msg='cannot read redis.conf %s: %s' % (p['config_file'], exc))
        data_dir, dirname, filename = _redis.aof_location(conf, p['config_file'])
        data_dir = p['data_dir'] or data_dir
    else:
        data_dir, dirname, filename = p['data_dir'], 'appendonlydir', 'appendonly.aof'
    target = _aof.AofTarget(data_dir, p['appenddirname'] or dirname, p['appendfilename'] or filename)
    result = dict(kind=target.kind, path=target.check_path, valid=True, damaged=[], bytes_to_cut=0, detail=[],
                  repaired=False)
    if target.kind == 'absent':
        result['detail'] = ['no append-only file in %s' % data_dir]
        module.exit_json(changed=False, aof=result)

    rc, text, cmd = run_check(module, target.check_path)
    if rc not in (0, 1):
        module.fail_json(msg='%s could not check the AOF (rc=%s): %s' % (' '.join(cmd), rc, text.strip()[-500:]),
                         aof=result)
    parsed = _aof.parse_check_output(text, rc)
    result.update(valid=parsed['valid'], damaged=parsed['damaged'], bytes_to_cut=parsed['bytes_to_cut'],
                  detail=parsed['detail'])
    if parsed['valid'] or p['state'] == 'checked':
        module.exit_json(changed=False, aof=result)

    where = '; '.join('%s valid up to byte %d of %d (%d bytes after it)' % (
        d['file'], d['ok_up_to'], d['size'], d['bytes_after_ok']) for d in parsed['damaged']) or '; '.join(
        parsed['detail'])
    if module.check_mode:
        # predict the real run: where it would refuse, check mode fails with the same reason
        result['would'] = ['copy the AOF aside to %s' % p['backup_dir']]
        refusal = refusal_of(p, parsed, target, where, '(kept aside in %s)' % p['backup_dir'])
        if refusal:
            module.fail_json(aof=result, msg='check mode: the real run would copy the AOF aside and stop: ' + refusal)
        result['would'].append('truncate with --fix, losing %d bytes' % parsed['bytes_to_cut'])
        module.exit_json(changed=True, aof=result)

    try:
        backup, _entries, reused = _manifest.copy_aside(
            target.copy_path, p['backup_dir'], 'aof-', reason='redis-check-aof: %s' % where)
    except (IOError, OSError) as exc:
        module.fail_json(msg='could not copy the damaged AOF aside to %s, nothing was repaired: %s' % (
            p['backup_dir'], exc), aof=result, exception=traceback.format_exc())
    result.update(backup=backup, backup_reused=reused)
    changed = not reused

    refusal = refusal_of(p, parsed, target, where, backup)
    if refusal:
        module.fail_json(changed=changed, aof=result, msg=refusal)

    size_before = sum(target.files().values())
    rc, text, cmd = run_check(module, target.check_path, fix=True)
    rc2, text2, _cmd = run_check(module, target.check_path)
    after = _aof.parse_check_output(text2, rc2)
    if rc != 0 or not after['valid']:
        module.fail_json(changed=True, aof=result, msg=(
            '%s did not leave a valid AOF (rc=%s): %s. The broken AOF is kept aside in %s.' % (
                ' '.join(cmd), rc, '; '.join(after['detail'] or [text.strip()[-300:]]), backup)))
    result.update(repaired=True, bytes_lost=size_before - sum(target.files().values()),
                  detail=parsed['detail'] + [line for line in text.splitlines() if 'truncated' in line.lower()])
    module.exit_json(changed=True, aof=result)


if __name__ == '__main__':
    main()
