#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_verify
short_description: Prove a database backup complete - checksums, pg_restore --list and a test restore whose row counts must equal the manifest
version_added: 0.1.0
description:
  - Checks every file of a backup against its manifest (size and sha256), reads the dump's table of contents with
    C(pg_restore --list), refuses a dump made by a newer pg_dump than the local pg_restore, and with
    O(test_restore=true) restores it into a scratch database (dropped afterwards) whose exact row counts must
    equal the manifest's.
  - Writes the outcome into the manifest - status C(verified) only when every check passed, C(failed) otherwise
    (and the task fails, saying why).
  - With O(create_manifest=true), a dump that has no manifest (made by another tool) gets one built from the
    dump itself - checksums, versions, extensions and the TimescaleDB version read from the dump's catalog -
    with O(expected_row_counts) as the row counts a test restore must reproduce.
options:
  backup:
    description: The dump (C(.pgdump)) or its manifest (C(.manifest.json)).
    type: path
    required: true
  test_restore:
    description: Restore into a scratch database C(<database>__verify_<stamp>) and compare row counts; the scratch
      database is dropped afterwards.
    type: bool
    default: false
  jobs:
    description: C(pg_restore -j) of the test restore (TimescaleDB dumps always restore with one job).
    type: int
    default: 2
  force:
    description: Run every check again even when the manifest already says C(verified).
    type: bool
    default: false
  create_manifest:
    description: Build a manifest for a dump that has none (status C(created), origin C(adopted)); its
      C(created_at) is the time in the dump's own header (C(Archive created at)), not the file's modification time.
    type: bool
    default: false
  expected_row_counts:
    description: Row counts (C(schema.table) to count) for an adopted dump; what its source held.
    type: dict
extends_documentation_fragment:
  - tradeops.dr.postgres
attributes:
  check_mode:
    support: partial
    description: Can run in check mode.
    details: Checksums and the table of contents are checked (read-only); no test restore, the manifest is not
      written.
  diff_mode:
    support: none
    description: The manifest's C(verification) block records each run.
  idempotent:
    support: full
    description: A backup already verified (with a test restore when one is asked) is checked again only for its
      checksums and reported unchanged.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Verify last night's backup with a real test restore
  tradeops.dr.pg_backup_verify:
    backup: /var/backups/tradeops-dr/postgres/2026-11-23/trading_20261123T020000Z.pgdump
    test_restore: true

- name: Adopt a dump made by another tool, with the row counts its source held
  tradeops.dr.pg_backup_verify:
    backup: /srv/dumps/srcdb.pgdump
    create_manifest: true
    expected_row_counts: {public.metrics: 100000, public.positions: 3}
'''

RETURN = r'''
verification:
  description: What was checked and found.
  returned: always
  type: dict
  contains:
    status:
      description: C(verified) or C(failed) (C(created) for an adopted dump not yet verified, in check mode).
      type: str
      sample: verified
    problems:
      description: Every failed check, in words.
      type: list
      elements: str
      sample: ["trading_20261123T020000Z.pgdump does not match its sha256 in the manifest (corrupted or replaced)"]
    toc_entries:
      description: Entries of the dump's table of contents.
      type: int
      sample: 27
    extensions:
      description: Extensions the dump creates, with the versions the dump names.
      type: dict
      sample: {timescaledb: "2.28.3"}
    pg_dump_version:
      description: Version of the pg_dump that made the dump.
      type: str
      sample: 15.18 (Debian 15.18-0+deb12u1)
    test_restore:
      description: Scratch database, row counts found and seconds taken, when a test restore ran.
      type: dict
      sample: {database: trading__verify_20261123t021500z, seconds: 3.2, row_counts: {public.trades: 5000}}
    manifest:
      description: Path of the manifest.
      type: str
      sample: /var/backups/tradeops-dr/postgres/2026-11-23/trading_20261123T020000Z.manifest.json
