#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_restore_swap
short_description: Restore a verified backup into a NEW database, verify it, then swap names - the current database is kept aside, never dropped
version_added: 0.1.0
description:
  - "Checks first, changes nothing until all pass: the manifest exists and every file matches its sha256, the
    backup is C(verified) (unless O(require_verified=false)), C(pg_restore --list) reads the dump, the dump is not
    from a newer pg_dump, the server offers every extension the backup needs (TimescaleDB at the manifest's
    version, preloaded through C(shared_preload_libraries), with a superuser login), and the data directory has
    room (when it is visible from this host). These checks run in check mode too."
  - Restores into C(<database>__restore_<stamp>) from the FILE (never stdin) with C(pg_restore --exit-on-error -j
    O(jobs)) (C(psql ON_ERROR_STOP=1) for a plain script). TimescaleDB dumps get C(CREATE EXTENSION timescaledb
    VERSION ...), C(timescaledb_pre_restore()) and C(timescaledb_post_restore()) around a one-job restore, as
    TimescaleDB documents (its docs say C(pg_restore -j) is not supported for TimescaleDB databases).
  - Runs O(migration_command) against the new database, compares the exact row count of every table of the
    manifest, then swaps in one transaction - C(<database>) becomes C(<database>__pre_restore_<stamp>) (kept, never
    dropped) and the restored database takes the name C(<database>). The GRANTs and settings of the database
    itself (C(GRANT CONNECT), C(ALTER DATABASE ... SET)), which a dump does not carry, are copied to the restored
    database first.
  - Any failure before the swap drops only the new, incomplete database (unless O(keep_failed=true)); the current
    database is untouched. A swap that fails is rolled back. A new database that cannot be dropped is named in
    the failure.
  - One restore of a database at a time - an advisory lock is held on its own session for the whole run (a second
    run, from any control node, is refused naming the holder). The module releases the lock itself when it ends,
    not only by closing its session, whose server process may end later; after C(kill -9), PostgreSQL releases it
    when the session ends.
  - The module stops when the run that started it is gone (its ancestor processes, read from C(/proc) at start,
    checked before each step and right before the swap) - a killed C(ansible-playbook) never leads to a swap
    later. Not for C(async) tasks, whose wrappers exit on purpose.
  - Connections to the current database are refused only for the instant between ending its sessions and the
    rename, and allowed again on every way out; with O(terminate_connections=false) a session opened since the
    checks fails the swap at once. M(tradeops.dr.pg_swap_repair) puts right a database left refusing connections
    by a run killed in that instant.
  - The rename stops TimescaleDB's background-job scheduler of the database; after the swap it is started again
    (C(_timescaledb_functions.start_background_workers())) and the module waits until it runs, or fails saying so.
  - With O(safety_dump), the pre-restore database is also dumped into C(<backup_root>/safety/) - by default from
    the renamed-aside copy right after the swap (O(safety_dump=after_swap)), so the file does not delay recovery
    while the same data is already kept whole by the rename; V(before) dumps it before anything else.
options:
  database:
    description: Name the restored database takes (the current database of that name is renamed aside).
    type: str
    required: true
  backup:
    description: The dump (C(.pgdump)) or its manifest (C(.manifest.json)).
    type: path
    required: true
  require_verified:
    description: Refuse a backup whose manifest status is not C(verified).
    type: bool
    default: true
  jobs:
    description: C(pg_restore -j); V(0) means the number of CPU cores. TimescaleDB dumps always use one job.
    type: int
    default: 0
  safety_dump:
    description: When to write a file dump of the current database (skipped with a message when it is absent or
      unreachable).
    type: str
    choices: [after_swap, before, none]
    default: after_swap
  backup_root:
    description: Root of the backup catalog; safety dumps go to its C(safety/) folder. Required unless
      O(safety_dump=none).
    type: path
  safety_dump_compress:
    description: pg_dump compression level of the safety dump; the default 1 is about twice as fast as pg_dump's
      own default and a little larger.
    type: int
    default: 1
  migration_command:
    description:
      - Command run after the restore and before verification, as a list (no shell), for example
        C([alembic, upgrade, head]). C({database}) in an argument is replaced by the new database's name, and
        E(PGDATABASE) is set to it (with E(PGHOST), E(PGPORT), E(PGUSER), E(PGPASSWORD)).
    type: list
    elements: str
  migration_chdir:
    description: Folder the migration command runs in.
    type: path
  migration_timeout:
    description: Seconds the migration command may run.
    type: int
    default: 1800
  terminate_connections:
    description: At the swap, end the sessions still connected to the current database. Without it, a session
      still connected makes the module fail before the restore (stop the applications first, runbook 000).
    type: bool
    default: false
  no_owner:
    description: Restore without the dump's ownership and privileges (C(--no-owner --no-privileges)).
    type: bool
    default: false
  analyze:
    description: Run C(ANALYZE) on the restored database, so that the planner has statistics at once.
    type: bool
    default: true
  keep_failed:
    description: Keep the new database when the restore, migration or verification fails (for inspection).
    type: bool
    default: false
  min_free_ratio:
    description: Free space needed in the data directory, as a multiple of the database size the manifest records.
    type: float
    default: 1.2
  timeout:
    description: Seconds C(pg_restore) may run.
    type: int
    default: 21600
