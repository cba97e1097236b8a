# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""TimescaleDB for the tradeops.dr modules: the hypertables of a database, whether a server can
take a TimescaleDB restore (the extension at the dump's version, preloaded, a superuser login),
and the background-worker scheduler of a database stopped before a swap and started again after
a rename. Connections and queries are _postgres's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.tradeops.dr.plugins.module_utils import _probe
from ansible_collections.tradeops.dr.plugins.module_utils._postgres import (
    PostgresError, available_extension_versions, extensions, first_line, psycopg2, query, readable_setting)


def missing_extensions(conn, manifest, info=None):
    """Problems (strings) when the server lacks an extension the backup needs: any version of
    each extension the dump creates, and exactly the recorded version of timescaledb (the
    restore creates it at that version before timescaledb_pre_restore()), preloaded, with a
    superuser login (timescaledb_target_problems)."""
    needed = dict((name, None) for name in (info or {}).get('extensions', []))
    needed.update(dict((k, v) for k, v in (manifest.get('extensions') or {}).items() if k != 'plpgsql'))
    for name, version in ((info or {}).get('extension_versions') or {}).items():
        needed[name] = needed.get(name) or version
    problems = []
    for name, version in sorted(needed.items()):
        available = available_extension_versions(conn, name)
        if not available:
            problems.append('the backup needs the %s extension%s; this server does not offer it (install %s%s on '
                            'the server first)' % (name, ' version %s' % version if version else '', name,
                                                   ' %s' % version if version else ''))
        elif name == 'timescaledb':
            if version and version not in available:
                problems.append('the backup needs timescaledb version %s; this server offers %s (install timescaledb '
                                '%s on the server first)' % (version, ', '.join(available), version))
            problems += timescaledb_target_problems(conn)
    return problems


def timescaledb_target_problems(conn):
    """Why this server cannot take a TimescaleDB restore (strings; [] when it can), checked
    before anything changes, beside missing_extensions (which checks the version): the library
    must be preloaded (without it CREATE EXTENSION kills the session: 'extension "timescaledb"
    must be preloaded'), and the login must be a superuser (timescaledb_pre_restore() and
    timescaledb_post_restore() need one)."""
    problems = []
    available = available_extension_versions(conn, 'timescaledb')
    preload = readable_setting(conn, 'shared_preload_libraries')
    if preload is None:  # not readable by this login: the launcher runs only where it is preloaded
        loaded = bool(query(conn, "SELECT 1 FROM pg_stat_activity "
                                  "WHERE backend_type = 'TimescaleDB Background Worker Launcher'"))
    else:
        loaded = 'timescaledb' in [lib.strip().strip('"') for lib in preload.split(',')]
    if available and not loaded:
        problems.append('timescaledb %s is installed but not in shared_preload_libraries of this server: add '
                        "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart PostgreSQL first"
                        % ', '.join(available))
    if not query(conn, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')[0][0]:
        problems.append('login %s is not a superuser: timescaledb_pre_restore() and timescaledb_post_restore(), '
                        'which a TimescaleDB restore runs around pg_restore, need one' % conn.info.user)
    return problems


SCHEDULER = 'TimescaleDB Background Worker Scheduler'


def timescaledb_scheduler(conn, dbname):
    """Whether TimescaleDB's scheduler of `dbname` runs (pg_stat_activity)."""
    return bool(query(conn, 'SELECT 1 FROM pg_stat_activity WHERE backend_type = %s AND datname = %s',
                      (SCHEDULER, dbname)))


def freeze_timescaledb(conn, dbname):
    """Stop TimescaleDB's jobs in a database kept aside, for good: `timescaledb_pre_restore()` stops
    its background workers and sets timescaledb.restoring on for that database. A copy kept as
    evidence must not run policies (a retention policy would drop its old chunks), and each
    database's scheduler holds one of max_worker_processes: a few copies kept aside with their
    schedulers running leave none for the restored database's own. Returns 'frozen', or
    'no timescaledb' when the database lacks the extension."""
    target = conn.connect(dbname)
    try:
        if not query(target, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
            return 'no timescaledb'
        query(target, 'SELECT timescaledb_pre_restore()')
        return 'frozen'
    except psycopg2.Error as exc:
        raise PostgresError('cannot stop the TimescaleDB jobs of %s: %s' % (dbname, first_line(exc)))
    finally:
        target.close()


def restart_timescaledb_scheduler(conn, dbname, timeout=30.0):
    """ALTER DATABASE ... RENAME stops the scheduler of the renamed database (TimescaleDB warns
    that running background workers must be restarted by hand): start the workers again in
    `dbname` and wait until its scheduler shows in pg_stat_activity. Returns 'running' or
    raises PostgresError."""
    target = conn.connect(dbname)
    try:
        query(target, 'SELECT _timescaledb_functions.start_background_workers()')
    except psycopg2.Error as exc:
        raise PostgresError('cannot restart the TimescaleDB background workers of %s: %s' % (dbname, first_line(exc)))
    finally:
        target.close()
    admin = conn.connect()
    try:
        res = _probe.wait_until(lambda: (timescaledb_scheduler(admin, dbname), 'no scheduler in pg_stat_activity'),
                                timeout, first_delay=0.1, max_delay=1.0)
    finally:
        admin.close()
    if not res['ok']:
        raise PostgresError('the TimescaleDB scheduler of %s did not start within %ss: compression, retention and '
                            'continuous aggregate policies would not run (see the server log)' % (dbname, timeout))
    return 'running'


def hypertables(conn):
    if 'timescaledb' not in extensions(conn):
        return []
    rows = query(conn, 'SELECT hypertable_schema, hypertable_name, num_chunks, compression_enabled '
                       'FROM timescaledb_information.hypertables ORDER BY 1, 2')
    return [dict(name='%s.%s' % (r[0], r[1]), num_chunks=r[2], compression_enabled=r[3]) for r in rows]
