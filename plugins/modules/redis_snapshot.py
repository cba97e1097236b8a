#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: redis_snapshot
short_description: Preserve Redis's state before a recovery touches it - the RDB, the AOF folder and the ledger kept aside
version_added: 0.2.0
description:
  - Runbook 004's second principle, "preserve state" - before a recovery restarts Redis, repairs its append-only
    file or replays the ledger into it, this module keeps a copy of what is there now - the RDB file, every file
    of the AOF folder (or the single AOF) and the SQLite ledger - in a new folder below O(backup_dir), each with
    its sha256 in C(MANIFEST.json), verified after the copy.
  - When Redis answers, a C(BGSAVE) is made first and waited for, so that the RDB holds what memory held; a
    Redis that is down is copied as its files are.
  - The ledger is copied with SQLite's online backup, consistent even while a writer uses it.
  - An identical earlier copy is reused, never overwritten (the same files kept twice change nothing).
extends_documentation_fragment:
  - tradeops.dr.redis
options:
  config_file:
    description: The server's C(redis.conf), which names the data folder, the RDB and the AOF.
    type: path
    required: true
  ledger_path:
    description: The SQLite ledger the Redis recovery replays from; copied beside the server's files.
    type: path
  backup_dir:
    description: Folder below which each snapshot gets a folder of its own (created 0700).
    type: path
    required: true
  bgsave:
    description: When Redis answers, C(BGSAVE) first and wait until it is written.
    type: bool
    default: true
  bgsave_timeout:
    description: Seconds to wait for the C(BGSAVE); a save that does not finish in time fails the module.
    type: int
    default: 60
  reason:
    description: Why the snapshot is taken (recorded in its manifest).
    type: str
    default: before a recovery touches Redis
attributes:
  check_mode:
    support: full
    description: Names the files it would copy; saves and copies nothing.
  diff_mode:
    support: none
    description: The result names the snapshot's folder and files.
  idempotent:
    support: full
    description: Files identical to an earlier snapshot are not copied again (C(reused)).
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Keep Redis's state aside before the recovery touches it
  tradeops.dr.redis_snapshot:
    config_file: /etc/redis/redis.conf
    ledger_path: /srv/trading/ledger.db
    backup_dir: /var/backups/tradeops-dr/redis-snapshots
    login_port: 6379
    login_password: "{{ redis_password }}"
'''

RETURN = r'''
snapshot:
  description: What was kept - its folder, each file with sha256 and size, the total bytes, whether Redis saved
    first (C(bgsave) - V(saved), V(not reachable), V(skipped)) and whether an identical earlier copy was reused.
  returned: always
  type: dict
  sample:
    folder: /var/backups/tradeops-dr/redis-snapshots/redis-20261205T140000
    files: {"dump.rdb": {"sha256": "9f2c...", "size": 10240}}
    bytes: 10240
    bgsave: saved
    reused: false