'''

import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _backup, _manifest, _pgdump, _postgres, _timescaledb


def adopt(conn, dump_path, expected_row_counts):
    """A manifest for a dump made elsewhere: everything the dump itself can prove."""
    info = _pgdump.inspect_dump(conn, dump_path)
    name = os.path.basename(dump_path)
    database = info.get('dbname') or name.split('.')[0]
    extensions = dict((ext, None) for ext in info['extensions'])
    extensions.update(info['extension_versions'])
    # the dump's own header says when it was made; a copied file's mtime says only when it was copied
    created = _pgdump.dump_created_at(info) or os.path.getmtime(dump_path)
    return dict(
        format=_backup.FORMAT, kind='backup', origin='adopted', database=_postgres.check_name(database),
        created_at=_backup.iso(created), status='created', dump=name,
        files={name: dict(_manifest.file_entries(dump_path)[name], kind='dump')},
        server_version=info.get('server_version'), pg_dump_version=info.get('pg_dump_version'),
        pg_dump_major=_postgres.major_of(info.get('pg_dump_version')), extensions=extensions,
        row_counts=dict(expected_row_counts) if expected_row_counts else None, toc_entries=info.get('toc_entries'),
        verification=None)


def dump_checks(conn, dump_path, manifest):
    """(info, problems) from pg_restore --list and the versions."""
    problems = []
    try:
        info = _pgdump.inspect_dump(conn, dump_path)
    except _postgres.PostgresError as exc:
        return None, [str(exc)]
    newer = _pgdump.newer_dump(conn, info)
    if newer:
        problems.append('the dump was %s' % newer)
    if manifest.get('toc_entries') and info.get('toc_entries') != manifest['toc_entries']:
        problems.append('the dump lists %s entries, the manifest recorded %s' % (
            info.get('toc_entries'), manifest['toc_entries']))
    for ext, version in (info.get('extension_versions') or {}).items():
        recorded = (manifest.get('extensions') or {}).get(ext)
        if version and recorded and version != recorded:
            problems.append('the dump holds %s %s, the manifest says %s' % (ext, version, recorded))
    return info, problems


def test_restore(conn, manifest, dump_path, info, jobs):
    """Restore into a scratch database, count, compare, drop the scratch database."""
    if not manifest.get('row_counts'):
        return None, ['the manifest has no row counts to compare a test restore with (give expected_row_counts)']
    admin = conn.connect()
    try:
        needs = _timescaledb.missing_extensions(admin, manifest, info)
        if needs:
            return None, needs
        scratch = _postgres.derived_name(manifest['database'], 'verify', _backup.stamp())
        started = time.time()
        _postgres.create_database(admin, scratch)
        try:
            _pgdump.restore_dump(conn, dump_path, scratch, info, jobs=jobs, analyze=False)
            restored = conn.connect(scratch)
            try:
                counts = _postgres.row_counts(restored, sorted(manifest['row_counts']))
            except _postgres.DB_ERRORS as exc:
                return None, ['the test restore lacks a table of the manifest: %s' % exc]
            finally:
                restored.close()
        except _postgres.PostgresError as exc:
            return dict(database=scratch), ['test restore failed: %s' % exc]
        finally:
            try:
                _postgres.drop_database(admin, scratch)
            except (_postgres.PostgresError,) + _postgres.DB_ERRORS as exc:
                # never claim "nothing was changed" over a scratch database left behind
                raise _postgres.LeftBehind('the scratch database %s of the test restore could NOT be dropped (%s): '
                                           'drop it by hand' % (scratch, str(exc).strip()))
    finally:
        admin.close()
    result = dict(database=scratch, seconds=round(time.time() - started, 3), row_counts=counts)
    return result, ['test restore: %s' % d for d in _postgres.compare_counts(manifest['row_counts'], counts)]


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(
        backup=dict(type='path', required=True),
        test_restore=dict(type='bool', default=False),
        jobs=dict(type='int', default=2),
        force=dict(type='bool', default=False),
        create_manifest=dict(type='bool', default=False),
        expected_row_counts=dict(type='dict'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    conn = _postgres.Connection(p)
    backup = p['backup']
    manifest_path = _backup.manifest_path_for(backup)
    result = dict(manifest=manifest_path, problems=[])
    changed = False
    try:
        if not os.path.exists(manifest_path):
            if not p['create_manifest']:
                _backup.manifest_for_dump(backup)  # raises the clear "no manifest" error
            if not os.path.isfile(backup):
                raise _backup.BackupError('%s does not exist' % backup)
            manifest = adopt(conn, backup, p['expected_row_counts'])
            changed = True
        else:
            manifest = _backup.read_manifest(manifest_path)
        directory = os.path.dirname(manifest_path)
        try:
            dump_path = _backup.dump_file(manifest, directory)
            file_problems = []
        except _backup.BackupError as exc:  # a manifest pointing elsewhere is failed, never verified
            dump_path, file_problems = os.path.join(directory, str(manifest.get('dump'))), [str(exc)]
        previous = manifest.get('verification') or {}
        already = (manifest['status'] == 'verified' and not p['force']
                   and (previous.get('test_restore') or not p['test_restore']))
        file_problems += _backup.check_files(manifest, directory)
        problems = list(file_problems)
        info = None
        if not problems:
            info, more = dump_checks(conn, dump_path, manifest)
            problems += more
        result.update(toc_entries=(info or {}).get('toc_entries'), pg_dump_version=(info or {}).get('pg_dump_version'),
                      extensions=(info or {}).get('extension_versions'))
        if already and not problems:
            result.update(status='verified', test_restore=previous.get('test_restore'))
            module.exit_json(changed=changed and not module.check_mode, verification=result)
        restored = None
        if not problems and p['test_restore'] and not module.check_mode:
            restored, more = test_restore(conn, manifest, dump_path, info, p['jobs'])
            problems += more
        status = 'failed' if problems else ('verified' if not module.check_mode else manifest['status'])
        result.update(status=status, problems=problems, test_restore=restored)
        if not module.check_mode:
            if info and not manifest.get('toc_entries'):
                manifest['toc_entries'] = info.get('toc_entries')
            manifest['status'] = status
            manifest['verification'] = dict(checked_at=_backup.iso(), problems=problems,
                                            checksums='failed' if file_problems else 'ok',
                                            toc_entries=result['toc_entries'], test_restore=restored)
            _backup.write_manifest(manifest_path, manifest)
            changed = True
    except (_postgres.PostgresError, _backup.BackupError) + _postgres.DB_ERRORS as exc:
        left = isinstance(exc, _postgres.LeftBehind)
        module.fail_json(exception=traceback.format_exc(), msg='%s%s' % (str(exc).strip(), '' if left else '; nothing was changed'), changed=left,
                         verification=result)
    if problems:
        module.fail_json(changed=changed, verification=result, msg='backup %s is NOT verified: %s' % (
            dump_path, '; '.join(problems)))
    module.exit_json(changed=changed, verification=result)


if __name__ == '__main__':
    main()