extends_documentation_fragment:
  - tradeops.dr.postgres
attributes:
  check_mode:
    support: full
    description: Every check runs (checksums, table of contents, extensions, space, sessions); the plan is
      returned and nothing is created, restored or renamed.
  diff_mode:
    support: none
    description: The renamed-aside database is the record of what was replaced.
  idempotent:
    support: none
    description: Every run restores again; the previous database is kept aside each time.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Restore the newest verified backup of macro_trading and swap it in
  tradeops.dr.pg_restore_swap:
    database: macro_trading
    backup: /var/backups/tradeops-dr/postgres/2026-11-23/macro_trading_20261123T020000Z.pgdump
    backup_root: /var/backups/tradeops-dr/postgres
    migration_command: [alembic, upgrade, head]
    migration_chdir: /srv/macro_trading
    terminate_connections: true
'''

RETURN = r'''
restore:
  description: What was checked and done, with the time each step took.
  returned: always
  type: dict
  contains:
    database:
      description: Name the restored database now has.
      type: str
      sample: trading
    restored_from:
      description: The dump restored.
      type: str
      sample: /var/backups/tradeops-dr/postgres/2026-11-23/trading_20261123T020000Z.pgdump
    aside:
      description: Name the previous database was renamed to (absent when there was none).
      type: str
      sample: trading__pre_restore_20261123t031500z
    backup_created_at:
      description: When the backup was taken (UTC).
      type: str
      sample: "2026-11-23T02:00:00Z"
    data_loss_window_s:
      description: Seconds between the backup and this restore - writes in that window are not in the restored
        database (they are still in the aside database).
      type: float
      sample: 4500.0
    jobs:
      description: pg_restore jobs used.
      type: int
      sample: 2
    row_counts:
      description: Exact row counts of the restored database, equal to the manifest's.
      type: dict
      sample: {public.trades: 5000}
    safety_dump:
      description: The safety dump written, or why none was.
      type: dict
      sample: {dump: /var/backups/tradeops-dr/postgres/safety/trading_20261123T031500Z_pre_restore.pgdump}
    seconds:
      description: Seconds per step (checks, safety_dump, restore, migration, verify, swap) and in total.
      type: dict
      sample: {checks: 0.4, restore: 21.0, verify: 0.5, swap: 0.1, total: 22.1}
    database_properties:
      description: Statements that copied the database's own GRANTs and settings to the restored database.
      type: list
      elements: str
      sample: ["REVOKE ALL ON DATABASE \"trading__restore_20261123t031500z\" FROM PUBLIC"]
    timescaledb:
      description: For a TimescaleDB database, whether its background-job scheduler runs again after the swap
        (the rename stops it), and C(aside_jobs) - the copy kept aside has its jobs stopped for good
        (C(timescaledb_pre_restore()), so that it runs no policy and frees its background-worker slot) - C(frozen),
        or C(no timescaledb). Copies kept aside by earlier restores are frozen too; one that could not be is named
        in C(timescaledb_aside_errors) of the result.
      type: dict
      sample: {scheduler: running, aside_jobs: frozen}
    aside_read:
      description: How to read the copy kept aside when its TimescaleDB jobs are frozen - with
        timescaledb.restoring on, its compressed chunks read as empty unless the session turns it off
        (C(SET timescaledb.restoring = off)); the rows are all there.
      type: str
      sample: "compressed chunks of trading__pre_restore_20261123t031500z read as empty while it is frozen: run SET
        timescaledb.restoring = off in the session before reading it"
    aside_planned:
      description: In check mode, the name the current database would be kept under.
      type: str
      sample: trading__pre_restore_20261123t031500z
    failed_database:
      description: A new database left behind after a failure (kept on purpose with O(keep_failed), or one that
        could not be dropped).
      type: str
    plan:
      description: In check mode, what would be done.
      type: list
      elements: str
      sample: ["create trading__restore_20261123t031500z", "pg_restore -j 2 ..."]
