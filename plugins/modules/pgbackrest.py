#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pgbackrest
short_description: Continuous WAL archiving and physical backups of a PostgreSQL cluster with pgBackRest
version_added: 0.2.0
description:
  - Orchestrates pgBackRest (it does not reimplement it) for point-in-time recovery (runbook 001's RPOs).
  - V(configure) writes the stanza's configuration file (repository, retention, compression) and sets the
    server's C(archive_mode), C(archive_command) and C(archive_timeout) with C(ALTER SYSTEM); C(restart_required)
    says when C(archive_mode) waits for a restart (the role restarts through service control when allowed).
  - V(stanza_create) creates the stanza (idempotent), V(check) proves that archiving works (a WAL switch reaches
    the repository), V(backup) takes a V(full), V(diff) or V(incr) backup, V(info) reads C(info --output=json)
    into facts, V(verify) runs C(pgbackrest verify) and names the segments missing from the archive,
    V(expire) applies the retention (pgBackRest never expires the newest backup nor the WAL a kept backup needs).
  - V(restore_point) creates a named restore point (C(pg_create_restore_point)) before a risky step - a recovery
    target of C(timescale_restore_pitr_target_type=name). A server that does not answer, or does not archive, gets
    none (C(created=false), with the reason); that is not a failure.
  - pgBackRest runs as O(os_user), the cluster's owner (the server's C(archive-push) writes the same repository);
    the password reaches it in C(PGPASSWORD) only.
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [configure, stanza_create, check, backup, info, verify, expire, restore_point]
  pg_path:
    description: The cluster's data directory. Required for V(configure).
    type: path
  pg_socket_path:
    description: The server's Unix socket folder (pgBackRest connects there).
    type: path
  retention_full:
    description: Full backups kept (V(expire), and the C(expire) after every backup). At least 1.
    type: int
    default: 2
  compress_type:
    description: Compression of backups and archived WAL.
    type: str
    default: gz
    choices: [none, gz, lz4, zst, bz2]
  process_max:
    description: Processes for compression and transfer.
    type: int
    default: 1
  archive_timeout:
    description:
      - Seconds after which the server switches to a new WAL segment even when it is not full - the most WAL a
        crash can leave unarchived (the RPO of an idle-ish server). 0 leaves the server's setting alone.
    type: int
    default: 60
  backup_type:
    description: Type of V(backup).
    type: str
    default: full
    choices: [full, diff, incr]
  wal_segment_mb:
    description: The server's WAL segment size in MiB (to name missing segments).
    type: int
    default: 16
  restore_point_name:
    description: Name of the restore point of V(restore_point).
    type: str
extends_documentation_fragment:
  - tradeops.dr.postgres
  - tradeops.dr.pgbackrest
attributes:
  check_mode:
    support: full
    description: V(configure) reports the settings it would change; V(info), V(verify) and V(check) run (they only read); the others report what they would run.
  diff_mode:
    support: none
    description: Changes are reported in C(changes).
  idempotent:
    support: partial
    description: V(configure) and V(stanza_create) change nothing the second time; V(backup) always takes a backup.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Archive WAL to the repository at most 60 s late
  tradeops.dr.pgbackrest:
    action: configure
    stanza: trading
    config: /etc/pgbackrest/pgbackrest.conf
    repo_path: /var/lib/pgbackrest
    pg_path: /var/lib/postgresql/15/main
    pg_socket_path: /var/run/postgresql
    archive_timeout: 60
    login_user: postgres

- name: Nightly full backup
  tradeops.dr.pgbackrest:
    action: backup
    backup_type: full
    stanza: trading
    config: /etc/pgbackrest/pgbackrest.conf
'''

RETURN = r'''
changes:
  description: What V(configure) changed (file, server settings).
  returned: for configure
  type: list
  elements: str
  sample: [config file written, "archive_mode: off -> on"]
restart_required:
  description: True when C(archive_mode) changed and waits for a server restart.
  returned: for configure
  type: bool
pgbackrest:
  description: The stanza from C(info --output=json) - status, backups (oldest first) and archive ranges.
  returned: when the repository answered
  type: dict
  sample: {status: {code: 0, message: ok}, backups: [{label: 20261125-140000F, type: full, stop: 1795000000}], archive: []}
missing_wal:
  description: Archived WAL segments missing between the oldest backup's start and the end of each timeline.
  returned: for verify
  type: list
  elements: str
restore_point:
  description: For V(restore_point) - created (bool), name, lsn, or the reason none was made.
  returned: for restore_point
  type: dict
  sample: {created: true, name: tradeops-INC-42-before, lsn: 0/5000090}