'''

import os
import shutil
import sqlite3
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _redis


def bgsave(client, timeout):
    """BGSAVE and wait until LASTSAVE moves (a save already running is waited for too)."""
    before = client.lastsave()
    try:
        client.bgsave()
    except Exception as exc:  # noqa: BLE001 - "Background save already in progress" is waited for
        if 'in progress' not in str(exc):
            raise
    deadline = time.time() + timeout
    while time.time() < deadline:
        if client.lastsave() != before and client.info('persistence').get('rdb_bgsave_in_progress') in (0, '0'):
            status = client.info('persistence').get('rdb_last_bgsave_status')
            if status != 'ok':
                raise _redis.RedisDRError('BGSAVE finished with status %s' % status)
            return
        time.sleep(0.1)
    raise _redis.RedisDRError('BGSAVE did not finish within %d s' % timeout)


def gather(data_dir, conf, ledger_copy):
    """The files to keep: {name in the snapshot: source path}."""
    dirname, filename = conf.get('appenddirname', 'appendonlydir'), conf.get('appendfilename', 'appendonly.aof')
    files = {}
    rdb = os.path.join(data_dir, conf.get('dbfilename', 'dump.rdb'))
    if os.path.isfile(rdb):
        files[os.path.basename(rdb)] = rdb
    aof_dir = os.path.join(data_dir, dirname)
    if os.path.isdir(aof_dir):
        for name in sorted(os.listdir(aof_dir)):
            if os.path.isfile(os.path.join(aof_dir, name)):
                files[os.path.join(dirname, name)] = os.path.join(aof_dir, name)
    elif os.path.isfile(os.path.join(data_dir, filename)):
        files[filename] = os.path.join(data_dir, filename)
    if ledger_copy:
        files['ledger/' + ledger_copy[0]] = ledger_copy[1]
    return files


def main():
    argument_spec = _redis.redis_common_argument_spec()
    argument_spec.update(
        config_file=dict(type='path', required=True),
        ledger_path=dict(type='path'),
        backup_dir=dict(type='path', required=True),
        bgsave=dict(type='bool', default=True),
        bgsave_timeout=dict(type='int', default=60),
        reason=dict(type='str', default='before a recovery touches Redis'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        conf = _redis.parse_redis_conf(p['config_file'])
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read redis.conf %s: %s. Nothing was copied.' % (p['config_file'], exc),
                         exception=traceback.format_exc())
    data_dir = _redis.aof_location(conf, p['config_file'])[0]
    if p['ledger_path'] and not os.path.isfile(p['ledger_path']):
        module.fail_json(msg='the ledger %s does not exist: nothing proves what Redis held. Nothing was copied.'
                         % p['ledger_path'])
    saved = 'skipped'
    if p['bgsave'] and not module.check_mode:
        _redis.ensure_library(module)
        try:
            client = _redis.connect(p)
        except _redis.RedisUnreachable:
            client, saved = None, 'not reachable'
        except _redis.RedisDRError as exc:
            module.fail_json(msg='%s. Nothing was copied.' % exc, exception=traceback.format_exc())
        if client is not None:
            try:
                bgsave(client, p['bgsave_timeout'])
                saved = 'saved'
            except Exception as exc:  # noqa: BLE001 - whatever stops the save stops the recovery
                module.fail_json(msg='Redis at %s could not save its data first: %s. Nothing was copied; the '
                                     'recovery must not touch Redis without it.' % (_redis.endpoint(p), exc),
                                 exception=traceback.format_exc())
    if module.check_mode:
        files = gather(data_dir, conf, ('ledger.db', p['ledger_path']) if p['ledger_path'] else None)
        module.exit_json(changed=bool(files), snapshot=dict(folder=None, would_copy=sorted(files), bgsave=saved))
    staging = tempfile.mkdtemp(prefix='redis-snapshot-')
    try:
        ledger_copy = None
        if p['ledger_path']:
            target = os.path.join(staging, os.path.basename(p['ledger_path']))
            src = sqlite3.connect('file:%s?mode=ro' % p['ledger_path'], uri=True)
            dst = sqlite3.connect(target)
            with dst:
                src.backup(dst)
            src.close()
            dst.close()
            ledger_copy = (os.path.basename(p['ledger_path']), target)
        files = gather(data_dir, conf, ledger_copy)
        if not files:
            module.fail_json(msg='no RDB, no AOF and no ledger found in %s: nothing to keep, and nothing proves what '
                                 'Redis held - check config_file and ledger_path' % data_dir)
        # one folder holding the server's files as they are named in the snapshot
        tree = os.path.join(staging, 'redis')
        for name, source in files.items():
            dest = os.path.join(tree, name)
            if not os.path.isdir(os.path.dirname(dest)):
                os.makedirs(os.path.dirname(dest), mode=0o700)
            with open(source, 'rb') as fin, open(dest, 'wb') as fout:
                while True:
                    chunk = fin.read(1 << 20)
                    if not chunk:
                        break
                    fout.write(chunk)
        _manifest.private_dirs(p['backup_dir'])
        folder, entries, reused = _manifest.copy_aside(tree, p['backup_dir'], 'redis-', p['reason'])
    except (IOError, OSError, sqlite3.Error) as exc:
        module.fail_json(msg='the snapshot of Redis could not be kept in %s: %s. The recovery must not touch Redis '
                             'without it.' % (p['backup_dir'], exc), exception=traceback.format_exc())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    module.exit_json(changed=not reused, snapshot=dict(
        folder=folder, files=entries, bytes=sum(int(e.get('size') or 0) for e in entries.values()), bgsave=saved,
        reused=reused))


if __name__ == '__main__':
    main()