'''

import os
import shutil
import subprocess
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _backup, _guard, _pgdump, _postgres, _timescaledb

LOCK = _postgres.RESTORE_LOCK


class Refused(Exception):
    """A check failed before anything was changed."""


class Restore(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.conn = _postgres.Connection(self.p)
        self.db = _postgres.check_name(self.p['database'])
        if self.db == self.conn.maintenance_db:
            raise Refused('cannot restore over the maintenance database %s itself; connect through another one '
                          '(maintenance_db)' % self.db)
        self.stamp = _backup.stamp()
        self.new = _postgres.derived_name(self.db, 'restore', self.stamp)
        self.aside = _postgres.derived_name(self.db, 'pre_restore', self.stamp)
        self.result = dict(database=self.db, seconds={})
        self.t0 = time.time()
        self.watch = _guard.ControllerWatch()
        self.locked = None

    def guard(self, before):
        """Stop when the run that started this module is gone (ansible-playbook killed): a swap
        nobody asked for any more must not happen after a re-run finished."""
        pid = self.watch.gone()
        if pid:
            raise _postgres.PostgresError('the run that started this restore is gone (process %d exited) before %s: '
                                          'stopped there' % (pid, before))

    def lock(self):
        """One restore of a database at a time: an advisory lock held on its own connection until
        the module ends (PostgreSQL releases it when the session ends, also after kill -9)."""
        self.locked = self.conn.connect()
        if not _postgres.try_lock(self.locked, LOCK, self.db):
            holder = _postgres.lock_holder(self.locked, LOCK, self.db) or {}
            self.locked.close()
            self.locked = None
            raise Refused('another restore of %s is running (PostgreSQL session pid %s, %s from %s, since %s): one '
                          'restore at a time' % (self.db, holder.get('pid', '?'), holder.get('user', '?'),
                                                 holder.get('client', '?'), holder.get('since', '?')))

    def timed(self, step, started):
        self.result['seconds'][step] = round(time.time() - started, 3)

    # ----------------------------------------------------------------- checks (no change)
    def checks(self):
        started = time.time()
        p = self.p
        if p['safety_dump'] != 'none' and not p['backup_root']:
            raise Refused('safety_dump=%s needs backup_root (or set safety_dump=none)' % p['safety_dump'])
        path = p['backup']
        manifest_path, manifest = _backup.manifest_for_dump(path)
        directory = os.path.dirname(manifest_path)
        self.dump = _backup.dump_file(manifest, directory)
        self.manifest = manifest
        self.result.update(restored_from=self.dump, backup_created_at=manifest['created_at'],
                           backup_status=manifest['status'])
        if manifest.get('database') and manifest['database'] != self.db:
            self.result['note'] = 'backup of %s restored as %s' % (manifest['database'], self.db)
        if p['require_verified'] and manifest['status'] != 'verified':
            raise Refused('backup %s is %s, not verified (run pg_backup_verify, or require_verified=false)' % (
                self.dump, manifest['status']))
        problems = _backup.check_files(manifest, directory)
        if problems:
            raise Refused('backup %s does not match its manifest: %s' % (self.dump, '; '.join(problems)))
        self.info = _pgdump.inspect_dump(self.conn, self.dump)
        newer = _pgdump.newer_dump(self.conn, self.info)
        if newer:
            raise Refused('backup %s was %s' % (self.dump, newer))
        admin = self.conn.connect()
        try:
            needs = _timescaledb.missing_extensions(admin, manifest, self.info)
            if needs:
                raise Refused('; '.join(needs))
            self.current = _postgres.database_exists(admin, self.db)
            self.owner = _postgres.database_owner(admin, self.db) if self.current else None
            self.check_space(admin)
            if self.current and not p['terminate_connections']:
                sessions = _postgres.connections_to(admin, self.db)
                if sessions:
                    raise Refused('%d session(s) still use %s (%s): stop the applications first, or set '
                                  'terminate_connections' % (len(sessions), self.db, ', '.join(
                                      '%s/%s' % (s[1], s[2] or 'pid %s' % s[0]) for s in sessions[:5])))
            self.result['leftovers'] = _postgres.databases_like(admin, '%s__restore_' % self.db)
        finally:
            admin.close()
        tsdb = 'timescaledb' in self.info['extensions']
        jobs = p['jobs'] or os.cpu_count() or 1
        self.jobs = 1 if tsdb or self.info['format'] in ('plain', 'tar') else jobs
        if tsdb and jobs > 1:
            self.result['jobs_note'] = 'TimescaleDB dump: restored with one job, as TimescaleDB documents'
        self.timed('checks', started)

    def check_space(self, admin):
        facts = _postgres.server_facts(admin)
        needed = int((self.manifest.get('database_size_bytes') or 0) * self.p['min_free_ratio'])
        data_dir = facts.get('data_directory')
        if not data_dir or not os.path.isdir(data_dir):
            self.result['space'] = 'data directory not visible from this host; free space not checked'
            return
        free = shutil.disk_usage(data_dir).free
        self.result['space'] = dict(data_directory=data_dir, free_bytes=free, needed_bytes=needed)
        if needed and free < needed:
            raise Refused('the data directory %s has %.2f GiB free; the restore needs about %.2f GiB (%.1f x the '
                          '%.2f GiB database): free space first (prune old backups, compress old chunks)' % (
                              data_dir, free / 2.0 ** 30, needed / 2.0 ** 30, self.p['min_free_ratio'],
                              self.manifest['database_size_bytes'] / 2.0 ** 30))

    def plan(self):
        steps = []
        if self.p['safety_dump'] == 'before' and self.current:
            steps.append('dump %s into %s/safety' % (self.db, self.p['backup_root']))
        steps.append('create database %s' % self.new)
        steps.append('restore %s with %d job(s)%s' % (self.dump, self.jobs, ' between timescaledb_pre_restore() and '
                                                      'timescaledb_post_restore()' if 'timescaledb' in
                                                      self.info['extensions'] else ''))
        if self.p['migration_command']:
            steps.append('run %s' % ' '.join(self.p['migration_command']))
        counted = len(self.manifest.get('row_counts') or {})
        steps.append('compare the row counts of %d table(s) with the manifest' % counted)
        if self.current:
            steps.append('copy the GRANTs and settings of database %s to %s' % (self.db, self.new))
            steps.append('rename %s to %s and %s to %s in one transaction' % (self.db, self.aside, self.new, self.db))
        else:
            steps.append('rename %s to %s (no current database)' % (self.new, self.db))
        if self.p['safety_dump'] == 'after_swap' and self.current:
            steps.append('dump %s into %s/safety' % (self.aside, self.p['backup_root']))
        return steps

    # ----------------------------------------------------------------- changes
    def safety(self, source):
        started = time.time()
        try:
            directory, base = _backup.new_backup_paths(self.p['backup_root'], self.db, 'safety')
            done = _pgdump.dump_database(self.conn, source, directory, base, kind='safety',
                                         compress=self.p['safety_dump_compress'])
            self.result['safety_dump'] = dict(dump=done['dump'], manifest=done['manifest'], source=source)
        except (_postgres.PostgresError, _backup.BackupError, IOError, OSError) + _postgres.DB_ERRORS as exc:
            self.result['safety_dump'] = dict(skipped='%s could not be dumped: %s' % (source, exc), source=source)
        self.timed('safety_dump', started)

    def restore(self, admin):
        started = time.time()
        _postgres.create_database(admin, self.new, owner=self.owner)
        self.created = True
        done = _pgdump.restore_dump(self.conn, self.dump, self.new, self.info, jobs=self.jobs,
                                    no_owner=self.p['no_owner'], analyze=self.p['analyze'], timeout=self.p['timeout'])
        self.result.update(jobs=done['jobs'], command=done['command'])
        self.timed('restore', started)

    def migrate(self):
        command = self.p['migration_command']
        if not command:
            return
        started = time.time()
        argv = [arg.replace('{database}', self.new) for arg in command]
        try:
            proc = subprocess.run(argv, env=self.conn.env(self.new), cwd=self.p['migration_chdir'],
                                  capture_output=True, text=True, timeout=self.p['migration_timeout'], check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _postgres.PostgresError('migration command %s could not complete: %s' % (' '.join(argv), exc))
        self.result['migration'] = dict(cmd=argv, rc=proc.returncode, stdout=proc.stdout[-2000:],
                                        stderr=proc.stderr[-2000:])
        if proc.returncode != 0:
            raise _postgres.PostgresError('migration command %s failed (rc=%d): %s' % (
                ' '.join(argv), proc.returncode, _postgres.tail(proc.stderr or proc.stdout)))
        self.timed('migration', started)

    def verify(self):
        started = time.time()
        expected = self.manifest.get('row_counts') or {}
        restored = self.conn.connect(self.new)
        try:
            present = set(_postgres.user_tables(restored))
            counts = _postgres.row_counts(restored, sorted(t for t in expected if t in present))
        finally:
            restored.close()
        self.result['row_counts'] = counts
        problems = _postgres.compare_counts(expected, counts)
        if not expected:
            problems.append('the manifest records no row counts: the restore cannot be proven complete')
        if problems:
            raise _postgres.PostgresError('the restored database does not match the manifest: %s' % '; '.join(
                problems))
        self.timed('verify', started)

    def swap(self, admin):
        started = time.time()
        if not self.current:
            _postgres.query(admin, _postgres.rename_database(self.new, self.db))
            self.timed('swap', started)
            return
        # GRANTs and settings on the database itself are not in a pg_dump
        self.result['database_properties'] = _postgres.copy_database_properties(admin, self.db, self.new)
        if not self.p['terminate_connections']:
            sessions = _postgres.connections_to(admin, self.db)
            if sessions:  # without the right to end them, waiting would only keep production closed
                raise _postgres.PostgresError('%d session(s) opened on %s since the checks (%s): the swap needs it '
                                              'free; stop the applications or set terminate_connections' % (
                                                  len(sessions), self.db, ', '.join('%s/%s' % (r[1], r[2] or r[0])
                                                                                    for r in sessions[:5])))
        # No new session may slip in between ending the sessions and the rename: connections are
        # refused for that instant only (a few seconds at most), and allowed again on every way
        # out. A run killed in that instant leaves them refused: the next diagnosis sees it and
        # pg_swap_repair allows them again.
        _postgres.allow_connections(admin, self.db, False)
        try:
            if self.p['terminate_connections']:
                self.result['terminated_sessions'] = _postgres.terminate_connections(admin, self.db)
            for attempt in range(3):
                try:
                    admin.autocommit = False
                    with admin.cursor() as cur:
                        cur.execute(_postgres.rename_database(self.db, self.aside))
                        cur.execute(_postgres.rename_database(self.new, self.db))
                    admin.commit()
                    break
                except _postgres.DB_ERRORS as exc:
                    admin.rollback()
                    if 'being accessed' not in str(exc) or attempt == 2:
                        raise _postgres.PostgresError('the swap was rolled back: %s' % str(exc).strip())
                    if self.p['terminate_connections']:
                        _postgres.terminate_connections(admin, self.db)
                    time.sleep(0.25)
                finally:
                    admin.autocommit = True
        except Exception:
            _postgres.allow_connections(admin, self.db, True)
            raise
        _postgres.allow_connections(admin, self.aside, True)
        self.result['aside'] = self.aside
        self.timed('swap', started)

    def freeze_copies_kept_aside(self):
        """Every copy of this database kept aside (this restore's and earlier ones', also those kept
        before copies were frozen) runs no TimescaleDB job and gives its background-worker slot back
        to the restored database. Returns this restore's copy's state; a copy that cannot be frozen
        is reported in timescaledb_aside_errors, not fatal (the scheduler's own wait says whether a
        slot was left)."""
        admin = self.conn.connect()
        try:
            copies = _postgres.databases_like(admin, '%s__pre_restore_' % self.db)
        finally:
            admin.close()
        mine, errors = None, []
        for name in copies:
            try:
                state = _timescaledb.freeze_timescaledb(self.conn, name)
            except _postgres.PostgresError as exc:
                errors.append(str(exc))
                state = 'not frozen'
            if name == self.result.get('aside'):
                mine = state
        if errors:
            self.result['timescaledb_aside_errors'] = errors
        return mine

    def restart_scheduler(self):
        """The rename stopped TimescaleDB's scheduler of the database: start it again, or policies
        (compression, retention, continuous aggregates) silently stop."""
        if 'timescaledb' not in self.info['extensions']:
            return
        started = time.time()
        aside_jobs = self.freeze_copies_kept_aside()
        if aside_jobs == 'frozen':
            # a frozen copy runs with timescaledb.restoring on: its compressed chunks read as empty
            # unless the session turns it off (the database keeps it on: no scheduler, no policy)
            self.result['aside_read'] = ('compressed chunks of %s read as empty while it is frozen: run SET '
                                         'timescaledb.restoring = off in the session before reading it' % self.aside)
        try:
            self.result['timescaledb'] = dict(scheduler=_timescaledb.restart_timescaledb_scheduler(self.conn, self.db),
                                              aside_jobs=aside_jobs)
        except _postgres.PostgresError as exc:
            self.result['timescaledb'] = dict(scheduler='not running', aside_jobs=aside_jobs, error=str(exc))
            self.module.fail_json(exception=traceback.format_exc(), changed=True, restore=self.result, msg=(
                'the restored %s is in place (the previous one is kept as %s), but %s. Run SELECT '
                '_timescaledb_functions.start_background_workers() in %s once the cause is fixed.' % (
                    self.db, self.result.get('aside') or '-', exc, self.db)))
        self.timed('scheduler', started)

    def drop_failed(self, admin):
        """Drop the incomplete new database; a drop that fails is named, never hidden."""
        try:
            _postgres.drop_database(admin, self.new)
            return '; the incomplete %s was dropped' % self.new
        except (_postgres.PostgresError,) + _postgres.DB_ERRORS as exc:
            self.result['failed_database'] = self.new
            return '; the incomplete %s could NOT be dropped (%s): drop it by hand' % (self.new, str(exc).strip())

    def run(self):
        self.lock()
        try:
            self._run()
        finally:
            if self.locked is not None:
                _postgres.release_lock(self.locked, LOCK, self.db)  # now, not once the server sees the session end
                self.locked.close()

    def _run(self):
        self.checks()
        if self.module.check_mode:
            self.result['plan'] = self.plan()
            self.result['aside_planned'] = self.aside if self.current else None
            self.module.exit_json(changed=True, restore=self.result)
        if self.p['safety_dump'] == 'before' and self.current:
            self.safety(self.db)
        admin = self.conn.connect()
        self.created = False
        try:
            self.guard('creating %s' % self.new)
            self.restore(admin)
            self.guard('the migration')
            self.migrate()
            self.guard('the verification')
            self.verify()
            self.guard('the swap')
            self.swap(admin)
        except (_postgres.PostgresError,) + _postgres.DB_ERRORS as exc:
            kept = self.p['keep_failed']
            self.result['failed_database'] = self.new if self.created and kept else None
            left = ''
            if self.created:
                left = '; the incomplete %s is kept for inspection' % self.new if kept else self.drop_failed(admin)
            admin.close()
            self.module.fail_json(exception=traceback.format_exc(), changed=bool(self.result['failed_database']), restore=self.result, msg=(
                '%s. The current database %s was not touched%s.' % (str(exc).rstrip('.'), self.db, left)))
        admin.close()
        self.restart_scheduler()
        now = time.time()
        self.result['data_loss_window_s'] = round(now - _backup.parse_iso(self.manifest['created_at']), 1)
        self.result['seconds']['recovery'] = round(now - self.t0, 3)
        if self.p['safety_dump'] == 'after_swap' and self.current:
            self.safety(self.aside)
        self.result['seconds']['total'] = round(time.time() - self.t0, 3)
        self.module.exit_json(changed=True, restore=self.result)


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(
        database=dict(type='str', required=True),
        backup=dict(type='path', required=True),
        require_verified=dict(type='bool', default=True),
        jobs=dict(type='int', default=0),
        safety_dump=dict(type='str', choices=['after_swap', 'before', 'none'], default='after_swap'),
        backup_root=dict(type='path'),
        safety_dump_compress=dict(type='int', default=1),
        migration_command=dict(type='list', elements='str'),
        migration_chdir=dict(type='path'),
        migration_timeout=dict(type='int', default=1800),
        terminate_connections=dict(type='bool', default=False),
        no_owner=dict(type='bool', default=False),
        analyze=dict(type='bool', default=True),
        keep_failed=dict(type='bool', default=False),
        min_free_ratio=dict(type='float', default=1.2),
        timeout=dict(type='int', default=21600),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    job = None
    try:
        job = Restore(module)
        job.run()
    except (Refused, _postgres.PostgresError, _backup.BackupError) + _postgres.DB_ERRORS as exc:
        module.fail_json(exception=traceback.format_exc(), msg='%s; nothing was changed' % str(exc).rstrip('.'),
                         restore=job.result if job else {})


if __name__ == '__main__':
    main()