output:
  description: pgBackRest's own lines for the command run (no secret travels in them).
  returned: for check, backup, verify, expire and stanza_create
  type: str
'''

import os
import shlex
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _pgbackrest, _postgres

ARCHIVE_SETTINGS = ('archive_mode', 'archive_command', 'archive_timeout')


def _settings(conn):
    rows = _postgres.query(conn, "SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY(%s)",
                           (list(ARCHIVE_SETTINGS),))
    return dict((r[0], (r[1], r[2])) for r in rows)


def _ensure_dir(path, uid, gid, mode, check):
    if os.path.isdir(path):
        return False
    if not check:
        os.makedirs(path, mode=mode)
        _manifest.set_owner_mode(path, mode, (uid, gid))
    return True


def configure(module, p):
    if p['retention_full'] < 1:
        raise _pgbackrest.PgBackRestError('retention_full must keep at least one full backup; nothing was changed')
    for name in ('repo_path', 'pg_path'):
        if not p[name]:
            raise _pgbackrest.PgBackRestError('%s is required for configure; nothing was changed' % name)
    uid, gid = _pgbackrest.owner_ids(p['os_user'])
    changes = []
    base = os.path.dirname(p['config'])
    log_path, lock_path = os.path.join(base, 'log'), os.path.join(base, 'lock')
    for path, mode in ((p['repo_path'], 0o750), (base, 0o750), (log_path, 0o750), (lock_path, 0o750)):
        if _ensure_dir(path, uid, gid, mode, module.check_mode):
            changes.append('folder %s created' % path)
    text = _pgbackrest.config_text(p['stanza'], p['repo_path'], p['pg_path'], p['login_port'], p['pg_socket_path'],
                                   p['login_user'], p['retention_full'], p['compress_type'], log_path, lock_path,
                                   p['process_max'])
    current = open(p['config']).read() if os.path.exists(p['config']) else None
    if current != text:
        changes.append('config file %s %s' % (p['config'], 'written' if current is None else 'updated'))
        if not module.check_mode:
            _manifest.write_text_atomic(p['config'], text, 0o640, (uid, gid))
    # PostgreSQL runs archive_command through /bin/sh: every word is quoted
    words = [shlex.quote(w) for w in (p['binary'], p['config'], p['stanza'])]
    command = "%s --config=%s --stanza=%s archive-push %%p" % tuple(words)
    wanted = dict(archive_mode='on', archive_command=command)
    if p['archive_timeout'] > 0:
        wanted['archive_timeout'] = str(p['archive_timeout'])
    conn = _postgres.Connection(p).connect()
    try:
        have = _settings(conn)
        restart = False
        for name, value in sorted(wanted.items()):
            setting, _pending = have.get(name, (None, False))
            # what the files say (ALTER SYSTEM writes postgresql.auto.conf): archive_command reads "(disabled)"
            # in pg_settings while archive_mode is off, and archive_mode keeps its old value until a restart
            rows = _postgres.query(conn, "SELECT setting FROM pg_file_settings WHERE name = %s ORDER BY seqno DESC "
                                   "LIMIT 1", (name,))
            configured = rows[0][0] if rows else None
            if configured != value and not (configured is None and setting == value):
                changes.append('%s: %s -> %s' % (name, configured if configured is not None else setting, value))
                if not module.check_mode:
                    with conn.cursor() as cur:  # name: one of ARCHIVE_SETTINGS; the value is quoted by psycopg2
                        cur.execute("ALTER SYSTEM SET %s TO %%s" % name, (value,))
            if name == 'archive_mode' and setting != value:
                restart = True
        if changes and not module.check_mode:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()
    return dict(changed=bool(changes), changes=changes, restart_required=restart)


def _run(p, args, timeout=None):
    rc, out, err = _pgbackrest.run(p['binary'], p['config'], p['stanza'], args, p['os_user'], p['login_password'],
                                   timeout)
    if rc != 0:
        raise _pgbackrest.PgBackRestError('pgbackrest %s failed (rc %d): %s'
                                          % (args[0], rc, _pgbackrest.error_text(out, err)))
    return (out + err).strip()


def verify(p):
    facts = _pgbackrest.info(p['binary'], p['config'], p['stanza'], p['os_user'])
    out = _run(p, ['verify'])
    missing = []
    if p['repo_path'] and facts['backups']:
        segments = _pgbackrest.archived_segments(p['repo_path'], p['stanza'])
        missing = _pgbackrest.missing_after(segments, facts['backups'][0]['wal_start'], 4096 // p['wal_segment_mb'])
    return facts, out, missing


def restore_point(module, p):
    name = p['restore_point_name']
    if not name or len(name) > 63:
        raise _pgbackrest.PgBackRestError('restore_point_name is required (at most 63 characters); nothing was changed')
    try:
        conn = _postgres.Connection(p).connect()
    except _postgres.PostgresError as exc:
        return dict(changed=False, restore_point=dict(created=False, name=name, reason='server not answering: %s' % exc))
    try:
        mode = _postgres.query(conn, 'SHOW archive_mode')[0][0]
        if mode == 'off':
            return dict(changed=False, restore_point=dict(created=False, name=name,
                                                          reason='archive_mode is off: a restore point would not be archived'))
        if module.check_mode:
            return dict(changed=True, restore_point=dict(created=False, name=name, reason='check mode'))
        lsn = _postgres.query(conn, 'SELECT pg_create_restore_point(%s)::text', (name,))[0][0]
    finally:
        conn.close()
    return dict(changed=True, restore_point=dict(created=True, name=name, lsn=lsn))


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(_pgbackrest.argument_spec())
    spec.update(
        action=dict(type='str', required=True,
                    choices=['configure', 'stanza_create', 'check', 'backup', 'info', 'verify', 'expire',
                             'restore_point']),
        pg_path=dict(type='path'), pg_socket_path=dict(type='path'), retention_full=dict(type='int', default=2),
        compress_type=dict(type='str', default='gz', choices=['none', 'gz', 'lz4', 'zst', 'bz2']),
        process_max=dict(type='int', default=1), archive_timeout=dict(type='int', default=60),
        backup_type=dict(type='str', default='full', choices=['full', 'diff', 'incr']),
        wal_segment_mb=dict(type='int', default=16),
        restore_point_name=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    action = p['action']
    try:
        _postgres.check_name(p['stanza'], 'stanza')
        if action == 'configure':
            module.exit_json(**configure(module, p))
        if action == 'info':
            module.exit_json(changed=False, pgbackrest=_pgbackrest.info(p['binary'], p['config'], p['stanza'],
                                                                        p['os_user']))
        if action == 'verify':
            facts, out, missing = verify(p)
            if missing:
                module.fail_json(msg='WAL missing from the archive of stanza %s: %s - a point-in-time recovery across '
                                 'it is impossible; take a new full backup' % (p['stanza'], ', '.join(missing[:10])),
                                 missing_wal=missing, pgbackrest=facts, output=out)
            module.exit_json(changed=False, pgbackrest=facts, missing_wal=missing, output=out)
        if action == 'restore_point':
            module.exit_json(**restore_point(module, p))
        if action == 'check':
            out = _run(p, ['check'], timeout=300)
            module.exit_json(changed=False, output=out)
        if module.check_mode:
            module.exit_json(changed=action != 'stanza_create', output='check mode: pgbackrest %s not run' % action)
        if action == 'stanza_create':
            before = os.path.isdir(os.path.join(p['repo_path'] or '', 'backup', p['stanza'])) if p['repo_path'] else None
            out = _run(p, ['stanza-create'], timeout=300)
            module.exit_json(changed=before is False, output=out)
        if action == 'backup':
            t0 = time.time()
            if p['retention_full'] < 1:
                raise _pgbackrest.PgBackRestError('retention_full must keep at least one full backup; nothing was changed')
            # pgBackRest expires after each backup: with this run's retention, not only the file's
            out = _run(p, ['backup', '--type=%s' % p['backup_type'],
                           '--repo1-retention-full=%d' % p['retention_full']], timeout=None)
            facts = _pgbackrest.info(p['binary'], p['config'], p['stanza'], p['os_user'])
            module.exit_json(changed=True, output=out, seconds=round(time.time() - t0, 2), pgbackrest=facts,
                             backup=facts['backups'][-1] if facts['backups'] else None)
        if action == 'expire':
            before = _pgbackrest.info(p['binary'], p['config'], p['stanza'], p['os_user'])
            if p['retention_full'] < 1:
                raise _pgbackrest.PgBackRestError('retention_full must keep at least one full backup; nothing was changed')
            out = _run(p, ['expire', '--repo1-retention-full=%d' % p['retention_full']], timeout=600)
            after = _pgbackrest.info(p['binary'], p['config'], p['stanza'], p['os_user'])
            gone = sorted(set(b['label'] for b in before['backups']) - set(b['label'] for b in after['backups']))
            module.exit_json(changed=bool(gone), expired=gone, output=out, pgbackrest=after)
    except (_pgbackrest.PgBackRestError, _postgres.PostgresError, KeyError, OSError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))


if __name__ == '__main__':
    main()
